"""Shared helpers: logging, atomic outputs, `.done` markers, Kaldi-style text tables, provenance."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from .errors import DataError

_LOG_FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"


def get_logger(name: str) -> logging.Logger:
    """A logger writing timestamped lines to stderr (configured once)."""
    root = logging.getLogger("acoustic_kd")
    if not root.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter(_LOG_FORMAT, "%Y-%m-%d %H:%M:%S"))
        root.addHandler(h)
        root.setLevel(os.environ.get("ACOUSTIC_KD_LOGLEVEL", "INFO"))
        root.propagate = False
    return logging.getLogger(name if name.startswith("acoustic_kd") else f"acoustic_kd.{name}")


# ---------------------------------------------------------------- atomic outputs
def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp.{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it onto `path` (file or directory).

    A killed run leaves only a `.name.tmp.PID` sibling, never a half-written `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    remove_path(tmp)
    if is_dir:
        tmp.mkdir(parents=True)
    try:
        yield tmp
        if is_dir and path.exists():
            old = path.with_name(f".{path.name}.old.{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            remove_path(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        remove_path(tmp)
        raise


def remove_path(p: Path) -> None:
    """Delete a file, link or directory tree (nothing when absent)."""
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write text to `path` atomically (temporary file + fsync + rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def done_marker(directory: str | os.PathLike, name: str = "") -> Path:
    return Path(directory) / (f".{name}.done" if name else ".done")


def is_done(directory: str | os.PathLike, name: str = "") -> bool:
    return done_marker(directory, name).exists()


def mark_done(directory: str | os.PathLike, name: str = "", info: dict | None = None) -> None:
    """Leave a `.done` marker (JSON with a timestamp and optional info)."""
    payload = {"time": time.strftime("%Y-%m-%d %H:%M:%S"), **(info or {})}
    atomic_write_json(done_marker(directory, name), payload)


# ---------------------------------------------------------------- Kaldi text tables
_GZIP_MAGIC = b"\x1f\x8b"


def _open_binary(path: Path):
    """`path` opened for reading bytes, through gzip when it is gzip-compressed."""
    import gzip

    with open(path, "rb") as f:
        gz = f.read(2) == _GZIP_MAGIC
    return gzip.open(path, "rb") if gz else open(path, "rb")


def text_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its line end) of a UTF-8 text file: the one text reader.

    Lines end in LF, CRLF or CR; a leading UTF-8 byte-order mark is dropped; a gzip-compressed
    file is read through gzip. Bytes that are not UTF-8 are a DataError naming the file, the line
    and the conversion to run.
    """
    import io

    path = Path(path)
    try:
        with io.TextIOWrapper(_open_binary(path), encoding="utf-8-sig", newline="") as f:
            for lineno, raw in enumerate(f, 1):
                yield lineno, raw.rstrip("\r\n")
    except UnicodeDecodeError:
        with _open_binary(path) as f:
            for lineno, raw in enumerate(f, 1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise DataError(path, f"not UTF-8: byte 0x{raw[e.start]:02x} at column "
                                    f"{e.start + 1}", "convert the file to UTF-8, e.g. iconv -f "
                                    f"latin1 -t utf-8 {path.name} > {path.name}.utf8, and use that",
                                    lineno) from None
        raise DataError(path, "not UTF-8", "convert the file to UTF-8 (e.g. with iconv)") from None


def read_text_file(path: str | os.PathLike) -> str:
    """The whole of a UTF-8 text file read by `text_lines` (BOM dropped, "\\n" line ends)."""
    return "".join(line + "\n" for _, line in text_lines(path))


def read_table(path: str | os.PathLike, min_fields: int = 2) -> list[tuple[str, str, int]]:
    """Read a Kaldi-style `key value...` text file.

    Accepts spaces or tabs, CRLF line ends and a UTF-8 BOM (`text_lines`). Returns
    [(key, rest, lineno)] in file order.
    Blank lines are errors (Kaldi rejects them too) so that nothing is silently skipped.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file does not exist", "create it or check the path")
    out = []
    for lineno, line in text_lines(path):
        parts = line.strip().split(None, 1)
        if not parts:
            raise DataError(path, "empty line", "delete the blank line", lineno)
        if min_fields >= 2 and len(parts) < 2:
            raise DataError(path, f"line has only the key '{parts[0]}' and no value",
                            "give each key a value or remove the line", lineno)
        key = parts[0]
        rest = parts[1].strip() if len(parts) > 1 else ""
        rest = " ".join(rest.split()) if "|" not in rest else rest
        out.append((key, rest, lineno))
    return out


def write_table(path: str | os.PathLike, items, sort: bool = True) -> None:
    """Write `key value` lines atomically (C-order sorted by key unless sort=False)."""
    items = list(items.items()) if isinstance(items, dict) else list(items)
    if sort:
        items.sort(key=lambda kv: kv[0].encode("utf-8"))
    atomic_write_text(path, "".join(f"{k} {v}\n" for k, v in items))


def c_sorted(keys) -> list[str]:
    """Sort strings in C (byte) order, as Kaldi's `LC_ALL=C sort` does."""
    return sorted(keys, key=lambda k: k.encode("utf-8"))


# ---------------------------------------------------------------- provenance
def git_revision() -> str:
    """The git revision of the acoustic_kd checkout ('unknown' outside a checkout)."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here,
                             capture_output=True, text=True, timeout=5)
        if rev.returncode == 0:
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                   cwd=here, capture_output=True, text=True, timeout=5).stdout.strip()
            return rev.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def versions() -> dict:
    """Versions of the packages that shape results."""
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for pkg in ("acoustic_kd", "torch", "numpy", "kaldi-native-fbank", "kaldifst", "kaldi-decoder",
                "onnxruntime"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def write_exp_info(exp_dir: str | os.PathLike, config: dict | None = None, name: str = "info") -> None:
    """Make an exp dir describe itself: resolved config, command line, versions, git revision."""
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(exp_dir / f"{name}.json", {
        "command": " ".join(sys.argv),
        "cwd": os.getcwd(),
        "config": config or {},
        "versions": versions(),
        "git_revision": git_revision(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    })


def set_num_threads(n: int | None) -> None:
    """Limit torch/BLAS threads (parallel jobs each get a share of the cores)."""
    if not n:
        return
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass


_BF16_WARNED: set = set()


@functools.lru_cache(maxsize=None)
def native_bf16(device_type: str = "cpu") -> bool:
    """Whether bfloat16 matrix work is native on this device (else autocast emulates it, slowly).

    CUDA: `torch.cuda.is_bf16_supported()`. CPU: the `avx512_bf16` / `amx_bf16` flags (x86) or `bf16`
    (Arm) of /proc/cpuinfo; where that file cannot be read, assumed native. (Emulated bf16 is many
    times slower than fp32: bench/RESULTS.md, `train`.)
    """
    if device_type == "cuda":
        import torch

        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return True
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def resolve_bf16(requested: bool, device_type: str = "cpu", what: str = "training") -> bool:
    """`requested` unless the device lacks native bf16: then fp32, with one warning per `what`.
    `ACOUSTIC_KD_BF16=on|off` overrides the check (on: bf16 wherever requested; off: never)."""
    forced = os.environ.get("ACOUSTIC_KD_BF16", "auto").lower()
    if forced in ("on", "off"):
        return bool(requested) and forced == "on"
    if not requested or native_bf16(device_type):
        return bool(requested)
    if what not in _BF16_WARNED:
        _BF16_WARNED.add(what)
        get_logger("utils").warning(
            "%s: bf16 was asked for, but this %s has no native bfloat16 (see utils.native_bf16): "
            "running fp32, which is much faster here (set ACOUSTIC_KD_BF16=on to force bf16)",
            what, device_type.upper())
    return False

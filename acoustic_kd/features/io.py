"""Kaldi ark/scp storage for feature matrices and CMVN stats (binary, readable by Kaldi and kaldiio).

An scp line is `key rxspecifier`, e.g. `utt1 /abs/data/raw_fbank_train.1.ark:14`, as Kaldi's
`compute-fbank-feats ... ark,scp:` writes it. Arks written here are built under a temporary name and
renamed into place when complete, and their scp entries always name the final (absolute) path.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import kaldiio
import numpy as np

from ..errors import DataError
from ..utils import atomic_path, read_table

_ARK_SPEC = re.compile(r"^(?P<path>.+?):(?P<offset>\d+)(?P<slices>\[[^\]]*\])?$")


class ArkWriter:
    """Write binary Kaldi matrices to one ark atomically; collect their scp entries.

    Use as a context manager; `entries` is [(key, "abs_path:offset")] in write order. If the block
    raises, nothing is left at `path`.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).resolve()
        self.entries: list[tuple[str, str]] = []
        self._ctx = atomic_path(self.path)

    def __enter__(self) -> "ArkWriter":
        self._tmp = self._ctx.__enter__()
        self._f = open(self._tmp, "wb")
        return self

    def write(self, key: str, mat: np.ndarray) -> None:
        """Append `mat` (float32 or float64 [R, C]) under `key`."""
        self._f.write(f"{key} ".encode("utf-8"))
        self.entries.append((key, f"{self.path}:{self._f.tell()}"))
        kaldiio.matio.write_array(self._f, mat)

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                self._f.flush()
                os.fsync(self._f.fileno())
        finally:
            self._f.close()
        return bool(self._ctx.__exit__(exc_type, exc, tb))


def read_scp(scp: str | os.PathLike) -> dict[str, tuple[str, int]]:
    """Read an scp -> {key: (rxspecifier, lineno)}; duplicate keys are an error naming both lines."""
    out: dict[str, tuple[str, int]] = {}
    for key, spec, lineno in read_table(scp):
        if key in out:
            raise DataError(scp, f"duplicate key '{key}' (first on line {out[key][1]})",
                            "remove the duplicate line", lineno)
        out[key] = (spec, lineno)
    return out


class EntryLoader:
    """Load scp entries lazily, resolving ark paths that moved with their data dir.

    An ark path that does not exist as written (relative to the working directory, like Kaldi) is
    looked up relative to the scp's directory, then under `<scp dir>/data/` by file name, so a
    data dir copied or moved together with its `data/` subdirectory keeps working. Pipes
    (`cmd |`) are passed to kaldiio unchanged.
    """

    def __init__(self, scp: str | os.PathLike):
        self.scp = Path(scp)
        self._resolved: dict[str, str] = {}

    def _resolve(self, path: str, lineno: int | None) -> str:
        if path in self._resolved:
            return self._resolved[path]
        candidates = [Path(path), self.scp.parent / path, self.scp.parent / "data" / Path(path).name]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise DataError(self.scp, f"archive '{path}' does not exist",
                            "recompute the features (acoustic-kd features --force) or fix the paths",
                            lineno)
        self._resolved[path] = str(found)
        return self._resolved[path]

    def load(self, spec: str, lineno: int | None = None) -> np.ndarray:
        """Load the matrix behind one rxspecifier (`ark:offset`, `ark:offset[slices]`, a file or `cmd |`)."""
        if spec.rstrip().endswith("|"):
            target = spec
        else:
            m = _ARK_SPEC.match(spec)
            path = m.group("path") if m else spec
            target = self._resolve(path, lineno)
            if m:
                target += f":{m.group('offset')}{m.group('slices') or ''}"
        try:
            return kaldiio.load_mat(target)
        except Exception as e:  # kaldiio raises a variety of types on truncated/corrupt data
            raise DataError(self.scp, f"cannot read '{spec}': {e}",
                            "recompute the features (acoustic-kd features --force)", lineno) from e

"""Kaldi data directories: read, write and check (validate/fix/subset/combine: `data.ops`).

A data dir holds `wav.scp` (recording-id -> path or `cmd |`), `text` (utt -> words), `utt2spk`,
`spk2utt`, and optionally `segments` (utt -> recording start_s end_s; end -1 = end of file),
`utt2dur` (seconds) and `spk2gender` (m/f). Fields may be separated by spaces or tabs and lines may
end in CRLF. Every file is sorted by its first field in C (byte) order with unique keys.

Speaker ids need not prefix utterance ids: `utt2spk` is sorted by utterance and `spk2utt` by
speaker (each speaker's utterances C-sorted); Kaldi's extra demand that both orders agree is not made.

Relative audio paths in `wav.scp` resolve against the corpus root, chosen in this order:
1. an explicit `corpus_root` argument (`DataDir.load(..., corpus_root=)`, `--corpus-root`);
2. else a one-line file `corpus_root` in the data dir (a relative root there is relative to the
   data dir itself);
3. else the current working directory, as Kaldi does.
Paths inside `cmd |` entries are left to the shell (run in the corpus root).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from ..utils import atomic_path, atomic_write_text, c_sorted, get_logger, read_text_file, text_lines

log = get_logger(__name__)

TABLES = ("wav.scp", "text", "utt2spk", "spk2utt", "segments", "utt2dur", "spk2gender")
REQUIRED = ("wav.scp", "text", "utt2spk")
FIX_LOG = "fix_data_dir.log"
_FIX = "run `acoustic-kd data-dir fix DIR` to keep the consistent utterances"


@dataclass
class Problem:
    """One validation problem: file, 1-based line (or None), what is wrong and how to fix it.

    `kind` is a short tag (e.g. `duplicate_id`); `key` the id concerned (utt, rec or speaker).
    """

    path: str
    line: int | None
    message: str
    fix: str = ""
    kind: str = ""
    key: str = ""

    def __str__(self) -> str:
        return str(DataError(self.path, self.message, self.fix, self.line))


Rows = list[tuple[str, str, int]]  # (key, value, lineno)
_WHAT = {"wav.scp": "audio path", "text": "transcript", "utt2spk": "speaker", "spk2utt": "utterance list",
         "segments": "segment", "utt2dur": "duration", "spk2gender": "gender"}


def _read_rows(path: Path, problems: list[Problem], collapse: bool = True) -> Rows:
    """Read `key value` lines tolerantly; blank lines become problems, not exceptions."""
    rows: Rows = []
    for lineno, line in text_lines(path):
        parts = line.strip().split(None, 1)
        if not parts:
            problems.append(Problem(str(path), lineno, "empty line", "delete the blank line",
                                    "empty_line"))
            continue
        rest = parts[1].strip() if len(parts) > 1 else ""
        rows.append((parts[0], " ".join(rest.split()) if collapse else rest, lineno))
    return rows


def _check_rows(path: Path, rows: Rows, problems: list[Problem]) -> dict[str, tuple[str, int]]:
    """Report duplicate keys, missing values and C-order violations; return {key: (value, line)}."""
    table: dict[str, tuple[str, int]] = {}
    what = _WHAT[path.name]
    prev, unsorted = None, []
    for key, value, lineno in rows:
        if key in table:
            problems.append(Problem(str(path), lineno, f"duplicate id '{key}' (first on line "
                                    f"{table[key][1]})", "keep one line per id", "duplicate_id", key))
            continue
        if not value:
            msg = "empty transcript" if what == "transcript" else f"no {what}"
            problems.append(Problem(str(path), lineno, f"{msg} for '{key}'",
                                    f"give it a {what} or remove the line", "empty_value", key))
        if prev is not None and key.encode() < prev.encode():
            unsorted.append((lineno, key, prev))
        prev = key
        table[key] = (value, lineno)
    if unsorted:
        lineno, key, before = unsorted[0]
        problems.append(Problem(str(path), lineno, f"not sorted in C order: '{key}' comes after "
                                f"'{before}' ({len(unsorted)} line(s) out of order)",
                                f"LC_ALL=C sort -k1,1 {path.name} (or {_FIX})", "unsorted", key))
    return table


def _parse_segment(value: str) -> tuple[str, float, float] | str:
    """`rec start end` -> tuple, or an error message."""
    f = value.split()
    if len(f) != 3:
        return f"expected 'utt recording start end', got {len(f) + 1} fields"
    try:
        start, end = float(f[1]), float(f[2])
    except ValueError:
        return f"start/end are not numbers: '{f[1]} {f[2]}'"
    if start < 0 or (end != -1 and end <= start):
        return f"bad times start={start} end={end} (need 0 <= start < end, or end = -1)"
    return f[0], start, end


def _pos(v: str) -> bool:
    try:
        return float(v) > 0
    except ValueError:
        return False


def resolve_corpus_root(data_dir: Path | None, corpus_root: str | os.PathLike | None = None) -> Path:
    """The root that relative wav.scp paths resolve against (see the module docstring)."""
    if corpus_root is not None:
        return Path(corpus_root).resolve()
    if data_dir is not None and (Path(data_dir) / "corpus_root").is_file():
        text = read_text_file(Path(data_dir) / "corpus_root").strip()
        if text:
            return (Path(data_dir) / text).resolve()
    return Path.cwd()


def _scan(path: Path, write: bool = True) -> tuple[dict[str, dict[str, tuple[str, int]]], list[Problem]]:
    """Read every present table of a data dir: ({file: {key: (value, line)}}, problems); a missing
    spk2utt is derived from utt2spk (and written into the dir unless `write` is False)."""
    if not path.is_dir():
        raise DataError(path, "data dir does not exist", "check the path or prepare the corpus first")
    problems: list[Problem] = []
    tables = {}
    for name in TABLES:
        p = path / name
        if p.exists():
            tables[name] = _check_rows(p, _read_rows(p, problems, name != "wav.scp"), problems)
        elif name in REQUIRED:
            problems.append(Problem(str(p), None, "required file is missing",
                                    f"create {name} (Kaldi data dir format)", "missing_file"))
    if "spk2utt" not in tables and "utt2spk" in tables:
        tables["spk2utt"] = _derive_spk2utt(path, tables["utt2spk"], write)
    return tables, problems


def _derive_spk2utt(path: Path, utt2spk: dict[str, tuple[str, int]],
                    write: bool = True) -> dict[str, tuple[str, int]]:
    """spk2utt rows derived from utt2spk (Kaldi's utt2spk_to_spk2utt.pl), written beside it when
    `write` and the directory is writable (else the derived table stays in memory only)."""
    groups: dict[str, list[str]] = {}
    for utt in c_sorted(utt2spk):
        groups.setdefault(utt2spk[utt][0], []).append(utt)
    rows = {spk: (" ".join(groups[spk]), i + 1) for i, spk in enumerate(c_sorted(groups))}
    if not write:
        return rows
    try:
        atomic_write_text(path / "spk2utt", "".join(f"{s} {v}\n" for s, (v, _) in rows.items()))
        log.info("%s: spk2utt was missing; derived from utt2spk and written", path)
    except OSError as e:
        log.info("%s: spk2utt was missing; derived from utt2spk (not written: %s)", path, e)
    return rows


def _cross_check(path: Path, t: dict, problems: list[Problem]) -> None:
    """Checks across files: every utterance has text, speaker and audio; spk2utt agrees; extras."""
    text, u2s, wav = t.get("text", {}), t.get("utt2spk", {}), t.get("wav.scp", {})
    segs = t.get("segments")

    def bad(name: str, line: int | None, msg: str, fix: str, kind: str, key: str) -> None:
        problems.append(Problem(str(path / name), line, msg, fix, kind, key))

    def first_line(utt: str) -> tuple[str, int]:
        return ("text", text[utt][1]) if utt in text else ("utt2spk", u2s[utt][1])

    for utt, (_, ln) in text.items():
        if utt not in u2s:
            bad("text", ln, f"utterance '{utt}' has no speaker in utt2spk",
                f"add it to utt2spk or {_FIX}", "no_speaker", utt)
    for utt, (spk, ln) in u2s.items():
        if utt not in text:
            bad("utt2spk", ln, f"utterance '{utt}' has no transcript in text",
                f"add it to text or {_FIX}", "no_transcript", utt)
        if len(spk.split()) > 1:
            bad("utt2spk", ln, f"'{utt}' maps to several speakers '{spk}'",
                "give exactly one speaker id per utterance", "bad_speaker", utt)
    utts = set(text) | set(u2s)
    if segs is None:
        for utt in c_sorted(utts - set(wav)):
            bad(*first_line(utt), f"utterance '{utt}' has no audio in wav.scp",
                f"add it to wav.scp or {_FIX}", "no_audio", utt)
        for rec in c_sorted(set(wav) - utts):
            bad("wav.scp", wav[rec][1], f"recording '{rec}' has no utterance in text/utt2spk",
                f"add its transcript and speaker or {_FIX}", "unused_recording", rec)
    else:
        for utt, (value, ln) in segs.items():
            seg = _parse_segment(value)
            if isinstance(seg, str):
                bad("segments", ln, seg, "write 'utt rec start_s end_s'", "bad_segment", utt)
            elif seg[0] not in wav:
                bad("segments", ln, f"recording '{seg[0]}' of '{utt}' is not in wav.scp",
                    f"add the recording or {_FIX}", "no_audio", utt)
            if utt not in utts:
                bad("segments", ln, f"segment '{utt}' has no transcript/speaker",
                    f"add it to text and utt2spk or {_FIX}", "no_transcript", utt)
        for utt in c_sorted(utts - set(segs)):
            bad(*first_line(utt), f"utterance '{utt}' has no line in segments",
                f"add its segment or {_FIX}", "no_segment", utt)
    if "spk2utt" in t:
        derived: dict[str, set[str]] = {}
        for utt, (spk, _) in u2s.items():
            derived.setdefault(spk, set()).add(utt)
        for spk, (value, ln) in t["spk2utt"].items():
            listed = value.split()
            if set(listed) != derived.get(spk, set()):
                bad("spk2utt", ln, f"speaker '{spk}' lists utterances that differ from utt2spk",
                    f"regenerate spk2utt: {_FIX}", "speaker_mismatch", spk)
            elif listed != c_sorted(listed):
                bad("spk2utt", ln, f"utterances of '{spk}' are not in C order",
                    f"regenerate spk2utt: {_FIX}", "unsorted", spk)
        for spk in c_sorted(set(derived) - set(t["spk2utt"])):
            bad("spk2utt", None, f"speaker '{spk}' of utt2spk is missing",
                f"regenerate spk2utt: {_FIX}", "speaker_mismatch", spk)
    speakers = {spk for spk, _ in u2s.values()}
    for name, known, ok, need in (("utt2dur", utts, _pos, "a positive duration"),
                                  ("spk2gender", speakers, lambda v: v in ("m", "f"), "m or f")):
        for key, (value, ln) in t.get(name, {}).items():
            if not ok(value) or key not in known:
                bad(name, ln, f"bad entry for '{key}': '{value}' (need a known id and {need})",
                    f"fix or delete {name}", f"bad_{name}", key)


@dataclass
class DataDir:
    """An in-memory Kaldi data dir (durations in seconds)."""

    path: Path | None
    wav_scp: dict[str, str]
    text: dict[str, str]
    utt2spk: dict[str, str]
    segments: dict[str, tuple[str, float, float]] | None = None
    utt2dur: dict[str, float] | None = None
    spk2gender: dict[str, str] | None = None
    corpus_root: Path | None = None
    lines: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)  # file -> id -> line

    @property
    def utts(self) -> list[str]:
        return c_sorted(self.utt2spk)

    @property
    def spk2utt(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for utt in self.utts:
            out.setdefault(self.utt2spk[utt], []).append(utt)
        return {spk: out[spk] for spk in c_sorted(out)}

    def recording_of(self, utt: str) -> str:
        """Recording id of `utt` (the utterance itself when there are no segments)."""
        return self.segments[utt][0] if self.segments is not None else utt

    def where(self, name: str, key: str) -> tuple[str, int | None]:
        """(file path, line) of `key` in table `name`, for error messages."""
        base = self.path if self.path is not None else Path("<data dir>")
        return str(base / name), self.lines.get(name, {}).get(key)

    @classmethod
    def load(cls, path: str | os.PathLike, corpus_root: str | os.PathLike | None = None,
             validate: bool = True, write: bool = True) -> "DataDir":
        """Read a data dir; with `validate` raise one DataError listing every problem; `write`:
        a missing spk2utt may be written into the dir (see `_scan`)."""
        path = Path(path)
        tables, problems = _scan(path, write)
        if validate:
            _cross_check(path, tables, problems)
            if problems:
                err = DataError(path, f"{len(problems)} problem(s) in the data dir (each with its "
                                "fix):\n  " + "\n  ".join(str(p) for p in problems))
                err.problems = problems  # type: ignore[attr-defined]
                raise err
        vals = {n: {k: v for k, (v, _) in tab.items()} for n, tab in tables.items()}
        segs = {u: _parse_segment(v) for u, v in vals.get("segments", {}).items()}
        durs = vals.get("utt2dur")
        root = resolve_corpus_root(path, corpus_root)
        return cls(path=path, wav_scp=vals.get("wav.scp", {}), text=vals.get("text", {}),
                   utt2spk=vals.get("utt2spk", {}), corpus_root=root, spk2gender=vals.get("spk2gender"),
                   segments={u: g for u, g in segs.items() if not isinstance(g, str)}
                   if "segments" in vals else None,
                   utt2dur=None if durs is None else {u: float(d) for u, d in durs.items() if _pos(d)},
                   lines={n: {k: ln for k, (_, ln) in tab.items()} for n, tab in tables.items()})

    def save(self, path: str | os.PathLike) -> None:
        """Write all tables (C-sorted, spk2utt derived) into `path`, atomically as one directory.

        When wav.scp holds relative paths, the corpus root is recorded in a `corpus_root` file.
        Into an existing dir each table is replaced atomically and other files (feats.scp, ...) stay.
        """
        path = Path(path)
        if path.is_dir():
            self._replace_tables(path)
        else:
            with atomic_path(path, is_dir=True) as tmp:
                self._write_tables(tmp)
        self.path = path

    def _replace_tables(self, path: Path, backup: Path | None = None) -> None:
        """Rewrite the tables of existing dir `path` file by file (old ones copied to `backup`)."""
        tmp = path / f".tables.tmp.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        self._write_tables(tmp)
        if backup is not None:
            backup.mkdir(exist_ok=True)
        for name in TABLES + ("corpus_root",):
            if backup is not None and (path / name).exists():
                shutil.copy2(path / name, backup / name)
            if (tmp / name).exists():
                os.replace(tmp / name, path / name)
            elif name in TABLES and (path / name).exists():
                (path / name).unlink()  # an optional table this data dir no longer has
        shutil.rmtree(tmp, ignore_errors=True)

    def _write_tables(self, d: Path) -> None:
        def put(name: str, table: dict) -> None:
            body = "".join(f"{k} {table[k]}\n" for k in c_sorted(table))
            (d / name).write_text(body, encoding="utf-8")
        put("wav.scp", self.wav_scp)
        put("text", self.text)
        put("utt2spk", self.utt2spk)
        put("spk2utt", {s: " ".join(u) for s, u in self.spk2utt.items()})
        if self.segments is not None:
            put("segments", {u: f"{r} {_num(s)} {_num(e)}" for u, (r, s, e) in self.segments.items()})
        if self.utt2dur is not None:
            put("utt2dur", {u: _num(v) for u, v in self.utt2dur.items()})
        if self.spk2gender is not None:
            put("spk2gender", self.spk2gender)
        if self.corpus_root is not None and any(_is_relative(e) for e in self.wav_scp.values()):
            (d / "corpus_root").write_text(f"{Path(self.corpus_root).resolve()}\n", encoding="utf-8")

    def subset(self, utts) -> "DataDir":
        """A new DataDir with only `utts` (and the recordings/speakers they use)."""
        keep = set(utts) & set(self.utt2spk)
        recs = {self.recording_of(u) for u in keep}
        spks = {self.utt2spk[u] for u in keep}
        return DataDir(
            path=None, wav_scp={r: v for r, v in self.wav_scp.items() if r in recs},
            text={u: self.text[u] for u in keep if u in self.text},
            utt2spk={u: self.utt2spk[u] for u in keep},
            segments=None if self.segments is None else {u: self.segments[u] for u in keep},
            utt2dur=None if self.utt2dur is None else {u: v for u, v in self.utt2dur.items() if u in keep},
            spk2gender=None if self.spk2gender is None else
            {s: g for s, g in self.spk2gender.items() if s in spks},
            corpus_root=self.corpus_root)

    def absolute_paths(self) -> "DataDir":
        """Rewrite relative wav.scp paths as absolute ones under the corpus root (commands untouched)."""
        root = Path(self.corpus_root or Path.cwd())
        self.wav_scp = {r: str((root / e).resolve()) if _is_relative(e) else e
                        for r, e in self.wav_scp.items()}
        return self


def _num(x: float) -> str:
    """Seconds with millisecond resolution, no trailing zeros (-1 stays -1)."""
    return f"{x:.3f}".rstrip("0").rstrip(".")


def _is_relative(entry: str) -> bool:
    return not entry.rstrip().endswith("|") and not os.path.isabs(entry)

"""Bring your own corpus: existing Kaldi data dirs + a lexicon file, validated and installed.

`prepare_kaldi(src_dir, out_dir, lexicon)` copies every data dir under `src_dir` (each
sub-directory holding a `wav.scp`, e.g. `train/`, `dev/`, `test/`) into `out_dir/<name>/`, after
validating it (all problems reported at once). Relative audio paths are made absolute against the
source's corpus root (see `acoustic_kd.data.datadir`), so the copies work from any directory.

Lexicon file format (Kaldi `lexicon.txt`): one pronunciation per line, `WORD PH1 PH2 ...`,
spaces or tabs; a word may have several lines (several pronunciations); phones may carry stress
digits (`AH0`, `EY1`), which the lang stage may strip. It is read and checked by the one lexicon
reader, `acoustic_kd.lang.lexicon.load_lexicon` (a complete lexiconp.txt has its probabilities
dropped; a probability on only some lines and disambiguation symbols (`#1`) are errors naming the line).
The lexicon is copied to `out_dir/local/lexicon.txt`; words of the transcripts it lacks are listed in
`out_dir/local/oov_words.txt` (the lang stage decides how to map them).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import soundfile as sf

from ..data.audio import check_data_audio
from ..data.datadir import TABLES, DataDir
from ..data.ops import validate_data_dir
from ..errors import DataError
from ..lang.lexicon import load_lexicon
from ..utils import (atomic_write_json, atomic_write_text, c_sorted, done_marker, get_logger,
                     is_done, mark_done)

log = get_logger(__name__)

def write_lexicon(path: str | os.PathLike, lex: dict[str, list[list[str]]]) -> None:
    """Write `WORD PH...` lines (words C-sorted, pronunciations in their given order), atomically."""
    atomic_write_text(path, "".join(f"{w} {' '.join(p)}\n" for w in c_sorted(lex) for p in lex[w]))


def install_sets(sets: dict[str, DataDir], out_dir: str | os.PathLike, lexicon: str | os.PathLike,
                 info: dict | None = None, marker: str = "prepare") -> dict[str, Path]:
    """Save data dirs as `out_dir/<set>/`, validate them, install the lexicon and summary.

    Writes `local/lexicon.txt`, `local/oov_words.txt`, `local/summary.json` (counts, hours,
    speakers per set) and a `.<marker>.done` marker. Returns {set name: path, "lexicon": path}.
    """
    out_dir = Path(out_dir)
    lex = load_lexicon(lexicon)
    out: dict[str, Path] = {}
    summary: dict = {"sets": {}, **(info or {})}
    words: set[str] = set()
    for name, data in sets.items():
        data.save(out_dir / name)
        problems = validate_data_dir(out_dir / name)
        if problems:
            raise DataError(out_dir / name, "prepared data dir is invalid:\n  "
                            + "\n  ".join(map(str, problems)), "report this as a bug")
        for t in data.text.values():
            words.update(t.split())
        summary["sets"][name] = set_summary(data)
        out[name] = out_dir / name
    local = out_dir / "local"
    local.mkdir(parents=True, exist_ok=True)
    write_lexicon(local / "lexicon.txt", lex)
    oov = c_sorted(words - set(lex))
    atomic_write_text(local / "oov_words.txt", "".join(f"{w}\n" for w in oov))
    if oov:
        log.warning("%d transcript word(s) not in the lexicon, e.g. %s (listed in %s)", len(oov),
                    oov[:5], local / "oov_words.txt")
    atomic_write_json(local / "summary.json", summary)
    mark_done(out_dir, marker, {"sets": list(sets)})
    out["lexicon"] = local / "lexicon.txt"
    for name, s in summary["sets"].items():
        log.info("%s: %d utterances, %d speakers, %s h", name, s["utts"], s["speakers"], s["hours"])
    return out


def set_summary(data: DataDir) -> dict:
    """Counts of one data dir: utterances, speakers, words and hours (when utt2dur is known)."""
    secs = sum(data.utt2dur.values()) if data.utt2dur else None
    return {"utts": len(data.utt2spk), "speakers": len(set(data.utt2spk.values())),
            "words": sum(len(t.split()) for t in data.text.values()),
            "hours": round(secs / 3600, 4) if secs is not None else None}


def done_paths(out_dir: Path, marker: str) -> dict[str, Path] | None:
    """The outputs of an earlier completed preparation, or None when it must (re)run."""
    if not is_done(out_dir, marker):
        return None
    log.info("%s already prepared (%s); use force=True / --force to redo", out_dir, marker)
    names = json.loads(done_marker(out_dir, marker).read_text(encoding="utf-8")).get("sets", [])
    return {**{n: out_dir / n for n in names}, "lexicon": out_dir / "local" / "lexicon.txt"}


def _durations(data: DataDir) -> dict[str, float] | None:
    """utt2dur from audio headers when every entry is a plain file (else None: left unknown)."""
    if any(e.rstrip().endswith("|") for e in data.wav_scp.values()):
        return None
    problems = check_data_audio(data)
    if problems:
        raise DataError(data.path, f"{len(problems)} unreadable recording(s):\n  "
                        + "\n  ".join(map(str, problems)), "fix or drop them (data-dir fix --check-audio)")
    out = {}
    for utt, entry in data.wav_scp.items():
        info = sf.info(entry)
        out[utt] = info.frames / info.samplerate
    return out


def prepare_kaldi(src_dir: str | os.PathLike, out_dir: str | os.PathLike, lexicon: str | os.PathLike,
                  corpus_root: str | os.PathLike | None = None, force: bool = False) -> dict[str, Path]:
    """Validate and copy the Kaldi data dirs under `src_dir` and a lexicon into `out_dir`."""
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    if not src_dir.is_dir():
        raise DataError(src_dir, "source directory does not exist", "pass --src DIR holding data dirs")
    names = [p.name for p in sorted(src_dir.iterdir()) if (p / "wav.scp").is_file()]
    if (src_dir / "wav.scp").is_file():
        names = [src_dir.name]
        src_dir = src_dir.parent
    if not names:
        raise DataError(src_dir, "no data dirs found (no sub-directory holds a wav.scp)",
                        "point --src at a directory containing train/, dev/, test/ data dirs")
    if not force and (done := done_paths(out_dir, "prepare_kaldi")) is not None:
        return done
    t0 = time.time()
    sets = {n: DataDir.load(src_dir / n, corpus_root).absolute_paths() for n in names}
    for data in sets.values():
        if data.utt2dur is None and data.segments is None:
            data.utt2dur = _durations(data)
    for n in names:
        # Only the tables DataDir knows are copied; derived files (feats, utt2num_frames) are redone.
        skipped = c_sorted(p.name for p in (src_dir / n).iterdir()
                           if p.is_file() and p.name not in TABLES + ("corpus_root",))
        if skipped:
            log.info("%s: not copied (recomputed by later stages or unused): %s", n, skipped)
    return install_sets(sets, out_dir, lexicon, {"source": str(src_dir.resolve()),
                                                  "seconds": round(time.time() - t0, 2)},
                        "prepare_kaldi")

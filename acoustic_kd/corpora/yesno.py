"""The Kaldi "yesno" corpus (OpenSLR SLR1, `waves_yesno/`) from a local copy.

60 recordings of one male speaker, 8 kHz, each eight words "yes"/"no" (spoken in Hebrew: ken/lo),
created for Kaldi's `egs/yesno` recipe (http://openslr.org/resources/1/). Pass the directory
holding `waves_yesno/` (or `waves_yesno/` itself); nothing is copied, wav.scp points at it.

The transcript is the file name: `0_1_1_0_0_1_1_0.wav` -> "NO YES YES NO NO YES YES NO"
(1 = YES, 0 = NO). The utterance id is the file stem, the speaker is `global` (one speaker).

Split (Kaldi's): names starting with `0_` are train (31 files), with `1_` test (29 files). A dev
set is carved from train: the last `num_dev` train files in C order (default 6), giving
train 25 / dev 6 / test 29.

Lexicons: `LEXICON` (`resources/yesno.lex`, English YES "Y EH S", NO "N OW") by default, or
`LEXICON_HEBREW` (`resources/yesno_hebrew.lex`, YES "K EH N", NO "L OW") which matches what is
spoken; choose with `lexicon="english"|"hebrew"` or a path.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import soundfile as sf

from ..data.datadir import DataDir
from ..errors import DataError
from ..utils import atomic_write_text, get_logger
from .kaldi import done_paths, install_sets

log = get_logger(__name__)

_RES = Path(__file__).resolve().parents[1] / "resources"
LEXICON = _RES / "yesno.lex"
LEXICON_HEBREW = _RES / "yesno_hebrew.lex"
LEXICONS = {"english": LEXICON, "hebrew": LEXICON_HEBREW}
SPEAKER = "global"
_NAME = re.compile(r"^[01](_[01])+\.wav$")


def words_of(stem: str) -> str:
    """Transcript of a yesno file stem: '0_1' -> 'NO YES'."""
    return " ".join("YES" if b == "1" else "NO" for b in stem.split("_"))


def prepare_yesno(src_dir: str | os.PathLike, out_dir: str | os.PathLike, num_dev: int = 6,
                  lexicon: str = "english", force: bool = False) -> dict[str, Path]:
    """Write `out_dir/{train,dev,test}` from a yesno copy; returns {set: path, "lexicon": path}.

    num_dev: how many of the last (C-ordered) train files form the dev set.
    lexicon: "english", "hebrew", or the path of a lexicon file.
    """
    src, out_dir = Path(src_dir), Path(out_dir)
    wav_dir = src / "waves_yesno" if (src / "waves_yesno").is_dir() else src
    if not wav_dir.is_dir():
        raise DataError(src, "yesno directory does not exist",
                        "download http://openslr.org/resources/1/waves_yesno.tar.gz and pass its path")
    lex_path = LEXICONS.get(lexicon, Path(lexicon))
    if not force and (done := done_paths(out_dir, "prepare_yesno")):
        return done
    t0 = time.time()
    files = sorted((p for p in wav_dir.iterdir() if _NAME.match(p.name)),
                   key=lambda p: p.name.encode())
    skipped = sorted(p.name for p in wav_dir.iterdir() if p.is_file() and not _NAME.match(p.name))
    train = [p for p in files if p.name.startswith("0_")]
    test = [p for p in files if p.name.startswith("1_")]
    if not train or not test:
        raise DataError(wav_dir, f"found {len(train)} train (0_*) and {len(test)} test (1_*) files",
                        "pass the waves_yesno directory with all 60 recordings")
    if not 0 <= num_dev < len(train):
        raise DataError(None, f"num_dev={num_dev} leaves no training files ({len(train)} in train)",
                        f"use 0 <= num_dev < {len(train)}")
    split = {"train": train[:len(train) - num_dev], "dev": train[len(train) - num_dev:], "test": test}
    sets = {}
    for name, paths in split.items():
        d = DataDir(None, {}, {}, {}, utt2dur={}, spk2gender={SPEAKER: "m"})
        for p in paths:
            utt = p.stem
            d.wav_scp[utt] = str(p.resolve())
            d.text[utt] = words_of(utt)
            d.utt2spk[utt] = SPEAKER
            info = sf.info(p)
            d.utt2dur[utt] = info.frames / info.samplerate
        sets[name] = d
    (out_dir / "local").mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "local" / "skipped_files.txt", "".join(f"{n}\n" for n in skipped))
    if skipped:
        log.info("%d file(s) in %s are not yesno recordings and were skipped (e.g. %s; listed in %s)",
                 len(skipped), wav_dir, skipped[0], out_dir / "local" / "skipped_files.txt")
    if not sets["dev"].utt2spk:
        del sets["dev"]
    return install_sets(sets, out_dir, lex_path, {
        "corpus": "yesno", "source": str(wav_dir.resolve()), "num_dev": num_dev,
        "lexicon": str(lex_path), "skipped_files": len(skipped),
        "seconds": round(time.time() - t0, 2)}, "prepare_yesno")

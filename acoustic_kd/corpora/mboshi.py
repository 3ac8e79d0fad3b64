"""Mboshi: read speech of a Bantu language (Congo-Brazzaville), 16 kHz, graphemic transcripts.

Godard et al., "A Very Low Resource Language Speech Corpus for Computational Language Documentation
Experiments", LREC 2018 (github.com/besacier/mboshi-french-parallel-corpus). Two layouts are read:

- staged: `audio/<utt>.flac|wav`, `transcripts.txt` (`utt words...`), `split.txt` (`utt train|test`),
  optional `utt2spk` and `reference_alignments.txt` (`utt PHONE start end`, a supervised forced
  alignment that upstream calls "silver": kept in `local/` for boundary checks);
- upstream's own: `full_corpus_newsplit/{train,dev}/<utt>.wav` + `<utt>.mb.cleaned` (the upstream
  `dev` set is used as `test`, as in the staged layout).

Sets (`split`): "upstream" (default): upstream's train/test split; dev = every `dev_every`-th
training utterance in C-sorted id order (default 10), so dev speakers are training speakers, as in
the test set. "speaker": train on the other speakers' upstream training utterances and put every
utterance of `held_out` (default kouarata: 1234 utterances, the most after abiayi's 2047, so the
held-out test can measure WER; martial has 215) into dev and test, alternately in C-sorted id order;
the other speakers' upstream test utterances are left out (upstream chose them to share no sentence
with its training set; listed in `local/left_out.txt`). The speaker is the id's part before the
first `_`.

Lexicon: graphemic (each word spelled by its letters, Unicode NFC; an accented vowel is one
grapheme). Every word of the corpus is in it, so decoding is closed-vocabulary (see the recipe's
RESULTS); pass `lexicon=FILE` for a user lexicon instead.
"""

from __future__ import annotations

import os
import time
import unicodedata
from pathlib import Path

import soundfile as sf

from ..data.datadir import DataDir
from ..errors import ConfigError, DataError
from ..utils import atomic_write_text, get_logger, read_text_file, text_lines
from .kaldi import done_paths, install_sets, write_lexicon

log = get_logger(__name__)


def graphemes(word: str) -> list[str]:
    """Letters of a word (NFC), combining marks kept with their base letter."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFC", word):
        if out and unicodedata.combining(ch):
            out[-1] += ch
        else:
            out.append(ch)
    return out


def _read_pairs(path: Path, min_fields: int = 2) -> list[tuple[str, str, int]]:
    rows = []
    for lineno, line in text_lines(path):
        parts = line.split(maxsplit=1)
        if not parts:
            continue
        if len(parts) < min_fields:
            raise DataError(path, f"line has no value after the id {parts[0]!r}",
                            "give `<utt> <value>` on every line", lineno)
        rows.append((parts[0], parts[1].strip() if len(parts) > 1 else "", lineno))
    return rows


def _staged(src: Path) -> tuple[dict, dict, dict]:
    """(utt -> audio path, utt -> text, utt -> 'train'|'test') of the staged layout."""
    audio = {p.stem: p for p in (src / "audio").iterdir() if p.suffix in (".flac", ".wav")}
    text = {u: t for u, t, _ in _read_pairs(src / "transcripts.txt", 1)}
    split = {}
    for u, s, lineno in _read_pairs(src / "split.txt"):
        if s not in ("train", "test"):
            raise DataError(src / "split.txt", f"set {s!r} of {u} is not train or test",
                            "use train|test", lineno)
        split[u] = s
    return audio, text, split


def _upstream(src: Path) -> tuple[dict, dict, dict]:
    """The same from upstream's `full_corpus_newsplit/{train,dev}/` (dev -> test)."""
    audio, text, split = {}, {}, {}
    for part, name in (("train", "train"), ("dev", "test")):
        for wav in sorted((src / part).glob("*.wav")):
            trn = wav.with_suffix(".mb.cleaned")
            if not trn.is_file():
                raise DataError(trn, "transcript of a recording is missing",
                                "restore the .mb.cleaned file or remove the .wav")
            audio[wav.stem] = wav
            text[wav.stem] = " ".join(read_text_file(trn).split())
            split[wav.stem] = name
    return audio, text, split


def speaker(utt: str) -> str:
    """The speaker of a Mboshi utterance id: its part before the first `_`."""
    return utt.split("_", 1)[0]


def assign_sets(split: dict[str, str], mode: str = "upstream", dev_every: int = 10,
                held_out: str = "kouarata") -> dict[str, str]:
    """utt -> "train" | "dev" | "test" under split `mode` (see the module doc); utterances left out
    are absent."""
    if mode == "upstream":
        train_ids = sorted(u for u, s in split.items() if s == "train")
        dev_ids = set(train_ids[dev_every - 1::dev_every])
        return {u: "dev" if u in dev_ids else s for u, s in split.items()}
    if mode != "speaker":
        raise ConfigError(f"Mboshi split {mode!r}: use upstream or speaker")
    speakers = sorted({speaker(u) for u in split})
    if held_out not in speakers:
        raise ConfigError(f"held_out={held_out!r} is not a Mboshi speaker; the speakers are {speakers}")
    held = sorted(u for u in split if speaker(u) == held_out)
    out = {u: "train" for u, s in split.items() if s == "train" and speaker(u) != held_out}
    out.update({u: ("dev", "test")[i % 2] for i, u in enumerate(held)})
    return out


def prepare_mboshi(src_dir: str | os.PathLike, out_dir: str | os.PathLike, dev_every: int = 10,
                   lexicon: str | os.PathLike | None = None, force: bool = False,
                   split: str = "upstream", held_out: str = "kouarata") -> dict[str, Path]:
    """Write `out_dir/{train,dev,test}` and `local/lexicon.txt` from a Mboshi copy (either layout)."""
    src, out_dir = Path(src_dir), Path(out_dir)
    if (src / "full_corpus_newsplit").is_dir():
        src = src / "full_corpus_newsplit"
    if (src / "transcripts.txt").is_file():
        audio, text, upstream = _staged(src)
    elif (src / "train").is_dir() and (src / "dev").is_dir():
        audio, text, upstream = _upstream(src)
    else:
        raise DataError(src, "not a Mboshi corpus (no transcripts.txt + audio/, nor "
                        "full_corpus_newsplit/{train,dev}/)", "pass --src the corpus directory")
    if dev_every < 2:
        raise DataError(None, f"dev_every={dev_every} leaves no training data", "use 2 or more")
    sets_of = assign_sets(upstream, split, dev_every, held_out)
    if not force and (done := done_paths(out_dir, "prepare_mboshi")):
        return done
    t0 = time.time()
    missing = sorted(u for u in upstream if u not in audio or u not in text)
    if missing:
        raise DataError(src, f"{len(missing)} utterance(s) of the split lack audio or a transcript, "
                        f"e.g. {missing[:3]}", "restore them or remove them from the split")
    sets = {n: DataDir(None, {}, {}, {}, utt2dur={}) for n in ("train", "dev", "test")}
    empty = []
    for utt in sorted(sets_of):
        words = [unicodedata.normalize("NFC", w) for w in text[utt].split()]
        if not words:
            empty.append(utt)
            continue
        d = sets[sets_of[utt]]
        d.wav_scp[utt] = str(audio[utt].resolve())
        d.text[utt] = " ".join(words)
        d.utt2spk[utt] = speaker(utt)
        info = sf.info(audio[utt])
        d.utt2dur[utt] = info.frames / info.samplerate
    local = out_dir / "local"
    local.mkdir(parents=True, exist_ok=True)
    atomic_write_text(local / "empty_transcripts.txt", "".join(f"{u}\n" for u in empty))
    atomic_write_text(local / "left_out.txt", "".join(f"{u}\n" for u in sorted(upstream)
                                                      if u not in sets_of))
    if empty:
        log.warning("%d utterance(s) with an empty transcript skipped (listed in %s)", len(empty),
                    local / "empty_transcripts.txt")
    if (src / "reference_alignments.txt").is_file():
        atomic_write_text(local / "reference_alignments.txt",
                          read_text_file(src / "reference_alignments.txt"))
    if lexicon is None:
        words = {w for d in sets.values() for t in d.text.values() for w in t.split()}
        lexicon = local / "grapheme_lexicon.txt"
        write_lexicon(lexicon, {w: [graphemes(w)] for w in words})
    return install_sets(sets, out_dir, lexicon, {
        "corpus": "mboshi", "source": str(src.resolve()), "split": split,
        **({"dev_every": dev_every} if split == "upstream" else {"held_out": held_out}),
        "empty_transcripts": len(empty), "seconds": round(time.time() - t0, 2)}, "prepare_mboshi")

"""Transcribe a batch of recordings with an export (what `acoustic-kd transcribe` runs).

Recordings come as files (id = file name without extension), a Kaldi wav.scp (paths or `cmd |`)
or a data dir. Ids must be unique over the whole batch (checked before anything is transcribed).
A recording that cannot be read or used (missing, empty, a failed pipe, NaN/inf samples) is
reported with its wav.scp line and skipped, and the rest go on: the per-utterance policy of the
features stage (`acoustic_kd.features.policy`); at the end a failed count is an error (exit 1).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

import numpy as np

from ..errors import DataError
from ..features.policy import attempt
from ..utils import get_logger
from .runtime import ExportedModel

log = get_logger(__name__)


@dataclass
class Item:
    """One recording of a batch: id, the file (and line) that gave it, and its reader
    (-> samples [N] float32 in [-1, 1], sample rate in Hz)."""

    utt: str
    file: str
    line: int | None
    load: Callable[[], tuple[np.ndarray, int]]

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


def _check_unique(items: list[Item]) -> None:
    """A DataError at the second use of an id (naming where the first one is)."""
    seen: dict[str, Item] = {}
    for it in items:
        if it.utt in seen:
            raise DataError(it.file, f"duplicate id '{it.utt}' (first at {seen[it.utt].where})",
                            "give every recording its own id (for files: their names without "
                            "extension must differ)", it.line)
        seen[it.utt] = it


def batch_items(audio: list[str], wav_scp: str | None, data: str | None, corpus_root,
                rate: int) -> list[Item]:
    """The recordings of the audio files, the wav.scp and the data dir, in that order; data-dir
    audio is read at `rate` (the model's) directly. Duplicate ids are a DataError."""
    from ..data.audio import load_audio, read_wav_entry
    from ..data.datadir import DataDir, resolve_corpus_root
    from ..utils import read_table

    items = [Item(Path(p).stem, p, None, lambda p=p: read_wav_entry(p)) for p in audio]
    if wav_scp:
        root = resolve_corpus_root(Path(wav_scp).parent, corpus_root)
        for utt, entry, n in read_table(wav_scp):
            items.append(Item(utt, wav_scp, n,
                              lambda e=entry, n=n: read_wav_entry(e, root, where=(wav_scp, n))))
    if data:
        d = DataDir.load(data, corpus_root=corpus_root)
        for utt in d.utts:
            items.append(Item(utt, *d.where("wav.scp", d.recording_of(utt)),
                              lambda u=utt: (load_audio(d, u, rate), rate)))
    _check_unique(items)
    return items


def _transcribe(model: ExportedModel, samples: np.ndarray, rate: int, nbest: int,
                lattice_beam: float) -> dict:
    """The JSON record of one recording (without its id): 1-best, and with `nbest` > 0 the n-best."""
    if nbest > 0:
        hyp, entries, conf = model.nbest(samples, rate, nbest, lattice_beam)
        return {**hyp.to_dict(), "nbest": entries, "confidence": conf}
    return model.transcribe(samples, rate).to_dict()


def transcribe_batch(model: ExportedModel, items: list[Item], as_json: bool = False,
                     nbest: int = 0, lattice_beam: float = 8.0, out: TextIO | None = None) -> dict:
    """Print `utt words...` (or a JSON line) per recording; a bad one is logged with where it was
    given and skipped. Returns counts {done, failed, audio_s, busy_s, not_final}."""
    counts = {"done": 0, "failed": 0, "audio_s": 0.0, "busy_s": 0.0, "not_final": 0}
    for it in items:
        loaded, why = attempt(it.load)
        t0 = time.perf_counter()
        rec, why = attempt(_transcribe, model, *loaded, nbest, lattice_beam) if loaded else (None, why)
        if rec is None:
            counts["failed"] += 1
            log.error("%s (utterance %s skipped)", why if why.startswith(it.where)
                      else f"{it.where}: {why}", it.utt)
            continue
        counts["busy_s"] += time.perf_counter() - t0
        counts["done"] += 1
        counts["audio_s"] += len(loaded[0]) / loaded[1]
        counts["not_final"] += not rec["reached_final"]
        line = json.dumps({"utt": it.utt, **rec}) if as_json else f"{it.utt} {rec['text']}".rstrip()
        print(line, file=out or sys.stdout, flush=True)
    return counts

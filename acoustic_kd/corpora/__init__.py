"""Corpus preparation: one module per corpus, each a `prepare_<name>(...)` writing Kaldi data dirs.

`CORPORA` maps a corpus name to its prepare function. Every function takes `out_dir` and writes
`out_dir/{train,dev,test}/` (validated) plus `out_dir/local/` extras, and returns
{set name: path, ...}. Corpora read from disk also take `src_dir` (the user's download).
`synth_digits` (it loads espeak-ng), `librispeech` and `lhotse` (manifests -> one data dir at
`out_dir`) are imported on first use. `stage` (PrepareJob) is the `acoustic-kd prepare` step.
"""

from __future__ import annotations

from pathlib import Path

from .fsdd import prepare_fsdd
from .kaldi import prepare_kaldi
from .mboshi import prepare_mboshi
from .yesno import prepare_yesno


def prepare_synth_digits(out_dir: str | Path, seed: int = 0, **opts) -> dict[str, Path]:
    """Synthesize the synth_digits corpus (see `acoustic_kd.corpora.synth_digits`)."""
    from .synth_digits import prepare_synth_digits as prepare

    return prepare(out_dir, seed=seed, **opts)


def prepare_lhotse(recordings: str | Path, supervisions: str | Path, out_dir: str | Path,
                   **opts) -> dict[str, Path]:
    """Lhotse manifests as one Kaldi data dir (see `acoustic_kd.corpora.lhotse_manifests`)."""
    from .lhotse_manifests import prepare_lhotse as prepare

    return prepare(recordings, supervisions, out_dir, **opts)


def prepare_librispeech(src_dir: str | Path, out_dir: str | Path, **opts) -> dict[str, Path]:
    """LibriSpeech / mini_librispeech from a local copy (see `acoustic_kd.corpora.librispeech`)."""
    from .librispeech import prepare_librispeech as prepare

    return prepare(src_dir, out_dir, **opts)


CORPORA = {
    "fsdd": prepare_fsdd,
    "kaldi": prepare_kaldi,
    "lhotse": prepare_lhotse,
    "librispeech": prepare_librispeech,
    "mboshi": prepare_mboshi,
    "synth_digits": prepare_synth_digits,
    "yesno": prepare_yesno,
}

__all__ = ["CORPORA", "prepare_fsdd", "prepare_kaldi", "prepare_lhotse", "prepare_librispeech",
           "prepare_mboshi",
           "prepare_synth_digits", "prepare_yesno"]

"""Cepstral mean and variance normalisation with Kaldi-layout statistics.

Stats are float64 [2, D+1] exactly as Kaldi's `compute-cmvn-stats` writes them to `cmvn.ark`:
row 0 holds the per-dimension sums and, in the last column, the frame count; row 1 holds the
per-dimension sums of squares (last column unused, 0). Stats are additive, so per-speaker stats
can be accumulated in parallel parts and summed, and global stats are the sum over speakers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import DataError
from ..utils import atomic_write_text, c_sorted
from .io import ArkWriter, EntryLoader, read_scp


#: Kaldi floors the variance at this value (ApplyCmvn) so constant dimensions do not divide by 0.
VAR_FLOOR = 1.0e-20


def compute_cmvn_stats(feats: np.ndarray | Iterable[np.ndarray]) -> np.ndarray:
    """Accumulate CMVN stats of one matrix [T, D] or of several (e.g. all of a speaker's utterances).

    Returns float64 [2, D+1] (Kaldi layout: sums + count in row 0, sums of squares in row 1).
    """
    stats = None
    for m in [feats] if isinstance(feats, np.ndarray) else feats:  # streams: one matrix at a time
        if stats is None:
            stats = np.zeros((2, m.shape[1] + 1), dtype=np.float64)
        accumulate_cmvn_stats(stats, m)
    if stats is None:
        raise ValueError("compute_cmvn_stats: no feature matrices given")
    return stats


def accumulate_cmvn_stats(stats: np.ndarray, feats: np.ndarray) -> None:
    """Add the frames of `feats` [T, D] to `stats` [2, D+1] in place (float64 accumulation)."""
    if feats.ndim != 2 or feats.shape[1] + 1 != stats.shape[1]:
        raise ValueError(f"features of shape {feats.shape} do not match stats of shape {stats.shape}")
    x = feats.astype(np.float64, copy=False)
    stats[0, :-1] += x.sum(axis=0)
    stats[0, -1] += x.shape[0]
    stats[1, :-1] += np.einsum("td,td->d", x, x)


def apply_cmvn(feats: np.ndarray, stats: np.ndarray, norm_vars: bool = False) -> np.ndarray:
    """Normalise `feats` [T, D] with `stats` [2, D+1] (or mean-only [1, D+1]); returns float32 [T, D].

    Mean: x - sum/count. Variance (norm_vars): divided by sqrt(sumsq/count - mean^2), floored at
    1e-20 as Kaldi's ApplyCmvn does.
    """
    stats = np.asarray(stats, dtype=np.float64)
    dim = feats.shape[1]
    if stats.shape[1] != dim + 1:
        raise ValueError(f"CMVN stats of shape {stats.shape} do not match feature dim {dim}")
    count = stats[0, -1]
    if count < 1.0:
        raise ValueError(f"CMVN stats have a frame count of {count} (< 1): nothing to normalise with")
    mean = stats[0, :-1] / count
    out = feats.astype(np.float64) - mean
    if norm_vars:
        if stats.shape[0] < 2:
            raise ValueError("variance normalisation needs 2-row CMVN stats")
        var = np.maximum(stats[1, :-1] / count - mean * mean, VAR_FLOOR)
        out /= np.sqrt(var)
    return out.astype(np.float32)


def write_cmvn(out_dir: Path, ark_path: Path, stats: dict[str, np.ndarray]) -> None:
    """Write per-speaker stats to `ark_path` and `out_dir/cmvn.scp` (C-sorted, atomic)."""
    with ArkWriter(ark_path) as ark:
        for spk in c_sorted(stats):
            ark.write(spk, np.asarray(stats[spk], dtype=np.float64))
    atomic_write_text(out_dir / "cmvn.scp", "".join(f"{k} {v}\n" for k, v in ark.entries))


def read_cmvn_scp(scp: Path) -> dict[str, np.ndarray]:
    """Read a Kaldi `cmvn.scp` -> {speaker: float64 [2, D+1]}; errors name the file and line."""
    loader = EntryLoader(scp)
    out = {}
    for spk, (spec, lineno) in read_scp(scp).items():
        m = np.asarray(loader.load(spec, lineno), dtype=np.float64)
        if m.ndim != 2 or m.shape[0] not in (1, 2):
            raise DataError(scp, f"speaker {spk}: CMVN stats have shape {m.shape}, expected [2, D+1]",
                            "recompute them (acoustic-kd features --force)", lineno)
        out[spk] = m
    return out


def pool_stats(stats: Iterable[np.ndarray]) -> np.ndarray:
    """Sum stats [2, D+1] over speakers (global CMVN for deployment)."""
    total = None
    for s in stats:
        total = np.array(s, dtype=np.float64) if total is None else total + s
    if total is None:
        raise ValueError("no CMVN stats to pool")
    return total

"""GMM features computed from the fbank features: 13 cepstra (DCT of log-mel) + deltas + delta-deltas.

Why not the 40-d fbank directly: neighbouring mel bins are strongly correlated, which a diagonal
covariance cannot model; the DCT decorrelates them (the MFCC recipe), and 13 cepstra + their first and
second time derivatives (39-d) is the classic GMM front end. Computing them from the stored fbank
means the pipeline needs no separate feature stage. Cepstral mean and variance normalisation is per
speaker or per utterance; the align stage normalises variances, per utterance, by default (mean
normalisation per speaker, Kaldi's GMM default, remains available). Deltas trade boundary precision
for noise robustness (`align.delta_order`, `align.delta_window`): a regression over +-2 frames lets
frames up to 40 ms from a speech onset see it. What each choice measured: bench/ALIGNMENT.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from ..errors import ConfigError
from ..utils import read_table


def dct_matrix(num_in: int, num_out: int) -> np.ndarray:
    """Orthonormal DCT-II basis [num_in, num_out] (column k = cosine k)."""
    n = np.arange(num_in)[:, None]
    k = np.arange(num_out)[None, :]
    m = np.sqrt(2.0 / num_in) * np.cos(np.pi * k * (2 * n + 1) / (2 * num_in))
    m[:, 0] = np.sqrt(1.0 / num_in)
    return m


def add_deltas(x: np.ndarray, order: int = 2, window: int = 2) -> np.ndarray:
    """Append regression deltas up to `order`: x [T, D] -> [T, D * (order + 1)] (edges replicated)."""
    feats = [np.asarray(x, dtype=np.float64)]
    taps = np.arange(1, window + 1)
    norm = 2.0 * float((taps ** 2).sum())
    for _ in range(order):
        prev = feats[-1]
        padded = np.pad(prev, ((window, window), (0, 0)), mode="edge")
        t = len(prev)
        d = sum(n * (padded[window + n:window + n + t] - padded[window - n:window - n + t])
                for n in taps) / norm
        feats.append(d)
    return np.concatenate(feats, axis=1)


def gmm_features(feats: Mapping[str, np.ndarray], utts: Iterable[str] | None = None,
                 utt2spk: Mapping[str, str] | None = None, num_ceps: int = 13,
                 delta_order: int = 2, norm_vars: bool = False, delta_window: int = 2
                 ) -> dict[str, np.ndarray]:
    """fbank [T, F] per utterance -> float32 [T, num_ceps * (delta_order + 1)] GMM features.

    `feats` is any mapping utt -> fbank (a dict or a FeatureSet); mean (and with `norm_vars`,
    variance) normalisation of the cepstra is per speaker when `utt2spk` is given, otherwise per
    utterance. Variance normalisation helps in noise, where it undoes the compression of the
    cepstral dynamic range. `delta_order` derivatives, each a regression over +-`delta_window`
    frames, are appended.
    """
    if delta_order < 0 or delta_window < 1:
        raise ConfigError(f"need delta_order >= 0 and delta_window >= 1 (got {delta_order}, "
                          f"{delta_window})")
    utts = list(feats) if utts is None else list(utts)
    ceps: dict[str, np.ndarray] = {}
    basis = None
    for u in utts:
        f = np.asarray(feats[u], dtype=np.float64)
        if basis is None:
            basis = dct_matrix(f.shape[1], num_ceps)
        ceps[u] = f @ basis
    groups: dict[str, list[str]] = {}
    for u in utts:
        groups.setdefault(utt2spk[u] if utt2spk else u, []).append(u)
    for members in groups.values():
        pooled = np.concatenate([ceps[u] for u in members])
        mean = pooled.mean(axis=0)
        scale = 1.0 / np.maximum(pooled.std(axis=0), 1e-5) if norm_vars else 1.0
        for u in members:
            ceps[u] = (ceps[u] - mean) * scale
    return {u: add_deltas(ceps[u], delta_order, delta_window).astype(np.float32) for u in utts}


def load_set(data_dir, num_ceps: int = 13, norm_vars: bool = False, cmvn: str = "speaker",
             delta_order: int = 2, delta_window: int = 2, utts: Iterable[str] | None = None
             ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """GMM features (utt -> [T, num_ceps * (delta_order + 1)]) and transcripts of a data dir with
    computed fbank features (of `utts` only, when given: those with features).

    cmvn: "speaker" (per utt2spk speaker) or "utterance" normalisation of the cepstra."""
    from ..features.featureset import FeatureSet

    data_dir = Path(data_dir)
    if cmvn not in ("speaker", "utterance"):
        raise ConfigError(f"unknown GMM cmvn mode {cmvn!r}: use 'speaker' or 'utterance'")
    fs = FeatureSet(data_dir, cmvn="none")  # CMVN is applied to the cepstra
    u2s_path = data_dir / "utt2spk"
    utt2spk = None
    if cmvn == "speaker" and u2s_path.exists():
        utt2spk = {k: v for k, v, _ in read_table(u2s_path)}
    keys = fs.utts if utts is None else [u for u in utts if u in fs]
    feats = gmm_features(fs, keys, utt2spk, num_ceps, delta_order, norm_vars, delta_window)
    texts = {k: v for k, v, _ in read_table(data_dir / "text", min_fields=1)}
    return feats, texts

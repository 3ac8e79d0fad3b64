"""Deployment front end: waveform -> (resample) -> Kaldi fbank -> CMVN, from export metadata alone.

Calls the same fbank and CMVN functions as training (`acoustic_kd.features.fbank`,
`acoustic_kd.features.cmvn`: numpy + kaldi-native-fbank, no torch) with the options recorded at
export time, so deployment features equal training features by construction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.audio import resample
from ..features.cmvn import apply_cmvn, compute_cmvn_stats
from ..features.fbank import INT16_SCALE, FbankConfig, compute_fbank
from ..features.policy import audio_problem


CMVN_ROWS = 1 << 14   # frames normalised at a time


class FeaturePipeline:
    """Waveform in [-1, 1] at any rate -> normalised features [T, D] float32."""

    def __init__(self, features_meta: dict[str, Any], cmvn_meta: dict[str, Any]):
        self.config = FbankConfig.from_dict(features_meta["fbank"])
        scale = float(features_meta.get("waveform_scale", INT16_SCALE))
        if scale != INT16_SCALE:
            raise ValueError(f"export was made with waveform scale {scale}, this runtime uses "
                             f"{INT16_SCALE}: re-export the model with this version")
        self.sample_rate = int(self.config.sample_rate)
        self.frame_shift_s = float(self.config.frame_shift_ms) / 1000.0
        self.cmvn_mode = cmvn_meta.get("mode", "none")
        self.norm_vars = bool(cmvn_meta.get("norm_vars", False))
        self.stats = (np.asarray(cmvn_meta["stats"], dtype=np.float64)
                      if self.cmvn_mode == "global" else None)

    def fbank(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """Raw log-mel fbank [T, D] float32 of mono audio [N] (resampled to the model's rate)."""
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"expected mono audio [N], got shape {x.shape}")
        why = audio_problem(x) if x.size else ""   # no samples: no frames, an empty hypothesis
        if why:
            raise ValueError(why)
        return compute_fbank(resample(x, int(sample_rate), self.sample_rate), self.sample_rate,
                             self.config)

    def __call__(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """fbank then CMVN as recorded at export time: [N] audio -> [T, D] float32."""
        feats = self.fbank(samples, sample_rate)
        stats = self.stats
        if stats is None and self.cmvn_mode == "utterance" and len(feats):
            stats = compute_cmvn_stats(feats)
        if stats is not None:  # row blocks, in place: the same values, no float64 copy of it all
            for i in range(0, len(feats), CMVN_ROWS):
                feats[i:i + CMVN_ROWS] = apply_cmvn(feats[i:i + CMVN_ROWS], stats, self.norm_vars)
        return feats

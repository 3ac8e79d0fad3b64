"""Deployment front end: waveform -> (resample) -> Kaldi fbank -> CMVN, from export metadata alone.

Uses kaldi-native-fbank directly with the options recorded at export time, so it computes the
same features as training (`acoustic_kd.features`) without importing the training code.
"""

from __future__ import annotations

from math import gcd
from typing import Any

import kaldi_native_fbank as knf
import numpy as np

#: Kaldi floors the variance at this value before dividing (ApplyCmvn).
_VAR_FLOOR = 1.0e-20


def fbank_options(cfg: dict[str, Any]) -> knf.FbankOptions:
    """kaldi-native-fbank options from FbankConfig fields (missing fields keep Kaldi defaults)."""
    opts = knf.FbankOptions()
    fo, mo = opts.frame_opts, opts.mel_opts
    fo.samp_freq = float(cfg.get("sample_rate", 16000))
    fo.frame_length_ms = float(cfg.get("frame_length_ms", 25.0))
    fo.frame_shift_ms = float(cfg.get("frame_shift_ms", 10.0))
    fo.dither = float(cfg.get("dither", 0.0))
    fo.window_type = str(cfg.get("window_type", "povey"))
    fo.preemph_coeff = float(cfg.get("preemph_coeff", 0.97))
    fo.remove_dc_offset = bool(cfg.get("remove_dc_offset", True))
    fo.snip_edges = bool(cfg.get("snip_edges", True))
    mo.num_bins = int(cfg.get("num_mel_bins", 40))
    mo.low_freq = float(cfg.get("low_freq", 20.0))
    mo.high_freq = float(cfg.get("high_freq", 0.0))
    opts.use_energy = bool(cfg.get("use_energy", False))
    opts.energy_floor = float(cfg.get("energy_floor", 0.0))
    return opts


def resample(samples: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling of float32 [N] audio, clipped to [-1, 1] as training's loader does
    (scipy, imported only when the rates differ)."""
    if orig_rate == target_rate:
        return samples
    from scipy.signal import resample_poly

    g = gcd(int(orig_rate), int(target_rate))
    y = resample_poly(samples, int(target_rate) // g, int(orig_rate) // g).astype(np.float32)
    return np.clip(y, -1.0, 1.0, out=y)


def apply_cmvn(feats: np.ndarray, stats: np.ndarray, norm_vars: bool) -> np.ndarray:
    """Kaldi ApplyCmvn: feats [T, D] with stats [2, D+1] (sums + count, sums of squares) -> float32."""
    count = stats[0, -1]
    mean = stats[0, :-1] / count
    out = feats.astype(np.float64) - mean
    if norm_vars:
        var = np.maximum(stats[1, :-1] / count - mean * mean, _VAR_FLOOR)
        out /= np.sqrt(var)
    return out.astype(np.float32)


class FeaturePipeline:
    """Waveform in [-1, 1] at any rate -> normalised features [T, D] float32."""

    def __init__(self, features_meta: dict[str, Any], cmvn_meta: dict[str, Any]):
        self.config = dict(features_meta["fbank"])
        self.scale = float(features_meta.get("waveform_scale", 1.0))
        self.options = fbank_options(self.config)
        self.sample_rate = int(self.options.frame_opts.samp_freq)
        self.frame_shift_s = float(self.options.frame_opts.frame_shift_ms) / 1000.0
        self.cmvn_mode = cmvn_meta.get("mode", "none")
        self.norm_vars = bool(cmvn_meta.get("norm_vars", False))
        self.stats = (np.asarray(cmvn_meta["stats"], dtype=np.float64)
                      if self.cmvn_mode == "global" else None)

    def fbank(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """Raw log-mel fbank [T, D] float32 of mono audio [N] (resampled to the model's rate)."""
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"expected mono audio [N], got shape {x.shape}")
        x = resample(x, int(sample_rate), self.sample_rate) * np.float32(self.scale)
        fb = knf.OnlineFbank(self.options)
        fb.accept_waveform(self.sample_rate, x)
        fb.input_finished()
        n = fb.num_frames_ready
        out = np.empty((n, self.options.mel_opts.num_bins + int(self.options.use_energy)), np.float32)
        for i in range(n):
            out[i] = fb.get_frame(i)
        return out

    def __call__(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """fbank then CMVN as recorded at export time: [N] audio -> [T, D] float32."""
        feats = self.fbank(samples, sample_rate)
        if self.stats is not None and len(feats):
            feats = apply_cmvn(feats, self.stats, self.norm_vars)
        return feats

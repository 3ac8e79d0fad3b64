"""Feature-domain augmentation of training batches (applied once; teacher and student share it).

Every function maps a batch {x [B, W, D], y [B], idx [B], ...} to a new batch and draws from torch's
global RNG, whose state the trainer checkpoints, so a resumed run augments exactly as an
uninterrupted one. Features are CMVN-normalised, so masking writes 0 (the mean).

Mixup adds `perm` (int64 [B]) and `lam` (float scalar tensor, >= 0.5) to the batch: the mixed input
is lam·x + (1−lam)·x[perm]; its hard target is lam·y + (1−lam)·y[perm] (see `objective`). `y` stays
the dominant label so frame accuracy stays meaningful.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..config_types import check_fields


@dataclass
class AugmentConfig:
    """Augmentation of training batches (YAML section `augment`; all off by default)."""

    time_masks: int = field(default=0, metadata={
        "help": "time masks per window (SpecAugment)", "range": "[0, inf)"})
    time_width: int = field(default=3, metadata={"help": "max frames per time mask", "range": "[0, inf)"})
    freq_masks: int = field(default=0, metadata={"help": "frequency masks per window", "range": "[0, inf)"})
    freq_width: int = field(default=8, metadata={"help": "max bins per frequency mask", "range": "[0, inf)"})
    stretch: float = field(default=0.0, metadata={
        "help": "speed perturbation of the window: time-stretch factor in [1-s, 1+s] (0 = off)",
        "range": "[0, 1)"})
    volume_std: float = field(default=0.0, metadata={
        "help": "std of a per-window constant offset of the log-mel features (volume change)",
        "range": "[0, inf)"})
    noise_std: float = field(default=0.0, metadata={
        "help": "std of additive Gaussian noise (features are CMVN-normalised, ~unit scale)",
        "range": "[0, inf)"})
    mixup_alpha: float = field(default=0.0, metadata={
        "help": "Beta(a, a) parameter of frame mixup across the batch (0 = off)", "range": "[0, inf)"})
    mixup_prob: float = field(default=1.0, metadata={"help": "fraction of batches mixed", "range": "[0, 1]"})

    def __post_init__(self):
        check_fields(self)

    @property
    def enabled(self) -> bool:
        return bool((self.time_masks and self.time_width) or (self.freq_masks and self.freq_width)
                    or self.noise_std > 0 or self.mixup_alpha > 0 or self.stretch > 0
                    or self.volume_std > 0)


def _span_mask(batch: int, length: int, n: int, max_width: int, device) -> torch.Tensor:
    """bool [B, length]: union of n random spans of width U{0..max_width} per row."""
    width = torch.randint(0, max_width + 1, (batch, n), device=device)
    start = (torch.rand(batch, n, device=device) * (length - width + 1).clamp_min(1)).long()
    pos = torch.arange(length, device=device)[None, None, :]
    inside = (pos >= start[..., None]) & (pos < (start + width)[..., None])
    return inside.any(1)


def spec_mask(x: torch.Tensor, time_masks: int, time_width: int, freq_masks: int,
              freq_width: int) -> torch.Tensor:
    """SpecAugment-style masking of each window: x [B, W, D] -> [B, W, D] (masked cells set to 0)."""
    b, w, d = x.shape
    keep = torch.ones(b, w, d, dtype=torch.bool, device=x.device)
    if time_masks and time_width:
        keep &= ~_span_mask(b, w, time_masks, min(time_width, w), x.device)[:, :, None]
    if freq_masks and freq_width:
        keep &= ~_span_mask(b, d, freq_masks, min(freq_width, d), x.device)[:, None, :]
    return x * keep.to(x.dtype)


def time_stretch(x: torch.Tensor, max_change: float) -> torch.Tensor:
    """Speed perturbation of each window about its centre frame: x [B, W, D] -> [B, W, D].

    Frame j is read at centre + (j − centre)·r, r ~ U[1 − max_change, 1 + max_change], by linear
    interpolation (positions outside the window are clamped to its edge frames).
    """
    b, w, _ = x.shape
    centre = (w - 1) / 2
    r = 1 + (2 * torch.rand(b, 1, device=x.device) - 1) * max_change
    pos = (centre + (torch.arange(w, device=x.device)[None, :] - centre) * r).clamp(0, w - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp_max(w - 1)
    frac = (pos - lo).unsqueeze(-1).to(x.dtype)
    take = lambda i: x.gather(1, i.unsqueeze(-1).expand(-1, -1, x.shape[2]))  # noqa: E731
    return take(lo) * (1 - frac) + take(hi) * frac


def add_volume(x: torch.Tensor, std: float) -> torch.Tensor:
    """Volume change: one random offset per window added to every log-mel value: [B, W, D]."""
    return x + std * torch.randn(x.shape[0], 1, 1, device=x.device, dtype=x.dtype)


def add_noise(x: torch.Tensor, std: float) -> torch.Tensor:
    """Additive white Gaussian noise in the feature domain: x [B, W, D] -> [B, W, D]."""
    return x + std * torch.randn_like(x)


def mixup(batch: dict, alpha: float) -> dict:
    """Mix every frame with a random partner of the same batch (lam ~ Beta(alpha, alpha), >= 0.5)."""
    x = batch["x"]
    lam = torch.distributions.Beta(alpha, alpha).sample().to(x.device)
    lam = torch.maximum(lam, 1 - lam)
    perm = torch.randperm(x.shape[0], device=x.device)
    out = dict(batch)
    out.update(x=lam * x + (1 - lam) * x[perm], perm=perm, lam=lam)
    return out


class Augmenter:
    """batch -> augmented batch per `AugmentConfig` (stretch, volume, masking, noise, mixup)."""

    def __init__(self, cfg: AugmentConfig):
        self.cfg = cfg

    def __call__(self, batch: dict) -> dict:
        c = self.cfg
        x = batch["x"]
        if c.stretch > 0:
            x = time_stretch(x, c.stretch)
        if c.volume_std > 0:
            x = add_volume(x, c.volume_std)
        if (c.time_masks and c.time_width) or (c.freq_masks and c.freq_width):
            x = spec_mask(x, c.time_masks, c.time_width, c.freq_masks, c.freq_width)
        if c.noise_std > 0:
            x = add_noise(x, c.noise_std)
        batch = {**batch, "x": x}
        if c.mixup_alpha > 0 and (c.mixup_prob >= 1 or float(torch.rand(())) < c.mixup_prob):
            batch = mixup(batch, c.mixup_alpha)
        return batch

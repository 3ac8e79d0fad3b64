"""Factorised TDNN (TDNN-F; Povey et al., Interspeech 2018) over a fixed context window.

The window x [B, W, D] is read as a sequence of W frames and every layer uses valid padding:

  input   Conv1d(D -> H, kernel k): offsets -(k-1)/2 .. +(k-1)/2, ReLU, norm, dropout
  F       `layers` factorised layers, time stride s each:
            linear  Conv1d(H -> b, kernel 2, dilation s, no bias): offsets {-s, 0}, semi-orthogonal
            affine  Conv1d(b -> H, kernel 2, dilation s):          offsets {0, +s}
            ReLU, norm, dropout, + bypass_scale * the layer's input (its middle frames)
          (s = 0: kernel 1 in both, the layer sees only its own frame); each layer drops 2s frames
  merge   one more factorised layer whose linear part spans all r frames that remain (no bypass),
          so every frame of the window reaches the output, a symmetric window or not
  output  Linear(H -> P)

The semi-orthogonal constraint is the paper's periodic update (`semi_orthogonal_step`), applied to
every linear part by `TDNNF.after_step`, which the trainer calls after each optimiser step.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError


class _ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over channels of a [B, C, T] tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def channel_norm(kind: str, width: int) -> nn.Module:
    """Normalisation of the channels of a [B, C, T] tensor: batch | layer | none."""
    if kind == "batch":
        return nn.BatchNorm1d(width)
    if kind == "layer":
        return _ChannelLayerNorm(width)
    return nn.Identity()


def per_layer(values: tuple[int, ...], n: int) -> list[int]:
    """`values` repeated (last one) or truncated to `n` entries."""
    return [values[min(i, len(values) - 1)] for i in range(n)]


def _wide(weight: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """(M [rows, cols] float32 with rows <= cols, whether it is the transpose of the weight's view)."""
    m = weight.detach().reshape(weight.shape[0], -1).float()
    return (m.t(), True) if m.shape[0] > m.shape[1] else (m, False)


def _target_scale(p: torch.Tensor, scale: float | None) -> torch.Tensor:
    """alpha^2 of the target M M^T = alpha^2 I: fixed, or floating: tr(P P^T) / tr(P)."""
    if scale is not None:
        return p.new_tensor(float(scale) ** 2)
    return (p * p).sum() / p.trace().clamp_min(1e-30)


@torch.no_grad()
def semi_orthogonal_error(weight: torch.Tensor, scale: float | None = None) -> float:
    """||M M^T / alpha^2 - I||_F / sqrt(rows) of a weight viewed as M [rows, cols] (rows <= cols;
    a Conv1d weight [out, in, k] is M [out, in*k]); 0 when M is semi-orthogonal with scale alpha
    (`scale`, or floating: the alpha that fits best)."""
    m, _ = _wide(weight)
    p = m @ m.t()
    eye = torch.eye(p.shape[0], dtype=p.dtype, device=p.device)
    return float(torch.linalg.matrix_norm(p / _target_scale(p, scale) - eye) / p.shape[0] ** 0.5)


@torch.no_grad()
def semi_orthogonal_step(weight: torch.Tensor, scale: float | None = None) -> None:
    """One update M <- M - c (M M^T - alpha^2 I) M toward M M^T = alpha^2 I, in place.

    weight: any shape, viewed as M [rows, cols] (transposed when rows > cols); scale: alpha, or
    None for the floating scale alpha^2 = tr(P P^T) / tr(P), P = M M^T (the constraint then fixes
    only the shape of M, its size stays free). c = 1 / (2 alpha^2) is the paper's nu = 1/(8 alpha^2)
    times the gradient's 4; a singular value sigma moves as x <- x (1 + c alpha^2 (1 - x^2)), x =
    sigma/alpha, which converges quadratically near 1. c is lowered to 1/lambda_max(P) when some
    x^2 exceeds 2, so that no singular value overshoots through zero when M is far from the target.
    """
    m, tall = _wide(weight)
    p = m @ m.t()
    a2 = _target_scale(p, scale)
    if not float(p.trace()) > 0:    # an all-zero weight has no shape to constrain
        return
    lam_max = float(torch.linalg.eigvalsh(p)[-1] / a2)
    c = min(0.5, 1.0 / lam_max) / a2
    eye = torch.eye(p.shape[0], dtype=p.dtype, device=p.device)
    new = m - c * ((p - a2 * eye) @ m)
    weight.copy_((new.t() if tall else new).reshape(weight.shape).to(weight.dtype))


class FactorisedLayer(nn.Module):
    """x [B, H, T] -> [B, H, T - lost]: semi-orthogonal linear bottleneck (b, no bias) then an affine
    back up to H, ReLU, norm, dropout, + bypass_scale * x's middle frames (when bypass_scale > 0).

    kernels: (linear, affine) kernel sizes, both dilated by `dilation`.
    """

    def __init__(self, hidden: int, bottleneck: int, kernels: tuple[int, int], dilation: int,
                 norm: str, dropout: float, bypass_scale: float):
        super().__init__()
        self.linear = nn.Conv1d(hidden, bottleneck, kernels[0], dilation=dilation, bias=False)
        self.affine = nn.Conv1d(bottleneck, hidden, kernels[1], dilation=dilation)
        self.post = nn.Sequential(nn.ReLU(), channel_norm(norm, hidden), nn.Dropout(dropout))
        self.bypass_scale = float(bypass_scale)
        self.lost = dilation * (kernels[0] + kernels[1] - 2)   # even where there is a bypass

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.post(self.affine(self.linear(x)))
        if self.bypass_scale:
            crop = self.lost // 2
            y = y + self.bypass_scale * x[:, :, crop:x.shape[2] - crop]
        return y


class TDNNF(nn.Module):
    """Factorised TDNN over the window (module docstring): x [B, W, D] -> logits [B, P]."""

    def __init__(self, cfg, input_dim: int, num_pdfs: int):
        super().__init__()
        self.config, self.input_dim, self.num_pdfs = cfg, input_dim, num_pdfs
        strides = per_layer(cfg.tdnnf_strides, cfg.layers)
        rest = cfg.window - (cfg.tdnn_kernel - 1) - 2 * sum(strides)
        if rest < 1:
            raise ConfigError(f"TDNN-F: window of {cfg.window} frames is too short for input kernel "
                              f"{cfg.tdnn_kernel} and strides {strides} (they span "
                              f"{cfg.tdnn_kernel + 2 * sum(strides)}); widen model.context or "
                              "lower model.tdnnf_strides")
        h, b = cfg.hidden, cfg.bottleneck
        self.input = nn.Sequential(nn.Conv1d(input_dim, h, cfg.tdnn_kernel), nn.ReLU(),
                                   channel_norm(cfg.norm, h), nn.Dropout(cfg.dropout))
        layers = [FactorisedLayer(h, b, (2, 2) if s else (1, 1), max(s, 1), cfg.norm, cfg.dropout,
                                  cfg.bypass_scale) for s in strides]
        layers.append(FactorisedLayer(h, b, (rest, 1), 1, cfg.norm, cfg.dropout, 0.0))
        self.layers = nn.Sequential(*layers)
        self.out = nn.Linear(h, num_pdfs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, W, D] -> logits [B, P]."""
        return self.out(self.layers(self.input(x.transpose(1, 2))).flatten(1))

    def after_step(self, step: int) -> None:
        """Semi-orthogonal update of every bottleneck every `semiorth_every` optimiser steps."""
        every = self.config.semiorth_every
        if every and step % every == 0:
            for layer in self.layers:
                semi_orthogonal_step(layer.linear.weight)

"""Frame classifiers over a context window: MLP (ReLU), TDNN (dilated 1-D convolutions) and
factorised TDNN (`nnet.tdnnf`).

Every model maps x [B, L+1+R, D] -> logits [B, P] and carries `config`, `input_dim`, `num_pdfs`
so a checkpoint can rebuild it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..config_types import check_fields
from ..errors import ConfigError
from .tdnnf import TDNNF, channel_norm, per_layer


@dataclass
class ModelConfig:
    """Acoustic model architecture (YAML section `model`)."""

    arch: str = field(default="mlp", metadata={
        "help": "network type (tdnnf: factorised TDNN, acoustic_kd.nnet.tdnnf)",
        "choices": ("mlp", "tdnn", "tdnnf")})
    hidden: int = field(default=512, metadata={
        "help": "hidden width (at batch 512 the matmuls run at ~0.85 of the CPU's fp32 peak)",
        "range": "[1, inf)"})
    layers: int = field(default=3, metadata={
        "help": "hidden layers (MLP), conv layers (TDNN) or factorised layers after the input "
                "layer (TDNN-F)", "range": "[1, inf)"})
    dropout: float = field(default=0.0, metadata={
        "help": "dropout after each hidden layer", "range": "[0, 1)"})
    norm: str = field(default="none", metadata={
        "help": "normalisation after each hidden layer", "choices": ("none", "batch", "layer")})
    context: tuple[int, int] = field(default=(10, 10), metadata={
        "help": "left right context frames (the paper used 20 5)", "range": "[0, inf)"})
    tdnn_kernel: int = field(default=3, metadata={
        "help": "TDNN kernel size (TDNN-F: of its input layer)", "range": "[1, inf)"})
    tdnn_dilations: tuple[int, ...] = field(default=(1, 2, 3), metadata={
        "help": "TDNN dilation per layer (repeated/truncated to `layers`)", "range": "[1, inf)"})
    bottleneck: int = field(default=128, metadata={
        "help": "TDNN-F: width of each layer's semi-orthogonal linear bottleneck (Kaldi: 128-160)",
        "range": "[1, inf)"})
    tdnnf_strides: tuple[int, ...] = field(default=(1, 1, 1, 3), metadata={
        "help": "TDNN-F: time stride per factorised layer (repeated/truncated to `layers`; a layer "
                "sees offsets -s, 0, +s; 0 = its own frame only); Kaldi's recipes use 1 1 1 0 3 3 ...",
        "range": "[0, inf)"})
    bypass_scale: float = field(default=0.66, metadata={
        "help": "TDNN-F: weight of each factorised layer's input added to its output (Kaldi: 0.66)",
        "range": "[0, 1]"})
    semiorth_every: int = field(default=4, metadata={
        "help": "TDNN-F: optimiser steps between semi-orthogonal updates of the bottlenecks "
                "(Kaldi: 4; 0 = unconstrained)", "range": "[0, inf)"})

    def __post_init__(self):
        check_fields(self)   # YAML/CLI lists become tuples
        if len(self.context) != 2:
            raise ConfigError(f"model.context must be two ints (left right), got {list(self.context)}")

    @property
    def window(self) -> int:
        return self.context[0] + 1 + self.context[1]


def _norm(kind: str, width: int) -> nn.Module:
    """Normalisation of the features of a [B, C] tensor: batch | layer | none."""
    if kind == "batch":
        return nn.BatchNorm1d(width)
    if kind == "layer":
        return nn.LayerNorm(width)
    return nn.Identity()


class MLP(nn.Module):
    """Flattened window -> `layers` x (Linear, norm, ReLU, dropout) -> Linear to pdfs."""

    def __init__(self, cfg: ModelConfig, input_dim: int, num_pdfs: int):
        super().__init__()
        self.config, self.input_dim, self.num_pdfs = cfg, input_dim, num_pdfs
        mods: list[nn.Module] = []
        width = cfg.window * input_dim
        for _ in range(cfg.layers):
            mods += [nn.Linear(width, cfg.hidden), _norm(cfg.norm, cfg.hidden), nn.ReLU(),
                     nn.Dropout(cfg.dropout)]
            width = cfg.hidden
        mods.append(nn.Linear(width, num_pdfs))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, W, D] -> logits [B, P]."""
        return self.net(x.flatten(1))


class TDNN(nn.Module):
    """Dilated 1-D convolutions over the window (valid padding), then a Linear over what remains."""

    def __init__(self, cfg: ModelConfig, input_dim: int, num_pdfs: int):
        super().__init__()
        self.config, self.input_dim, self.num_pdfs = cfg, input_dim, num_pdfs
        dil = per_layer(cfg.tdnn_dilations, cfg.layers)
        length, chans = cfg.window, input_dim
        mods: list[nn.Module] = []
        for d in dil:
            span = d * (cfg.tdnn_kernel - 1)
            if length - span < 1:
                raise ConfigError(f"TDNN: window of {cfg.window} frames is too short for kernel "
                                  f"{cfg.tdnn_kernel} with dilations {dil}; widen model.context")
            mods += [nn.Conv1d(chans, cfg.hidden, cfg.tdnn_kernel, dilation=d),
                     channel_norm(cfg.norm, cfg.hidden), nn.ReLU(),
                     nn.Dropout(cfg.dropout)]
            length, chans = length - span, cfg.hidden
        self.convs = nn.Sequential(*mods)
        self.out = nn.Linear(chans * length, num_pdfs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, W, D] -> logits [B, P]."""
        return self.out(self.convs(x.transpose(1, 2)).flatten(1))


def build_model(cfg: ModelConfig, input_dim: int, num_pdfs: int) -> nn.Module:
    """The model named by `cfg.arch` (random init from torch's global RNG: seed first)."""
    return {"mlp": MLP, "tdnn": TDNN, "tdnnf": TDNNF}[cfg.arch](cfg, input_dim, num_pdfs)


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def macs_per_frame(model: nn.Module) -> int:
    """Multiply-accumulates of one forward pass for one frame (Linear and Conv1d layers)."""
    cfg = model.config
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.Linear):
            total += mod.in_features * out.numel()
        elif isinstance(mod, nn.Conv1d):
            total += (mod.in_channels // mod.groups) * mod.kernel_size[0] * out.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Linear, nn.Conv1d))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            p = next(model.parameters())
            model(torch.zeros(1, cfg.window, model.input_dim, dtype=p.dtype, device=p.device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return int(total)

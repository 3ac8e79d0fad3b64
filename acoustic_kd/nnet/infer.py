"""Inference: per-frame log-posteriors of an utterance, and frame metrics."""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .data import ArraySource, FrameDataset, split_for_rank


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def log_posteriors(model: nn.Module, feats: np.ndarray, context: tuple[int, int] | None = None,
                   batch_size: int = 4096, temperature: float = 1.0) -> np.ndarray:
    """Log-softmax(logits / temperature) of one utterance: feats [T, D] -> float32 [T, P].

    context defaults to the model's own (`model.config.context`).
    """
    context = tuple(context or model.config.context)
    ds = FrameDataset(ArraySource({"u": np.asarray(feats, np.float32)}), None, context)
    return _dataset_log_posteriors(model, ds, batch_size, temperature)


def _dataset_log_posteriors(model: nn.Module, ds: FrameDataset, batch_size: int,
                            temperature: float) -> np.ndarray:
    was = model.training
    model.eval()
    dev = _device_of(model)
    out = []
    for b in ds.iter_batches(batch_size):
        logits = model(b["x"].to(dev)).float()
        out.append(F.log_softmax(logits / temperature, dim=-1).cpu())
    model.train(was)
    return torch.cat(out).numpy() if out else np.zeros((0, model.num_pdfs), np.float32)


@torch.no_grad()
def frame_metrics(model: nn.Module, ds, batch_size: int = 4096, device: torch.device | None = None,
                  rank: int = 0, world_size: int = 1) -> dict:
    """Frame accuracy and mean cross-entropy (nats) against ds labels (frames with y = -1 skipped).

    Under DDP every rank scores its share of each batch and the sums are all-reduced.
    Returns {"acc", "ce", "frames"}.
    """
    was = model.training
    model.eval()
    device = device or _device_of(model)
    sums = torch.zeros(3, dtype=torch.float64)
    for b in ds.iter_batches(batch_size):
        keep = split_for_rank(torch.arange(len(b["idx"])), rank, world_size)
        x, y = b["x"][keep].to(device), b["y"][keep].to(device)
        mask = y >= 0
        if not bool(mask.any()):
            continue
        logits = model(x[mask]).float()
        yy = y[mask]
        sums += torch.tensor([float((logits.max(-1).indices == yy).sum()),
                              float(F.cross_entropy(logits, yy, reduction="sum")), float(len(yy))],
                             dtype=torch.float64)
    model.train(was)
    if world_size > 1:
        sums = sums.to(device)
        dist.all_reduce(sums)
        sums = sums.cpu()
    correct, ce, n = sums.tolist()
    return {"acc": correct / max(n, 1.0), "ce": ce / max(n, 1.0), "frames": int(n)}

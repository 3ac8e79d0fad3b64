"""The ensemble's combination rules, on K members' per-frame outputs [T, P].

At T = 1, on log-probabilities (`combine`: evaluation, decoding, realignment):
  arithmetic: log (1/K) sum_k p_k              (mixture of the members' posteriors)
  geometric:  log_softmax((1/K) sum_k log p_k) (normalised product of experts)
At temperature T, on logits z_k (`combine_logits`: distillation targets):
  arithmetic: p = mean_k softmax(z_k / T)      (mean of the tempered probabilities)
  geometric:  p = softmax(mean_k z_k / T)      (normalised geometric mean of the tempered
              probabilities: Π_k softmax(z_k/T)^(1/K), renormalised, is exactly this)
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError

RULES = ("arithmetic", "geometric")


def combine(log_probs: Sequence, rule: str = "arithmetic"):
    """Combine K members' log-probs [T, P] (numpy or torch) into ensemble log-probs [T, P].

    Returns the input type (numpy float32 or a torch tensor).
    """
    if rule not in RULES:
        raise ConfigError(f"unknown combination rule {rule!r}; use one of {RULES}")
    if not log_probs:
        raise ConfigError("combine needs at least one member")
    is_np = not isinstance(log_probs[0], torch.Tensor)
    x = torch.stack([torch.as_tensor(np.asarray(a) if is_np else a).float() for a in log_probs])
    if rule == "arithmetic":
        out = torch.logsumexp(x, dim=0) - math.log(len(log_probs))
    else:
        out = F.log_softmax(x.mean(dim=0), dim=-1)
    return out.numpy() if is_np else out


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise ConfigError(f"combination rule must be one of {RULES}, got {rule!r}")
    return rule


def combine_logits(logits: Sequence[torch.Tensor], T: float, rule: str = "arithmetic") -> torch.Tensor:
    """Ensemble probabilities at temperature T from K member logits.

    logits: K tensors [..., P] (same P, else ConfigError); T > 0; rule arithmetic | geometric.
    Returns probs [..., P] float32 summing to 1 over the last dim.
    """
    check_rule(rule)
    if not logits:
        raise ConfigError("no member logits to combine")
    sizes = {int(z.shape[-1]) for z in logits}
    if len(sizes) != 1:
        raise ConfigError(f"members predict different pdf counts {sorted(sizes)}: an ensemble must "
                          "share one alignment/tree; retrain the odd members on the same alignment")
    if T <= 0:
        raise ConfigError(f"temperature must be positive, got {T}")
    if rule == "geometric":   # Π_k softmax(z_k/T)^(1/K), renormalised = softmax(Σ_k z_k / (K·T))
        total = logits[0].float().clone()
        for z in logits[1:]:
            total.add_(z.float())
        return torch.softmax(total / (len(logits) * T), dim=-1)
    return _mean_softmax(logits, T)


def _mean_softmax(logits: Sequence[torch.Tensor], T: float, block: int = 1 << 17) -> torch.Tensor:
    """mean_k softmax(z_k / T) [..., P], accumulated over blocks of rows of ~`block` values, so that
    every pass over a member's block runs in cache (one row of [4096, 2500] is 10 kB)."""
    num_pdfs = logits[0].shape[-1]
    flat = [z.reshape(-1, num_pdfs) for z in logits]
    out = torch.empty(flat[0].shape, dtype=torch.float32, device=flat[0].device)
    rows, w = max(1, block // num_pdfs), 1.0 / len(flat)
    for r in range(0, out.shape[0], rows):
        acc = out[r:r + rows]
        for i, z in enumerate(flat):
            q = torch.softmax(z[r:r + rows].float() / T, dim=-1)
            torch.mul(q, w, out=acc) if i == 0 else acc.add_(q, alpha=w)
    return out.reshape(logits[0].shape)

"""Teacher targets at temperature T: combination of member logits and top-k sparsification.

Combination rules over K members with logits z_k [..., P]:
  arithmetic: p = mean_k softmax(z_k / T)                 (mean of the tempered probabilities)
  geometric:  p = softmax(mean_k z_k / T)                 (normalised geometric mean of the tempered
              probabilities: Π_k softmax(z_k/T)^(1/K), renormalised, is exactly this)
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..ensemble import RULES, combine
from ..errors import ConfigError


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
    # the ensemble's T = 1 rules applied to tempered member distributions
    return combine([F.log_softmax(z.float() / T, dim=-1) for z in logits], rule).exp()


def topk_targets(probs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest probabilities per frame: probs [..., P] -> (idx int32 [..., k], p [..., k]).

    The remainder 1 − Σp is NOT renormalised away: `loss.soft_kl` spreads it uniformly.
    """
    k = min(int(k), probs.shape[-1])
    p, idx = probs.topk(k, dim=-1)
    return idx.to(torch.int32), p


def densify(idx: torch.Tensor, p: torch.Tensor, num_pdfs: int) -> torch.Tensor:
    """Top-k pair -> dense probs [..., P], the remainder spread uniformly over the other classes."""
    p = p.float()
    k = p.shape[-1]
    r = (1.0 - p.sum(-1, keepdim=True)).clamp_min(0.0)
    fill = r / (num_pdfs - k) if k < num_pdfs else torch.zeros_like(r)
    out = fill.expand(*p.shape[:-1], num_pdfs).clone()
    return out.scatter(-1, idx.long(), p)


def storage_bytes_per_frame(k: int, num_pdfs: int, dense: bool = False) -> dict:
    """Bytes per frame of the store vs dense float32: top-k = k·(4 + 2) (int32 idx + fp16 prob).

    ratio = k·(4+2) / (4·P); e.g. P = 1000 needs k ≤ 13 for ≤ 2 %.
    """
    dense_b = 4 * num_pdfs
    stored = dense_b if dense else min(k, num_pdfs) * (4 + 2)
    return {"bytes_per_frame": stored, "dense_bytes_per_frame": dense_b,
            "ratio": stored / dense_b}

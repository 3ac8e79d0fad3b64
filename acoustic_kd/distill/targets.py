"""Teacher targets for distillation: top-k sparsification of the ensemble's probabilities.

The probabilities themselves (members' logits combined at temperature T) come from
`acoustic_kd.ensemble.combine.combine_logits`; the store keeps the k largest per frame.
"""

from __future__ import annotations

import torch


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

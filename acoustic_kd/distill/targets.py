"""Teacher targets for distillation: top-k sparsification of the ensemble's probabilities.

The probabilities themselves (members' logits combined at temperature T) come from
`acoustic_kd.ensemble.combine.combine_logits`; the store keeps the k largest per frame.
"""

from __future__ import annotations

import numpy as np
import torch


def topk_targets(probs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest probabilities per frame: probs [..., P] -> (idx int32 [..., k], p [..., k]).

    The remainder 1 − Σp is NOT renormalised away: `loss.soft_kl` matches it (its `tail` option).
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


def id_dtype(num_pdfs: int) -> np.dtype:
    """The store's pdf-id type: uint16 up to 65536 pdfs (every tied-state inventory in practice), else int32."""
    return np.dtype(np.uint16) if num_pdfs <= 65536 else np.dtype(np.int32)


def storage_bytes_per_frame(k: int, num_pdfs: int, dense: bool = False) -> dict:
    """Bytes per frame of the store vs dense float32: top-k = k·(2 + 2) (uint16 id + fp16 prob;
    4 + 2 beyond 65536 pdfs).

    ratio = k·4 / (4·P) = k / P; e.g. P = 2500 allows k = 50 at 2 %.
    """
    dense_b = 4 * num_pdfs
    stored = dense_b if dense else min(k, num_pdfs) * (id_dtype(num_pdfs).itemsize + 2)
    return {"bytes_per_frame": stored, "dense_bytes_per_frame": dense_b,
            "ratio": stored / dense_b}

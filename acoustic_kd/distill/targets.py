"""Teacher targets for distillation: top-k sparsification of the ensemble's probabilities.

The probabilities themselves (members' logits combined at temperature T) come from
`acoustic_kd.ensemble.combine.combine_logits`; the store keeps the k largest per frame.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def topk_targets(probs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest probabilities per frame: probs [..., P] -> (idx int32 [..., k], p [..., k]).

    The remainder 1 − Σp is NOT renormalised away: `loss.soft_kl` matches it (its `tail` option).
    """
    k = min(int(k), probs.shape[-1])
    flat = probs.reshape(-1, probs.shape[-1])
    p, idx = _grouped_topk(flat, k)
    return idx.to(torch.int32).reshape(*probs.shape[:-1], k), p.reshape(*probs.shape[:-1], k)


def _grouped_topk(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`x.topk(k, dim=-1)` of x [N, P] (values sorted descending; the same values, ties in any order),
    in two smaller selections: the columns are split into s strided groups {g, g+G, g+2G, ...} of
    G = P // s; the k groups with the largest maxima hold every top-k value outside the last P − s·G
    columns (a value in any other group is beaten by k group maxima), so the top k of those k·s
    values plus the last columns are the top k of the row."""
    n, num_pdfs = x.shape
    s = max(2, int(0.7 * math.sqrt(num_pdfs / k)))
    groups = num_pdfs // s
    if groups <= 2 * k:
        return x.topk(k, dim=-1)
    _, top_groups = x[:, :s * groups].reshape(n, s, groups).amax(1).topk(k, dim=-1, sorted=False)
    cand = (top_groups.unsqueeze(-1) + groups * torch.arange(s, device=x.device)).view(n, k * s)
    if s * groups < num_pdfs:
        cand = torch.cat([cand, torch.arange(s * groups, num_pdfs, device=x.device).expand(n, -1)], -1)
    p, j = x.gather(-1, cand).topk(k, dim=-1)
    return p, cand.gather(-1, j)


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

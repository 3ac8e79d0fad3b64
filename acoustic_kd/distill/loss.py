"""Knowledge-distillation loss: α·CE(hard) + (1−α)·T²·KL(p_teacher,T ‖ p_student,T).

All functions reduce over the LAST dimension (pdfs); any leading shape ([B], [B, T], ...) works.

Teacher targets come either dense (probs [..., P], already at temperature T) or as a top-k pair
(idx int [..., k], probs [..., k]). The top-k remainder mass r = 1 − Σ top-k probs is kept, never
renormalised away (renormalising sharpens the target, i.e. silently lowers the temperature), in one
of two ways (`tail`):
  * "uniform" (the default): r is spread uniformly over the P − k classes, folded into closed form
    so that no [..., P] target is materialised:
        −Σ_c p_c log q_c = −Σ_topk p_j log q_j − r/(P−k) · (Σ_all log q_c − Σ_topk log q_j).
  * "rest": the P − k classes not stored form ONE class of mass r, on both sides: the KL is over the
    k + 1 bins (p_1..p_k, r) against (q_1..q_k, 1 − Σ q_top); the student's tail keeps its own shape
    and only its total mass is matched. How the two compare with dense targets:
    recipes/mboshi/RESULTS.md ("What the top-k store loses").
With k = P (r = 0) both reduce to the dense loss.

Frames are excluded by `mask` (False = padding / invalid) from both terms and, for the hard term,
also when the label is −1 (unlabelled transfer data: those frames train on the KD term only).
Each term is a mean over its own valid frames; a term with no valid frame contributes 0.
"""

from __future__ import annotations

from typing import Union

import torch
import torch.nn.functional as F

TopK = tuple[torch.Tensor, torch.Tensor]
Teacher = Union[torch.Tensor, TopK]

_EPS = 1e-12


def _masked_mean(per_frame: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of per_frame [...] over valid [...] (bool); 0 (with grad) when nothing is valid."""
    w = valid.to(per_frame.dtype)
    return (per_frame * w).sum() / w.sum().clamp_min(1.0)


def _valid(shape: torch.Size, mask: torch.Tensor | None, device) -> torch.Tensor:
    if mask is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    return mask.to(device=device, dtype=torch.bool)


def hard_ce(student_logits: torch.Tensor, labels: torch.Tensor,
            mask: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy on hard labels, mean over frames with label >= 0 and mask True.

    student_logits [..., P]; labels int [...] (−1 = no label); mask bool [...] or None. -> scalar.
    """
    valid = _valid(labels.shape, mask, labels.device) & (labels >= 0)
    logp = F.log_softmax(student_logits.float(), dim=-1)
    nll = -logp.gather(-1, labels.clamp_min(0).long().unsqueeze(-1)).squeeze(-1)
    return _masked_mean(nll, valid)


TAILS = ("rest", "uniform")


def check_tail(tail: str) -> str:
    if tail not in TAILS:
        raise ValueError(f"top-k tail must be one of {', '.join(TAILS)}, got {tail!r}")
    return tail


def _xlogx(x: torch.Tensor) -> torch.Tensor:
    return x * torch.log(x.clamp_min(_EPS))


def teacher_entropy(teacher: Teacher, num_pdfs: int, tail: str = "uniform") -> torch.Tensor:
    """Per-frame Σ p log p of the (dense, or top-k with its `tail`) teacher. -> [...]."""
    if isinstance(teacher, torch.Tensor):
        return _xlogx(teacher.float()).sum(-1)
    _, p = teacher
    p = p.float()
    k = p.shape[-1]
    out = _xlogx(p).sum(-1)
    if k < num_pdfs:
        r = (1.0 - p.sum(-1)).clamp_min(0.0)
        if check_tail(tail) == "rest":
            out = out + _xlogx(r)
        else:
            out = out + r * torch.log((r / (num_pdfs - k)).clamp_min(_EPS))
    return out


def soft_cross_entropy(student_logits: torch.Tensor, teacher: Teacher, T: float,
                       tail: str = "uniform") -> torch.Tensor:
    """Per-frame −Σ_c p_teacher,c · log softmax(z/T)_c, a top-k teacher's remainder as `tail`. -> [...]."""
    logq = F.log_softmax(student_logits.float() / T, dim=-1)
    if isinstance(teacher, torch.Tensor):
        return -(teacher.float() * logq).sum(-1)
    idx, p = teacher
    p = p.float()
    num_pdfs, k = logq.shape[-1], p.shape[-1]
    idx = idx.long()
    logq_top = logq.gather(-1, idx)
    out = -(p * logq_top).sum(-1)
    if k < num_pdfs:
        r = (1.0 - p.sum(-1)).clamp_min(0.0)
        if check_tail(tail) == "rest":   # log of the student's mass outside the teacher's top k
            log_rest = torch.logsumexp(logq.scatter(-1, idx, float("-inf")), dim=-1)
            out = out - r * log_rest
        else:
            out = out - r / (num_pdfs - k) * (logq.sum(-1) - logq_top.sum(-1))
    return out


def soft_kl(student_logits: torch.Tensor, teacher: Teacher, T: float,
            mask: torch.Tensor | None = None, tail: str = "uniform") -> torch.Tensor:
    """KL(p_teacher,T ‖ softmax(z/T)) averaged over masked frames (no T² factor). -> scalar.

    student_logits [..., P]; teacher probs [..., P] or (idx [..., k], probs [..., k]) at temperature T;
    tail: how a top-k teacher's remainder is matched ("rest" | "uniform", module docstring).
    """
    per = soft_cross_entropy(student_logits, teacher, T, tail) + teacher_entropy(
        teacher, student_logits.shape[-1], tail)
    return _masked_mean(per, _valid(per.shape, mask, per.device))


def kd_loss(student_logits: torch.Tensor, teacher: Teacher | None, hard_labels: torch.Tensor | None,
            T: float, alpha: float, mask: torch.Tensor | None = None,
            tail: str = "uniform") -> torch.Tensor:
    """α·CE(hard) + (1−α)·T²·KL(p_teacher,T ‖ p_student,T).

    student_logits [..., P] (raw logits); teacher: probs [..., P] at temperature T, or top-k
    (idx int [..., k], probs [..., k]) with its remainder matched as `tail`; hard_labels int [...]
    (−1 = unlabelled); mask bool [...] (False = excluded). T² keeps the soft-term gradient scale
    independent of T (Hinton et al. 2015). alpha = 1 is plain CE (the teacher is not needed).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if T <= 0:
        raise ValueError(f"temperature must be positive, got {T}")
    loss = student_logits.new_zeros((), dtype=torch.float32)
    if alpha > 0.0:
        if hard_labels is None:
            raise ValueError("alpha > 0 needs hard labels")
        loss = loss + alpha * hard_ce(student_logits, hard_labels, mask)
    if alpha < 1.0:
        if teacher is None:
            raise ValueError("alpha < 1 needs teacher targets")
        loss = loss + (1.0 - alpha) * T * T * soft_kl(student_logits, teacher, T, mask, tail)
    return loss

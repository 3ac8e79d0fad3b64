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

Label smoothing ε (`label_smoothing`) changes the hard term only: its target becomes
(1 − ε)·onehot(y) + ε/P, i.e. CE = (1 − ε)·(−log q_y) + ε·mean_c(−log q_c); the soft term is untouched.

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
            mask: torch.Tensor | None = None, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy on hard labels (smoothed by ε = label_smoothing), mean over frames with
    label >= 0 and mask True.

    student_logits [..., P]; labels int [...] (−1 = no label); mask bool [...] or None. -> scalar.
    """
    valid = _valid(labels.shape, mask, labels.device) & (labels >= 0)
    logp = F.log_softmax(student_logits.float(), dim=-1)
    nll = -logp.gather(-1, labels.clamp_min(0).long().unsqueeze(-1)).squeeze(-1)
    if label_smoothing:
        nll = (1.0 - label_smoothing) * nll - label_smoothing * logp.mean(-1)
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


def _softmax_lse(z: torch.Tensor, zmax: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(softmax(z) [N, P], logsumexp(z) [N]) from one fused softmax, given zmax = z.amax(-1): at the
    row's maximum softmax = 1/Σ exp(z − max), so logsumexp = max − log(max softmax)."""
    sm = torch.softmax(z, -1)
    return sm, zmax - torch.log(sm.amax(-1))


def _uniform_tail(p: torch.Tensor, num_pdfs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(fill [N], mass [N]) of a top-k teacher p [N, k]: the remainder's share of each of the P − k
    other classes, and the total Σ p + (P − k)·fill (1, or Σ p where float16 rounding makes it > 1)."""
    k = p.shape[-1]
    psum = p.sum(-1)
    if k >= num_pdfs:
        return torch.zeros_like(psum), psum
    fill = (1.0 - psum).clamp_min(0.0) / (num_pdfs - k)
    return fill, psum + fill * (num_pdfs - k)


class _FusedKD(torch.autograd.Function):
    """α·CE_ε + (1−α)·T²·KL(top-k teacher, uniform tail ‖ q) over [N, P] logits, gradient in closed form.

    With p̃ = the teacher with its remainder spread uniformly (fill on each of the P − k classes not
    stored), S = Σ p̃ and q = softmax(z/T): −Σ p̃ log q = −Σ_topk (p − fill)·z/T − fill·Σ z/T + S·lse(z/T),
    and its gradient (1/T)·(S·q − p̃). Forward: two softmaxes and row statistics; backward writes
    the dense gradient once: α/N_y·(softmax(z) − (1−ε)·onehot(y) − ε/P) + (1−α)·T/N·(S·q − p̃),
    ε the label smoothing of the hard term (CE_ε = lse(z) − (1−ε)·z_y − ε·mean(z)).
    """

    @staticmethod
    def forward(ctx, z, labels, idx, p, T: float, alpha: float, ls: float = 0.0):
        zf = z.float()
        n, num_pdfs = zf.shape
        ctx.T, ctx.alpha, ctx.ls, ctx.dtype, ctx.shape = T, alpha, ls, z.dtype, zf.shape
        loss, saved = zf.new_zeros(()), [labels, idx]
        with torch.autocast(zf.device.type, enabled=False):
            zmax = zf.amax(-1)
            if alpha > 0:
                sm, lse = _softmax_lse(zf, zmax)
                nll = lse - zf.gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)
                if ls:
                    nll = (1.0 - ls) * nll + ls * (lse - zf.mean(-1))
                loss = loss + alpha * _masked_mean(nll, labels >= 0)
                saved.append(sm)
            if alpha < 1 and n:
                zt = zf.div_(T) if zf is not z else zf / T   # zf: a float copy of bf16 logits
                q, lse_t = _softmax_lse(zt, zmax / T)     # max(z/T) = max(z)/T exactly: T > 0
                pf = p.float()
                fill, mass = _uniform_tail(pf, num_pdfs)
                per = (mass * lse_t - ((pf - fill.unsqueeze(-1)) * zt.gather(-1, idx)).sum(-1)
                       - fill * zt.sum(-1) + teacher_entropy((idx, pf), num_pdfs, "uniform"))
                loss = loss + (1.0 - alpha) * T * T * per.mean()
                saved += [q, pf, fill, mass]
        ctx.save_for_backward(*saved)
        return loss

    @staticmethod
    def backward(ctx, g):
        labels, idx, *rest = ctx.saved_tensors
        T, alpha, (n, num_pdfs) = ctx.T, ctx.alpha, ctx.shape
        grad = torch.zeros((n, 1), dtype=torch.float32, device=labels.device)  # grows to [N, P]
        if len(rest) > 1:   # (1−α)·T/N·(S·q − p̃): S·q − fill everywhere, p − fill at the stored ids
            q, pf, fill, mass = rest[-4:]
            c = g * (1.0 - alpha) * T / n
            grad = torch.addcmul(-(c * fill).unsqueeze(-1), q, (c * mass).unsqueeze(-1))
            grad.scatter_add_(-1, idx, -c * (pf - fill.unsqueeze(-1)))
        if alpha > 0:       # α/N_y · (softmax(z) − (1−ε)·onehot(y) − ε/P)
            sm = rest[0]
            valid = (labels >= 0).to(sm.dtype)
            w = ((g * alpha / valid.sum().clamp_min(1.0)) * valid).unsqueeze(-1)
            grad = torch.addcmul(grad, sm, w) if grad.shape[-1] == 1 else grad.addcmul_(sm, w)
            if ctx.ls:
                grad.sub_(w * (ctx.ls / num_pdfs))
            grad.scatter_add_(-1, labels.clamp_min(0).unsqueeze(-1), -w * (1.0 - ctx.ls))
        return grad.expand(n, num_pdfs).to(ctx.dtype), None, None, None, None, None, None


def kd_loss_topk(student_logits: torch.Tensor, hard_labels: torch.Tensor | None,
                 teacher: TopK | None, T: float, alpha: float,
                 label_smoothing: float = 0.0) -> torch.Tensor:
    """`kd_loss` without a mask for a top-k teacher with the "uniform" tail (or none at α = 1), fused.

    student_logits [..., P]; hard_labels int [...] (−1 = unlabelled; may be None when α = 0);
    teacher (idx int [..., k], probs [..., k]) at temperature T; label_smoothing ε of the hard term.
    Equals `kd_loss(..., tail="uniform")` to float rounding in value and gradient, at about half
    its passes over [..., P].
    """
    _check_kd_args(teacher, hard_labels, T, alpha, label_smoothing)
    num_pdfs = student_logits.shape[-1]
    z = student_logits.reshape(-1, num_pdfs)
    labels = (hard_labels.reshape(-1).long() if hard_labels is not None else
              torch.full((z.shape[0],), -1, dtype=torch.long, device=z.device))
    if teacher is None:
        idx, p = z.new_zeros((z.shape[0], 0), dtype=torch.long), z.new_zeros((z.shape[0], 0))
    else:
        idx, p = teacher[0].reshape(-1, teacher[0].shape[-1]).long(), \
            teacher[1].reshape(-1, teacher[1].shape[-1])
    return _FusedKD.apply(z, labels, idx, p, float(T), float(alpha), float(label_smoothing))


def _check_kd_args(teacher, hard_labels, T: float, alpha: float, label_smoothing: float = 0.0) -> None:
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label smoothing must be in [0, 1), got {label_smoothing}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if T <= 0:
        raise ValueError(f"temperature must be positive, got {T}")
    if alpha > 0.0 and hard_labels is None:
        raise ValueError("alpha > 0 needs hard labels")
    if alpha < 1.0 and teacher is None:
        raise ValueError("alpha < 1 needs teacher targets")


def kd_loss(student_logits: torch.Tensor, teacher: Teacher | None, hard_labels: torch.Tensor | None,
            T: float, alpha: float, mask: torch.Tensor | None = None,
            tail: str = "uniform", label_smoothing: float = 0.0) -> torch.Tensor:
    """α·CE(hard) + (1−α)·T²·KL(p_teacher,T ‖ p_student,T).

    student_logits [..., P] (raw logits); teacher: probs [..., P] at temperature T, or top-k
    (idx int [..., k], probs [..., k]) with its remainder matched as `tail`; hard_labels int [...]
    (−1 = unlabelled); mask bool [...] (False = excluded); label_smoothing ε of the hard term
    (module docstring). T² keeps the soft-term gradient scale independent of T (Hinton et al. 2015). alpha = 1 is plain CE (the teacher is not needed).
    Without a mask, a top-k teacher with the uniform tail (or none) takes `kd_loss_topk`.
    """
    _check_kd_args(teacher, hard_labels, T, alpha, label_smoothing)
    if mask is None and check_tail(tail) == "uniform" and (alpha >= 1.0 or isinstance(teacher, tuple)):
        return kd_loss_topk(student_logits, hard_labels, None if alpha >= 1.0 else teacher, T, alpha,
                            label_smoothing)
    loss = student_logits.new_zeros((), dtype=torch.float32)
    if alpha > 0.0:
        loss = loss + alpha * hard_ce(student_logits, hard_labels, mask, label_smoothing)
    if alpha < 1.0:
        loss = loss + (1.0 - alpha) * T * T * soft_kl(student_logits, teacher, T, mask, tail)
    return loss

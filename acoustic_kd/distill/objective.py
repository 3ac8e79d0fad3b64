"""The distillation objective plugged into `nnet.trainer.train(objective=..., augment=...)`.

Teacher targets come from either
  * online: the TeacherEnsemble run on exactly the (augmented) batch the student sees, or
  * cached: a SoftTargetStore looked up by the batch's global frame ids (clean-input targets).
α and T may follow a schedule over training progress (see `Schedule`); the trainer reports
progress through `step_hook`. α = 1 throughout never touches a teacher: that is the hard control.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..ensemble.runner import Context, TeacherEnsemble, crop_window
from ..errors import ConfigError
from .loss import check_tail, hard_ce, kd_loss_topk, soft_kl
from .store import SoftTargetStore


@dataclass
class Schedule:
    """α and T as functions of training progress (in epochs, fractional).

    α: `alpha` during the first `warmup_epochs`, then cosine-annealed to `alpha_final` over
    `anneal_epochs` (0 = switch at once). T: linear from `T` to `T_final` over the whole run.
    `alpha_final` / `T_final` None = constant.
    """

    alpha: float = 0.5
    alpha_final: float | None = None
    warmup_epochs: float = 0.0
    anneal_epochs: float = 0.0
    T: float = 5.0
    T_final: float | None = None
    epochs: float = 1.0

    def alpha_at(self, e: float) -> float:
        if self.alpha_final is None or e < self.warmup_epochs:
            return self.alpha
        if self.anneal_epochs <= 0:
            return self.alpha_final
        f = min(1.0, (e - self.warmup_epochs) / self.anneal_epochs)
        return self.alpha_final + (self.alpha - self.alpha_final) * 0.5 * (1 + math.cos(math.pi * f))

    def T_at(self, e: float) -> float:
        if self.T_final is None:
            return self.T
        return self.T + (self.T_final - self.T) * min(1.0, e / max(self.epochs, 1e-9))

    @property
    def hard_only(self) -> bool:
        return self.alpha >= 1.0 and (self.alpha_final is None or self.alpha_final >= 1.0)


class KDObjective:
    """objective(model, batch) -> (loss, student logits [B, P]); see the module docstring.

    schedule: α/T schedule; steps_per_epoch: optimiser steps per epoch (for progress);
    window: the context of the batch windows; student_context: the student's crop of them;
    frame_map: int64 [N_train] store frame id of each training frame (cached mode; None = identity);
    tail: how a top-k store's remainder mass is matched (`loss.soft_kl`); label_smoothing: ε of
    the hard-label CE (`loss` module docstring; the soft term is untouched).
    """

    def __init__(self, schedule: Schedule, steps_per_epoch: int, window: Context,
                 student_context: Context, teacher: TeacherEnsemble | None = None,
                 store: SoftTargetStore | None = None, frame_map: torch.Tensor | None = None,
                 tail: str = "uniform", label_smoothing: float = 0.0):
        if teacher is not None and store is not None:
            raise ConfigError("give either an online teacher or a soft-target store, not both")
        if not schedule.hard_only and teacher is None and store is None:
            raise ConfigError("alpha < 1 needs teacher targets: pass --soft DIR or --online --members")
        if store is not None and (abs(store.T - schedule.T) > 1e-6 or schedule.T_final is not None):
            raise ConfigError(f"cached soft targets were made at T={store.T}; a cached run must use "
                              "that T and no T schedule (use --online for other temperatures)")
        self.schedule, self.steps_per_epoch = schedule, max(1, int(steps_per_epoch))
        self.window, self.student_context = tuple(window), tuple(student_context)
        self.teacher, self.store, self.frame_map = teacher, store, frame_map
        self.tail = check_tail(tail)
        self.label_smoothing = float(label_smoothing)
        self.step = 0

    # the trainer calls this after every optimiser step
    def step_hook(self, global_step: int, info: dict | None = None) -> None:
        self.step = int(global_step)

    def progress(self) -> float:
        return self.step / self.steps_per_epoch

    def current(self) -> tuple[float, float]:
        """(α, T) for the next step."""
        e = self.progress()
        return self.schedule.alpha_at(e), self.schedule.T_at(e)

    def _fused_store(self) -> bool:
        """Whether the targets are a top-k store matched with the uniform tail (`loss.kd_loss_topk`)."""
        return self.store is not None and not self.store.dense and self.tail == "uniform"

    def _store_targets(self, idx: torch.Tensor, device):
        sid = idx if self.frame_map is None else self.frame_map[idx.cpu()]
        t = self.store.lookup(sid)
        return t.to(device) if isinstance(t, torch.Tensor) else tuple(a.to(device) for a in t)

    def teacher_targets(self, batch: dict, T: float, perm: torch.Tensor | None):
        """[(weight, targets)]: one entry online (the teacher saw the mixed input); two for cached
        mixup (CE is linear in the target, so mixing the two frames' targets = mixing losses)."""
        x = batch["x"]
        if self.teacher is not None:
            self.teacher.to(x.device)
            xt = crop_window(x, self.window, tuple(self.teacher.context))
            return [(1.0, self.teacher(xt.float(), T))]
        a = self._store_targets(batch["idx"], x.device)
        if perm is None:
            return [(1.0, a)]
        lam = float(batch["lam"])
        return [(lam, a), (1.0 - lam, self._store_targets(batch["idx"][perm], x.device))]

    def __call__(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        alpha, T = self.current()
        logits = model(crop_window(batch["x"], self.window, self.student_context))
        perm = batch.get("perm")
        y = batch["y"]
        if perm is None and (alpha >= 1 or self._fused_store()):
            t = None if alpha >= 1 else self._store_targets(batch["idx"], logits.device)
            return kd_loss_topk(logits, y, t, T, alpha, self.label_smoothing), logits
        loss = logits.new_zeros((), dtype=torch.float32)
        if alpha > 0:
            ls = self.label_smoothing
            if perm is None:
                ce = hard_ce(logits, y, label_smoothing=ls)
            else:  # mixup: CE is linear in the target, so mixing targets = mixing losses
                lam = batch["lam"].float()
                ce = (lam * hard_ce(logits, y, label_smoothing=ls)
                      + (1 - lam) * hard_ce(logits, y[perm], label_smoothing=ls))
            loss = loss + alpha * ce
        if alpha < 1:
            kl = sum(w * soft_kl(logits, t, T, tail=self.tail)
                     for w, t in self.teacher_targets(batch, T, perm))
            loss = loss + (1 - alpha) * T * T * kl
        return loss, logits

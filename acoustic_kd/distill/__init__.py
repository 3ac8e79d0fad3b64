"""Distillation of an acoustic-model ensemble into one student (Hinton, Vinyals & Dean 2015).

Loss L = α·CE(hard) + (1−α)·T²·KL(p_teacher,T ‖ p_student,T) (`loss.kd_loss`). Teacher targets
are either cached (`acoustic-kd soft-targets`: top-k shards, `store`) or computed online by the
members on exactly the augmented batch the student sees (`objective`, `nnet.augment`); the
teacher is the ensemble run together (`acoustic_kd.ensemble.runner.TeacherEnsemble`, combination
rules at temperature in `acoustic_kd.ensemble.combine`). The
student and its hard-target control go through one entry point (`train.train_student`,
`stage.distill_stage`); the control is α = 1, so data, augmentation, epochs, optimiser and seed
are identical by construction.

Modules: `loss` (kd_loss, hard_ce, soft_kl), `targets` (top-k sparsification), `store` (top-k
shards), `soft_targets` (compute the store; SoftTargetsJob), `objective` (trainer objective, α/T schedules), `train`
(DistillConfig, train_student, train fraction, transfer sets), `stage` (DistillJob: data dirs
in, the student's exp dir out). Augmentation (SpecAugment-style masks, noise, volume, speed (time-stretch), mixup) is
`acoustic_kd.nnet.augment`, shared with member training.

The defaults (T = 5, α = 0.5, cached top-20 arithmetic-mean targets, a member-size student) come
from sweeps on FSDD; the measurements, and what a speed-perturbed transfer set changes in the
recipes, are in recipes/fsdd/RESULTS.md ("Distillation defaults: the sweeps behind them").
"""

from .loss import hard_ce, kd_loss, soft_kl
from .objective import KDObjective, Schedule
from .soft_targets import SoftTargetConfig, compute_soft_targets
from .store import SoftTargetStore
from .targets import densify, storage_bytes_per_frame, topk_targets

__all__ = ["hard_ce", "kd_loss", "soft_kl", "KDObjective", "Schedule",
           "SoftTargetConfig", "compute_soft_targets", "SoftTargetStore",
           "densify", "storage_bytes_per_frame", "topk_targets"]

"""Distillation of an acoustic-model ensemble into one student (Hinton, Vinyals & Dean 2015).

Loss  L = α·CE(hard) + (1−α)·T²·KL(p_teacher,T ‖ p_student,T)  (`loss.kd_loss`). Teacher targets are
either cached (`acoustic-kd soft-targets`: top-k shards, `store`) or computed online by the members on
exactly the augmented batch the student sees (`teacher`, `augment`, `objective`). The student and its
hard-target control go through the same entry point (`train.train_student`, `stage.distill_stage`);
the control is α = 1, so data, augmentation, epochs, optimiser and seed are identical by construction.

Modules: `loss` (kd_loss, hard_ce, soft_kl), `targets` (combination at temperature, top-k), `teacher`
(the ensemble, context crops, bf16), `store` (top-k shards), `soft_targets` (compute the store),
`augment` (SpecAugment-style masks, noise, volume, speed (time-stretch), mixup), `objective` (trainer
objective, α/T schedules), `train` (DistillConfig, train_student, train fraction, transfer sets),
`stage` (data dirs in, exp dirs out).

Defaults and why (measured on FSDD, 40-d fbank, ±5 frames, 51 pdfs from a crude equal-length state
alignment, 100k training frames; K = 5 members 3×256 ReLU MLP (258k params), 12 epochs AdamW:
members 76.86 ± 0.27 % test frame accuracy, ensemble 78.26 % (arithmetic) / 78.31 % (geometric);
same-size student, 12 epochs, kept = (kd − hard)/(ensemble − hard), seeds 1-3 mean ± std):
  * T = 5: cached targets, α = 0.5: T=1 0.09 (1 seed), T=2 0.29 ± 0.26, T=5 0.62 ± 0.20,
    T=8 0.38 ± 0.11, T=12 0.23 (1 seed). Higher T passes more of the ensemble's
    "which wrong state is plausible" structure; beyond ~5 the targets become too flat.
  * α = 0.5 constant: a pure-KD phase (α 0.5 → 0 after epoch 1) gave 77.58 vs 77.92 (seed 1).
  * teacher = cached, k = 20, arithmetic: online teaching with masks + noise + mixup (T=2/4) was no
    better than the same augmentation on hard targets at 12 epochs (77.22 / 77.41 vs 77.33, seed 1)
    and costs 2-3× the wall time (≈1.5× with `teacher_bf16`); top-k vs dense targets: see below.
  * top-k store: k·(4+2) bytes per frame vs 4·P dense (k=20, P=51: 120 vs 204 B, 59 %; P ≥ 1000
    needs k ≤ 13 for ≤ 2 %); the remainder mass is spread uniformly (see `loss`).
"""

from .augment import AugmentConfig, Augmenter, add_noise, add_volume, mixup, spec_mask, time_stretch
from .loss import hard_ce, kd_loss, soft_kl
from .objective import KDObjective, Schedule
from .soft_targets import SoftTargetConfig, compute_soft_targets
from .store import SoftTargetStore
from .targets import combine_logits, densify, storage_bytes_per_frame, topk_targets
from .teacher import TeacherEnsemble, crop_window, load_teacher

__all__ = ["AugmentConfig", "Augmenter", "add_noise", "add_volume", "mixup", "spec_mask",
           "time_stretch", "hard_ce", "kd_loss", "soft_kl", "KDObjective", "Schedule",
           "SoftTargetConfig", "compute_soft_targets", "SoftTargetStore", "combine_logits",
           "densify", "storage_bytes_per_frame", "topk_targets", "TeacherEnsemble", "crop_window",
           "load_teacher"]

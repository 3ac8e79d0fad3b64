"""Distillation of an acoustic-model ensemble into one student (Hinton, Vinyals & Dean 2015).

Loss L = α·CE(hard) + (1−α)·T²·KL(p_teacher,T ‖ p_student,T) (`loss.kd_loss`). Teacher targets
are either cached (`acoustic-kd soft-targets`: top-k shards, `store`) or computed online by the
members on exactly the augmented batch the student sees (`teacher`, `augment`, `objective`). The
student and its hard-target control go through one entry point (`train.train_student`,
`stage.distill_stage`); the control is α = 1, so data, augmentation, epochs, optimiser and seed
are identical by construction.

Modules: `loss` (kd_loss, hard_ce, soft_kl), `targets` (combination at temperature, top-k),
`teacher` (the ensemble, context crops, bf16), `store` (top-k shards), `soft_targets` (compute the
store), `augment` (SpecAugment-style masks, noise, volume, speed (time-stretch), mixup),
`objective` (trainer objective, α/T schedules), `train` (DistillConfig, train_student, train
fraction, transfer sets), `stage` (data dirs in, exp dirs out).

Defaults and why. Measured on FSDD (40-d fbank, ±5 frames, 51 pdfs from a crude equal-length
state alignment, 100k training frames, test = 12.3k frames of recordings 0-4); K = 5 members
3×256 ReLU MLP (258k params), 12 epochs AdamW: members 76.86 ± 0.27 % test frame accuracy,
ensemble 78.26 % arithmetic / 78.31 % geometric. Same-size student, same 12 epochs; hard control
76.82 ± 0.16; kept = (kd − hard)/(ensemble − hard) paired by seed, seeds 1-3, mean ± std:
  * T = 5 (cached, α = 0.5): T=1 0.09 (1 seed), T=2 0.29 ± 0.26 (the naive recipe), T=3
    0.56 ± 0.22, T=4 0.62 ± 0.13, T=5 0.62 ± 0.20 (77.72 ± 0.24 %), T=8 0.38 ± 0.11, T=12 0.23
    (1 seed): a plateau at T 3-5. Higher T passes the ensemble's ranking of the wrong states,
    which the overconfident (memorising) members hide at T ≤ 2; beyond ~5 targets get too flat.
  * α = 0.5: α=0.8 0.39 ± 0.15, α=0.2 (T=3) 0.53 ± 0.01; α 0.5 → 0 after epoch 1: 77.58 (1 seed).
  * teacher = cached, k = 20, arithmetic: geometric 0.44 ± 0.20; online teaching with feature noise
    + time-stretch (T=5) 0.27 ± 0.44 against the equally augmented control, and with masks + noise
    + mixup (T=2/4) no better than that augmentation on hard targets (77.22 / 77.41 vs 77.33 %, one
    seed), at ≈1.5× (bf16 teacher) to 3× (fp32) the wall time of the cached run; 30 epochs of
    that (T=3, α 0.5 → 0 after 2 epochs): 77.35 / 77.12 vs the same-augmented hard control
    78.07 / 77.59 (seeds 1, 2).
  * 12 epochs: 24 epochs lowered both (kd 77.46 ± 0.22, hard 75.86 ± 0.71, kept 0.66 ± 0.09 only
    because the control overfits more); initialising the student from a member: kd 77.51 ± 0.21 vs
    hard 76.17 ± 0.32 (kept 0.64 ± 0.08).
  * caveat: dropout 0.2 makes the hard control itself 77.97 ± 0.03, and KD onto a dropout student
    hurt (77.35 ± 0.31); on this small, crudely aligned task most of the ensemble's gain is
    regularisation that a single well-regularised model also gets.
  * top-k store: k·(4+2) bytes per frame vs 4·P dense (k=20, P=51: 120 vs 204 B, 59 %; P ≥ 1000
    needs k ≤ 13 for ≤ 2 %); top-k minus dense targets at T=5: +0.21 ± 0.19 points. The remainder
    mass is spread uniformly (see `loss`).
  * ≤ ¼-size student (2×96, 56k params): kd − hard = +0.22 ± 0.25 points (76.08 vs 75.86 %).
  * 3 % of the training utterances (teachers from all data, 40 epochs): hard 55.34 ± 0.45 %,
    soft (T=5) 60.56 ± 0.54 % (+5.2 points; paper Table 5: 44.5 vs 57.0).

The recipes (triphone alignments, seeds 1001-1003; recipes/*/RESULTS.md): the members memorise their
training frames (FSDD, the previous run's members: 96.5 % training frame accuracy; the ensemble
gives the aligned state 0.93 on average there vs 0.83 on dev), so the soft targets of the training
set add little to its hard labels. A transfer set the members have not seen fixes that:
speed-perturbed copies (0.9×, 1.1×; `acoustic-kd data-dir speed-perturb`, aligned by the GMM so the
control trains on exactly the same frames with hard labels). synth_digits kept share: naive T=2 0.48
± 0.23, T=5 on the training set 0.53 ± 0.17, with the copies 1.07 ± 0.22 (student 55.91 ± 0.38 % vs
ensemble 55.77 %, WER 24.82 vs 26.38 %); FSDD 0.19 ± 0.24 on the training set, 0.86 ± 0.04 with the
copies.
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

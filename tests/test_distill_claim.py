"""The project's central claim, measured: a student distilled from an ensemble beats its hard-target
control (same architecture, data, seed, epochs and optimiser; only the loss differs).

The task is small and deterministic, and it is one where an ensemble clearly helps: 10 classes of
8-dim frames whose class means overlap (runs of 4 frames, context ±1), and 40 % of the training and
dev labels replaced by a random class, as an aligner's errors would be; the test labels are clean.
Four members (2×256 MLPs, 30 epochs, no weight decay) fit the noise; their average does not. The
student and its control are a fifth such model (its own seed), distilled from the online ensemble
with the project's loss (1-α)·T²·KL + α·CE at T = 3, α = 0.1, or trained with α = 1.

Measured (1 torch thread; test frame accuracy in %, KL(ensemble ‖ model) in nats):

    data seed  members      ensemble  distilled  control  margin  KL distilled  KL control
    0          66.55-71.13  72.90     72.48      69.97    +2.51   0.012         0.057
    1          68.63-70.73  72.80     72.80      70.43    +2.37   0.017         0.063
    2          66.26-71.74  73.00     73.30      68.84    +4.46   0.010         0.098
    3          68.41-70.40  73.44     72.67      70.40    +2.28   0.013         0.087
    4          67.83-69.83  71.63     71.41      69.83    +1.58   0.010         0.047

The test runs seeds 0-2 and asserts on each a margin of at least MIN_MARGIN = 1.0 point (below the
worst of the five seeds, 1.58), a distilled student within 1.5 points of the ensemble (measured
-0.77..+0.30), an ensemble at least 0.5 above its best member (measured 1.26-3.04), and a KL to
the ensemble under half the control's (measured ratios 0.10-0.27). Dropping T² from the loss (the
KD term then 9× weaker) turns seed 0's margin to -0.73 points and fails it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from acoustic_kd.ensemble import TeacherEnsemble
from acoustic_kd.nnet.augment import AugmentConfig
from acoustic_kd.distill.train import DistillConfig, train_student
from acoustic_kd.nnet.checkpoint import load_checkpoint
from acoustic_kd.nnet.data import FrameDataset
from acoustic_kd.nnet.models import ModelConfig, build_model
from acoustic_kd.nnet.trainer import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

P, D, CTX, RUN = 10, 8, (1, 1), 4
LABEL_NOISE = 0.4
NUM_MEMBERS = 4
T, ALPHA = 3.0, 0.1
MIN_MARGIN = 1.0          # points of test frame accuracy; measured 1.58-4.46 (docstring)


def noisy_frames(num_utts: int, seed: int, label_noise: float) -> FrameDataset:
    """Overlapping class means (fixed) + unit noise; a share of the labels replaced at random."""
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(99).standard_normal((P, D)) * 0.8
    feats, alis = {}, {}
    for i in range(num_utts):
        t = int(rng.integers(20, 40))
        y = np.repeat(rng.integers(0, P, size=t // RUN + 1), RUN)[:t]
        x = (means[y] + rng.standard_normal((t, D))).astype(np.float32)
        flip = rng.random(t) < label_noise
        y[flip] = rng.integers(0, P, size=int(flip.sum()))
        feats[f"s{seed}u{i:03d}"], alis[f"s{seed}u{i:03d}"] = x, y.astype(np.int32)
    return FrameDataset.from_arrays(feats, alis, CTX)


def _config(seed: int) -> TrainConfig:
    return TrainConfig(epochs=30, batch_size=64, lr=3e-3, warmup_steps=5, weight_decay=0.0,
                       patience=0, log_every=0, seed=seed, num_threads=1)


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(ModelConfig(hidden=256, layers=2, context=CTX), D, P)


@torch.no_grad()
def _scores(probs: torch.Tensor, y: torch.Tensor, teacher: torch.Tensor) -> tuple[float, float]:
    """(frame accuracy %, mean KL(teacher ‖ probs) in nats)."""
    acc = 100.0 * float((probs.argmax(-1) == y).float().mean())
    kl = float((teacher * (teacher.clamp_min(1e-12).log() - probs.clamp_min(1e-12).log())).sum(-1).mean())
    return acc, kl


def run_seed(seed: int, root) -> dict:
    """Members, ensemble, distilled student and control on data seed `seed` -> test scores."""
    train_ds = noisy_frames(40, 100 + seed, LABEL_NOISE)
    dev_ds = noisy_frames(60, 200 + seed, LABEL_NOISE)
    test_ds = noisy_frames(200, 300 + seed, 0.0)
    members = []
    for k in range(NUM_MEMBERS):
        s = 10 * seed + k
        train(_model(s), train_ds, dev_ds, _config(s + 1), root / f"m{k}")
        members.append(load_checkpoint(root / f"m{k}" / "final.pt")[0])
    teacher = TeacherEnsemble(members)
    students = {}
    for name, alpha in (("kd", ALPHA), ("hard", 1.0)):
        train_student(_model(1000 + seed), train_ds, dev_ds, _config(1000 + seed),
                      DistillConfig(teacher="online", alpha=alpha, T=T), AugmentConfig(),
                      root / name, teacher=teacher if alpha < 1 else None)
        students[name] = load_checkpoint(root / name / "final.pt")[0].eval()
    b = test_ds.batch(torch.arange(test_ds.num_frames))
    with torch.no_grad():
        ens = teacher(b["x"])
        out = {"members": [_scores(F.softmax(m.eval()(b["x"]), -1), b["y"], ens)[0] for m in members],
               "ensemble": _scores(ens, b["y"], ens)[0]}
        for name, m in students.items():
            out[name], out[f"kl_{name}"] = _scores(F.softmax(m(b["x"]), -1), b["y"], ens)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_distilled_student_beats_its_hard_target_control(seed, tmp_path):
    r = run_seed(seed, tmp_path)
    # the task is one where combining helps (else there is nothing to distil)
    assert r["ensemble"] > max(r["members"]) + 0.5, r
    # the claim: same budget, only the loss differs; a KD term that did nothing (or too little,
    # e.g. T² dropped) leaves the student at the control's level
    assert r["kd"] - r["hard"] >= MIN_MARGIN, r
    assert r["kd"] >= r["ensemble"] - 1.5, r
    # the student learned the ensemble's distribution, not just its argmax (measured 0.010-0.017
    # vs 0.047-0.098 nats)
    assert r["kl_kd"] < 0.5 * r["kl_hard"], r

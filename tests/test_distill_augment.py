"""Augmentation functions, and the online mode's guarantee: the teacher sees the student's input."""

import numpy as np
import pytest
import torch

from acoustic_kd.ensemble import TeacherEnsemble
from acoustic_kd.nnet.augment import (AugmentConfig, Augmenter, add_noise, add_volume, mixup,
                                        spec_mask, time_stretch)
from acoustic_kd.distill.objective import KDObjective, Schedule
from acoustic_kd.distill.train import DistillConfig, resume_step, train_student
from acoustic_kd.errors import ConfigError
from acoustic_kd.nnet.data import FrameDataset
from acoustic_kd.nnet.models import ModelConfig, build_model
from acoustic_kd.nnet.trainer import TrainConfig


def test_spec_mask_noise_mixup_shapes_and_effects():
    torch.manual_seed(0)
    x = torch.randn(64, 7, 10) + 5.0
    m = spec_mask(x, time_masks=1, time_width=3, freq_masks=1, freq_width=4)
    assert m.shape == x.shape
    zero = m == 0
    assert zero.any()
    # masked cells are whole time rows or whole frequency columns of a window
    rows = zero.all(-1)
    cols = zero.all(1)
    assert torch.equal(zero, rows[:, :, None] | cols[:, None, :])
    assert rows.sum(1).max() <= 3 and cols.sum(1).max() <= 4
    assert torch.equal(m[~zero], x[~zero])
    n = add_noise(x, 0.5)
    assert 0.45 < float((n - x).std()) < 0.55
    b = mixup({"x": x, "y": torch.arange(64), "idx": torch.arange(64)}, alpha=0.4)
    lam, perm = b["lam"], b["perm"]
    assert 0.5 <= float(lam) <= 1.0
    assert torch.allclose(b["x"], lam * x + (1 - lam) * x[perm])
    assert torch.equal(b["y"], torch.arange(64))  # y keeps the dominant label
    with pytest.raises(ConfigError):
        AugmentConfig(noise_std=-1)


def test_time_stretch_and_volume():
    x = torch.arange(7.0)[None, :, None].repeat(4, 1, 2)   # frame j holds value j
    assert torch.allclose(time_stretch(x, 0.0), x)
    s = time_stretch(x, 0.3)
    assert torch.allclose(s[:, 3], x[:, 3])                  # the centre frame stays
    slope = s[:, 4, 0] - s[:, 3, 0]                          # = the stretch factor r
    assert bool(((slope >= 0.7 - 1e-6) & (slope <= 1.3 + 1e-6)).all())
    v = add_volume(x, 1.0) - x
    assert torch.allclose(v, v[:, :1, :1].expand_as(v))      # one offset per window


def test_augmenter_is_reproducible_from_the_global_rng():
    aug = Augmenter(AugmentConfig(time_masks=2, freq_masks=2, noise_std=0.1, mixup_alpha=0.3,
                                  stretch=0.1, volume_std=0.5))
    batch = {"x": torch.randn(16, 5, 8), "y": torch.zeros(16, dtype=torch.long),
             "idx": torch.arange(16)}
    torch.manual_seed(3)
    a = aug(batch)
    torch.manual_seed(3)
    b = aug(batch)
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["perm"], b["perm"])


def _data(n_utts=12, seed=0):
    rng = np.random.default_rng(seed)
    feats, alis = {}, {}
    for i in range(n_utts):
        t = int(rng.integers(20, 40))
        y = np.repeat(rng.integers(0, 4, size=t // 5 + 1), 5)[:t]
        feats[f"u{i:02d}"] = (np.eye(4, 6)[y] * 2 + rng.standard_normal((t, 6))).astype(np.float32)
        alis[f"u{i:02d}"] = y.astype(np.int32)
    return feats, alis


def test_online_teacher_sees_exactly_the_student_input(tmp_path):
    feats, alis = _data()
    torch.manual_seed(0)
    teacher = TeacherEnsemble([build_model(ModelConfig(hidden=8, layers=1, context=(2, 1)), 6, 4),
                               build_model(ModelConfig(hidden=8, layers=1, context=(1, 2)), 6, 4)])
    student = build_model(ModelConfig(hidden=8, layers=1, context=(1, 1)), 6, 4)
    seen_t: list[torch.Tensor] = []
    seen_s: list[torch.Tensor] = []
    teacher.members[0].register_forward_hook(lambda m, i, o: seen_t.append(i[0].clone()))
    student.register_forward_hook(lambda m, i, o: seen_s.append(i[0].clone()) if m.training else None)
    train_ds = FrameDataset.from_arrays(feats, alis, context=(2, 2))   # union window
    dev_ds = FrameDataset.from_arrays(feats, alis, context=(1, 1))
    aug = AugmentConfig(time_masks=1, time_width=2, freq_masks=1, freq_width=2, noise_std=0.3,
                        mixup_alpha=0.5, stretch=0.1, volume_std=0.2)
    train_student(student, train_ds, dev_ds, TrainConfig(epochs=1, batch_size=64, log_every=0),
                  DistillConfig(teacher="online", alpha=0.2, T=2.0), aug, tmp_path / "s",
                  teacher=teacher)
    assert len(seen_t) == len(seen_s) == train_ds.num_batches(64)
    assert resume_step(tmp_path / "s") == train_ds.num_batches(64)  # the α/T schedule resumes here
    for t, s in zip(seen_t, seen_s):
        # member 0 sees window frames [0, 4) of 5 (context 2,1); the student frames [1, 4) (1,1)
        assert torch.equal(t[:, 1:4], s)


def test_hard_only_objective_never_calls_the_teacher():
    class Boom(torch.nn.Module):
        num_pdfs, input_dim, context, names = 4, 6, (1, 1), ["boom"]

        def forward(self, x, T):
            raise AssertionError("teacher called in the hard control")

    student = build_model(ModelConfig(hidden=8, layers=1, context=(1, 1)), 6, 4)
    obj = KDObjective(Schedule(alpha=1.0), 1, (1, 1), (1, 1), teacher=Boom())
    batch = {"x": torch.randn(5, 3, 6), "y": torch.tensor([0, 1, 2, 3, -1]), "idx": torch.arange(5)}
    loss, logits = obj(student, batch)
    want = torch.nn.functional.cross_entropy(logits[:4], batch["y"][:4])
    assert loss.item() == pytest.approx(want.item(), abs=1e-6)


def test_schedule_pure_kd_phase_and_temperature_ramp():
    s = Schedule(alpha=0.5, alpha_final=0.0, warmup_epochs=2, anneal_epochs=2, T=1.0, T_final=5.0,
                 epochs=10)
    assert s.alpha_at(1.9) == 0.5 and s.alpha_at(3.0) == pytest.approx(0.25) and s.alpha_at(4) == 0
    assert s.T_at(0) == 1.0 and s.T_at(5) == pytest.approx(3.0) and s.T_at(10) == 5.0
    assert not s.hard_only and Schedule(alpha=1.0).hard_only


def test_cached_mixup_mixes_the_two_frames_targets(tmp_path):
    from acoustic_kd.distill.loss import hard_ce, soft_kl
    from acoustic_kd.distill.soft_targets import SoftTargetConfig, compute_soft_targets
    from acoustic_kd.distill.store import SoftTargetStore

    feats, alis = _data()
    ds = FrameDataset.from_arrays(feats, alis, context=(1, 1))
    torch.manual_seed(0)
    teacher = TeacherEnsemble([build_model(ModelConfig(hidden=8, layers=1, context=(1, 1)), 6, 4)])
    compute_soft_targets(teacher, ds, SoftTargetConfig(T=3.0, k=2), tmp_path / "soft")
    store = SoftTargetStore(tmp_path / "soft")
    student = build_model(ModelConfig(hidden=8, layers=1, context=(1, 1)), 6, 4)
    obj = KDObjective(Schedule(alpha=0.4, T=3.0), 1, (1, 1), (1, 1), store=store)
    torch.manual_seed(1)
    batch = mixup(ds.batch(torch.arange(32)), alpha=0.5)
    loss, z = obj(student, batch)
    lam, perm, y, idx = float(batch["lam"]), batch["perm"], batch["y"], batch["idx"]
    kl_a, kl_b = soft_kl(z, store.lookup(idx), 3.0), soft_kl(z, store.lookup(idx[perm]), 3.0)
    want = (0.4 * (lam * hard_ce(z, y) + (1 - lam) * hard_ce(z, y[perm]))
            + 0.6 * 9 * (lam * kl_a + (1 - lam) * kl_b))
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)


def test_cached_objective_takes_the_fused_loss_with_its_value_and_gradient(tmp_path):
    """Without mixup a top-k store with the uniform tail goes through `loss.kd_loss_topk`: same loss
    and student gradient as the composed α·CE + (1−α)·T²·KL."""
    from acoustic_kd.distill.loss import hard_ce, soft_kl
    from acoustic_kd.distill.soft_targets import SoftTargetConfig, compute_soft_targets
    from acoustic_kd.distill.store import SoftTargetStore

    feats, alis = _data()
    ds = FrameDataset.from_arrays(feats, alis, context=(1, 1))
    torch.manual_seed(0)
    cfg = ModelConfig(hidden=8, layers=1, context=(1, 1))
    compute_soft_targets(TeacherEnsemble([build_model(cfg, 6, 4)]), ds,
                         SoftTargetConfig(T=3.0, k=2), tmp_path / "soft")
    store = SoftTargetStore(tmp_path / "soft")
    student = build_model(cfg, 6, 4)
    batch = ds.batch(torch.arange(32))
    for alpha, ls in ((0.4, 0.0), (1.0, 0.0), (0.4, 0.2), (1.0, 0.1)):
        obj = KDObjective(Schedule(alpha=alpha, T=3.0), 1, (1, 1), (1, 1), store=store,
                          label_smoothing=ls)
        student.zero_grad()
        loss, z = obj(student, batch)
        loss.backward()
        got = [p.grad.clone() for p in student.parameters()]
        student.zero_grad()
        want = alpha * hard_ce(student(batch["x"]), batch["y"], label_smoothing=ls)
        if alpha < 1:
            want = want + (1 - alpha) * 9 * soft_kl(student(batch["x"]), store.lookup(batch["idx"]), 3.0)
        want.backward()
        assert loss.item() == pytest.approx(want.item(), rel=1e-6)
        for a, b in zip(got, (p.grad for p in student.parameters())):
            assert torch.allclose(a, b, atol=1e-6)


def test_member_objective_on_a_mixed_batch_weighs_both_labels():
    from acoustic_kd.nnet.trainer import cross_entropy_objective

    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden=8, layers=1, context=(1, 1)), 5, 4)
    batch = {"x": torch.randn(16, 3, 5), "y": torch.randint(0, 4, (16,)), "idx": torch.arange(16)}
    mixed = mixup(batch, 0.4)
    loss, logits = cross_entropy_objective(model, mixed)
    lam = float(mixed["lam"])
    ce = torch.nn.functional.cross_entropy
    want = lam * ce(logits, batch["y"]) + (1 - lam) * ce(logits, batch["y"][mixed["perm"]])
    assert lam < 1 and torch.allclose(loss, want)
    assert not torch.allclose(loss, ce(logits, batch["y"]))   # the partner's label counts


def test_member_training_applies_and_records_its_augmentation(tmp_path):
    """`acoustic-kd train` with an `augment:` config: the batches are masked (training differs
    from the same seed without it), the config is in the checkpoint and in the stage signature."""
    from acoustic_kd.cli import main
    from acoustic_kd.nnet.checkpoint import read_checkpoint
    from test_distill_e2e import write_set

    train = write_set(tmp_path, "train", 30, 1)
    dev = write_set(tmp_path, "dev", 8, 2)
    common = ["--train-data", train[0], "--train-ali", train[1], "--dev-data", dev[0],
              "--dev-ali", dev[1], "--context", "2", "2", "--hidden", "16", "--layers", "1",
              "--epochs", "2", "--batch-size", "64", "--log-every", "0", "--num-threads", "1"]
    assert main(["train", *common, "--out", str(tmp_path / "plain")]) == 0
    spec = ["--time-masks", "2", "--time-width", "2", "--freq-masks", "1", "--freq-width", "2"]
    assert main(["train", *common, *spec, "--out", str(tmp_path / "spec")]) == 0
    a = read_checkpoint(tmp_path / "plain" / "final.pt")
    b = read_checkpoint(tmp_path / "spec" / "final.pt")
    assert b["meta"]["augment"]["time_masks"] == 2 and a["meta"]["augment"]["time_masks"] == 0
    wa, wb = (next(iter(c["state_dict"].values())) for c in (a, b))
    assert not torch.equal(wa, wb)
    # the same out dir with augmentation switched on is not "already done"
    assert main(["train", *common, *spec, "--out", str(tmp_path / "plain")]) == 0
    assert read_checkpoint(tmp_path / "plain" / "final.pt")["meta"]["augment"]["time_masks"] == 2

"""Trainer: learning, checkpoints that rebuild the model, exact kill-and-resume, hooks, early stop."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from acoustic_kd.nnet import (FrameDataset, ModelConfig, TrainConfig, build_model, load_checkpoint,
                              log_posteriors, train)
from acoustic_kd.nnet.data import make_synthetic

CTX = (2, 2)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def task():
    tr = FrameDataset.from_arrays(*make_synthetic(30, num_pdfs=6, dim=8, seed=0), CTX)
    dv = FrameDataset.from_arrays(*make_synthetic(8, num_pdfs=6, dim=8, seed=1), CTX)
    return tr, dv


def _model(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return build_model(ModelConfig(hidden=48, layers=2, context=CTX, dropout=dropout), 8, 6)


def _cfg(**kw):
    base = dict(epochs=4, batch_size=64, lr=3e-3, warmup_steps=5, log_every=5, patience=0)
    return TrainConfig(**{**base, **kw})


def test_learns_and_writes_outputs(task, tmp_path):
    tr, dv = task
    res = train(_model(), tr, dv, _cfg(), tmp_path, meta={"cmvn": "none", "priors": [1 / 6] * 6})
    acc = [h["dev_acc"] for h in res["history"]]
    # measured 0.50, 0.59, 0.65, 0.66 over the 4 epochs (the most frequent label is 0.28 of the dev
    # frames): a trainer that stops updating, or scores dev frames against shifted labels, stays low
    assert acc[-1] > 0.6 and acc[-1] > acc[0] + 0.1, acc
    assert res["best"]["dev_acc"] == max(acc)
    for name in ("final.pt", "best.pt", "epoch-4.pt", "epoch-3.pt", "train_log.jsonl", ".train.done"):
        assert (tmp_path / name).exists(), name
    assert not (tmp_path / "epoch-2.pt").exists()     # keep_epochs=2
    recs = [json.loads(x) for x in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in recs if r["type"] == "epoch"] == [1, 2, 3, 4]
    # a second call finds the .done marker and does not retrain
    again = train(_model(), tr, dv, _cfg(), tmp_path)
    assert again["best"] == res["best"]


def test_checkpoint_rebuilds_identical_model(task, tmp_path):
    tr, dv = task
    model = _model()
    train(model, tr, dv, _cfg(epochs=1), tmp_path, meta={"cmvn": "speaker", "priors": [0.5, 0.5]})
    m2, meta = load_checkpoint(tmp_path / "final.pt")
    assert meta["context"] == list(CTX) and meta["num_pdfs"] == 6 and meta["cmvn"] == "speaker"
    assert meta["train_config"]["batch_size"] == 64 and "git_revision" in meta
    assert meta["priors"] == [0.5, 0.5] and meta["history"][0]["epoch"] == 1
    model.eval()
    x = tr.batch(torch.arange(50))["x"]
    with torch.no_grad():
        assert torch.equal(model(x), m2(x))
    feats = np.random.default_rng(0).standard_normal((17, 8)).astype(np.float32)
    lp = log_posteriors(m2, feats, batch_size=5)
    assert lp.shape == (17, 6)
    np.testing.assert_allclose(np.exp(lp).sum(1), 1.0, rtol=1e-5)


class _Kill(Exception):
    pass


def test_kill_mid_epoch_then_resume_gives_identical_weights(task, tmp_path):
    tr, dv = task                               # ~27 steps per epoch at batch 64
    cfg = _cfg(epochs=3, save_every_steps=4, schedule="cosine")
    train(_model(dropout=0.2), tr, dv, cfg, tmp_path / "ref")

    def kill_at_39(step, info):
        if step == 39:                          # mid epoch 2; latest.pt was written at step 36
            raise _Kill()

    with pytest.raises(_Kill):
        train(_model(dropout=0.2), tr, dv, cfg, tmp_path / "run", step_hook=kill_at_39)
    assert (tmp_path / "run" / "latest.pt").exists() and not (tmp_path / "run" / "final.pt").exists()
    torch.manual_seed(123)                      # the resumed run must not depend on the caller's RNG
    train(_model(seed=99, dropout=0.2), tr, dv, cfg, tmp_path / "run")
    ref = torch.load(tmp_path / "ref" / "final.pt", weights_only=False)
    got = torch.load(tmp_path / "run" / "final.pt", weights_only=False)
    for k, v in ref["state_dict"].items():
        assert torch.equal(v, got["state_dict"][k]), k
    strip = [{k: v for k, v in h.items() if k != "frames_per_s"} for h in ref["meta"]["history"]]
    assert strip == [{k: v for k, v in h.items() if k != "frames_per_s"}
                     for h in got["meta"]["history"]]
    steps = [json.loads(x)["step"] for x in (tmp_path / "run" / "train_log.jsonl").read_text()
             .splitlines()]
    assert steps == sorted(steps) and len(steps) == len(set(steps))   # no duplicated records


def test_objective_and_augment_hooks(task, tmp_path):
    tr, dv = task
    seen = {"aug": 0, "obj": 0}

    def augment(batch):
        seen["aug"] += 1
        return {**batch, "x": batch["x"] + 0.01 * torch.randn_like(batch["x"])}

    def objective(model, batch):
        seen["obj"] += 1
        logits = model(batch["x"])
        return torch.nn.functional.cross_entropy(logits, batch["y"], label_smoothing=0.1), logits

    train(_model(), tr, dv, _cfg(epochs=1, bf16=True, optimizer="sgd", lr=0.05), tmp_path,
          objective=objective, augment=augment)
    assert seen["aug"] == seen["obj"] == tr.num_batches(64)


def test_label_smoothing_of_the_member_objective(task, tmp_path):
    """ε = 0 trains exactly as the plain CE objective (same weights, bit for bit); ε > 0 is the CE
    against (1 − ε)·onehot + ε/P, unlabelled frames left out."""
    from acoustic_kd.nnet.trainer import cross_entropy_objective

    tr, dv = task

    def plain(model, batch):
        logits = model(batch["x"])
        return torch.nn.functional.cross_entropy(logits.float(), batch["y"], ignore_index=-1), logits

    a, b = _model(), _model()
    train(a, tr, dv, _cfg(epochs=1, label_smoothing=0.0), tmp_path / "default")
    train(b, tr, dv, _cfg(epochs=1), tmp_path / "plain", objective=plain)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k
    batch = tr.batch(torch.arange(40))
    batch["y"][:3] = -1
    loss, logits = cross_entropy_objective(a, batch, label_smoothing=0.25)
    logq = torch.log_softmax(logits.double(), -1)[3:]
    y = batch["y"][3:]
    want = (0.75 * -logq[torch.arange(len(y)), y] + 0.25 * -logq.mean(-1)).mean()
    assert loss.item() == pytest.approx(want.item(), rel=1e-6)
    assert loss.item() > plain(a, batch)[0].item() + 0.01


def test_early_stopping_and_plateau(task, tmp_path):
    tr, dv = task
    res = train(_model(), tr, dv, _cfg(epochs=20, lr=1e-9, patience=2, schedule="plateau",
                                       min_delta=0.5), tmp_path)
    assert len(res["history"]) == 3 and res["best"]["epoch"] == 1
    assert res["history"][-1]["lr"] == pytest.approx(1e-9 * 0.5)   # lr used in epoch 3: halved once


def test_streaming_dataset_trains_like_the_in_memory_one(tmp_path):
    from acoustic_kd.nnet.data import ArraySource
    from acoustic_kd.nnet.stream import StreamingFrameDataset

    feats, alis = make_synthetic(30, num_pdfs=6, dim=8, seed=0)
    tr = StreamingFrameDataset(ArraySource(feats), alis, CTX, shard_utts=5, buffer_shards=2)
    dv = FrameDataset.from_arrays(*make_synthetic(8, num_pdfs=6, dim=8, seed=1), CTX)
    res = train(_model(), tr, dv, _cfg(), tmp_path)
    assert res["history"][-1]["dev_acc"] > 0.6


def test_bf16_falls_back_to_fp32_without_native_support(task, tmp_path, monkeypatch, caplog):
    from acoustic_kd import utils

    monkeypatch.setattr(utils, "native_bf16", lambda device_type: False)
    monkeypatch.setattr(utils, "_BF16_WARNED", set())
    assert utils.resolve_bf16(False) is False
    with caplog.at_level("WARNING"):
        assert utils.resolve_bf16(True, "cpu", "a test") is False
    assert "no native bfloat16" in caplog.text
    monkeypatch.setenv("ACOUSTIC_KD_BF16", "on")
    assert utils.resolve_bf16(True) is True
    monkeypatch.setenv("ACOUSTIC_KD_BF16", "off")
    monkeypatch.setattr(utils, "native_bf16", lambda device_type: True)
    assert utils.resolve_bf16(True) is False
    monkeypatch.delenv("ACOUSTIC_KD_BF16")
    assert utils.resolve_bf16(True) is True
    # the trainer records what it ran: fp32 where bf16 is not native
    monkeypatch.setattr(utils, "native_bf16", lambda device_type: False)
    res = train(_model(), task[0], task[1], _cfg(epochs=1, bf16=True), tmp_path)
    assert res["history"][0]["bf16"] is False


def test_fused_adamw_takes_the_per_tensor_steps():
    """make_optimizer's fused AdamW (with its weight decay) follows torch's per-tensor AdamW."""
    from acoustic_kd.nnet.trainer import make_optimizer

    cfg = _cfg(lr=1e-2, weight_decay=0.1)
    a, b = _model(3), _model(3)
    opt_a = make_optimizer(a.parameters(), cfg)
    opt_b = torch.optim.AdamW(b.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=False)
    assert opt_a.defaults["fused"] and not opt_b.defaults["fused"]
    x, y = torch.randn(32, sum(CTX) + 1, 8), torch.randint(0, 6, (32,))
    for _ in range(5):
        for m, o in ((a, opt_a), (b, opt_b)):
            o.zero_grad()
            torch.nn.functional.cross_entropy(m(x), y).backward()
            o.step()
    moved = [float((p - q).detach().abs().max()) for p, q in zip(a.parameters(), _model(3).parameters())]
    assert min(moved) > 1e-3                          # the steps did change every tensor
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)

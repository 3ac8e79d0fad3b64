"""Combination at temperature, member checks, the top-k store (round trip, dense equality, resume)."""

import json

import numpy as np
import pytest
import torch

from acoustic_kd.distill.soft_targets import SoftTargetConfig, compute_soft_targets
from acoustic_kd.distill.store import SoftTargetStore
from acoustic_kd.distill.targets import storage_bytes_per_frame, topk_targets
from acoustic_kd.ensemble import TeacherEnsemble, combine_logits, crop_window
from acoustic_kd.errors import ConfigError
from acoustic_kd.nnet.data import FrameDataset
from acoustic_kd.nnet.models import ModelConfig, build_model


def test_combination_rules_at_temperature():
    g = torch.Generator().manual_seed(0)
    z = [torch.randn(4, 6, generator=g) * 3 for _ in range(3)]
    T = 2.5
    ari = combine_logits(z, T, "arithmetic")
    want = sum(torch.softmax(t / T, -1) for t in z) / 3
    assert torch.allclose(ari, want, atol=1e-6)
    geo = combine_logits(z, T, "geometric")
    prod = torch.stack([torch.softmax(t / T, -1) for t in z]).prod(0) ** (1 / 3)
    assert torch.allclose(geo, prod / prod.sum(-1, keepdim=True), atol=1e-6)
    assert torch.allclose(geo.sum(-1), torch.ones(4))
    # higher temperature = flatter (higher entropy) targets
    ent = [-(p * p.log()).sum(-1).mean() for p in (combine_logits(z, t) for t in (1.0, 2.0, 5.0))]
    assert ent[0] < ent[1] < ent[2]


def test_combination_over_many_row_blocks_and_bf16_logits():
    """combine_logits works in blocks of rows: many blocks, odd shapes and bf16 logits give the
    tempered rules' values."""
    g = torch.Generator().manual_seed(1)
    z = [torch.randn(3, 97, 2500, generator=g) * 4 for _ in range(4)]
    T = 5.0
    want = sum(torch.softmax(t / T, -1) for t in z) / 4
    got = combine_logits(z, T, "arithmetic")
    assert got.shape == (3, 97, 2500) and torch.allclose(got, want, rtol=1e-5, atol=1e-9)
    logp = torch.stack([torch.log_softmax(t / T, -1) for t in z]).mean(0)
    assert torch.allclose(combine_logits(z, T, "geometric"), torch.softmax(logp, -1), rtol=1e-4,
                          atol=1e-9)
    zb = [t.bfloat16() for t in z]
    assert torch.allclose(combine_logits(zb, T), sum(torch.softmax(t.float() / T, -1) for t in zb)
                          / 4, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("shape,k", [((64, 2500), 50), ((2, 9, 2501), 50), ((30, 3000), 7),
                                     ((0, 2500), 50), ((5, 12), 4)])
def test_topk_targets_equal_torch_topk(shape, k):
    """The grouped selection returns torch.topk's values (sorted) and ids that hold them."""
    g = torch.Generator().manual_seed(shape[-1])
    p = torch.softmax(torch.randn(*shape, generator=g) * 3, -1)
    idx, got = topk_targets(p, k)
    want = p.topk(k, -1).values
    assert idx.dtype == torch.int32 and idx.shape == want.shape
    assert torch.equal(got, want) and torch.equal(p.gather(-1, idx.long()), want)
    assert all(len(set(r.tolist())) == k for r in idx.reshape(-1, k))
    ties = torch.zeros(8, 2500)
    ties[:, ::3] = 1.0                                       # 834 equal maxima per row
    ti, tp = topk_targets(ties, 50)
    assert torch.equal(tp, torch.ones(8, 50)) and bool((ti % 3 == 0).all())


def test_different_pdf_counts_are_an_error():
    with pytest.raises(ConfigError, match="different pdf counts"):
        combine_logits([torch.randn(2, 5), torch.randn(2, 6)], 1.0)
    cfg = ModelConfig(hidden=8, layers=1, context=(1, 1))
    with pytest.raises(ConfigError, match="different pdf counts"):
        TeacherEnsemble([build_model(cfg, 3, 5), build_model(cfg, 3, 6)])
    with pytest.raises(ConfigError):
        combine_logits([torch.randn(2, 5)], 1.0, "median")


def test_teacher_crops_each_member_context():
    torch.manual_seed(0)
    a = build_model(ModelConfig(hidden=8, layers=1, context=(2, 1)), 3, 5)
    b = build_model(ModelConfig(hidden=8, layers=1, context=(0, 3)), 3, 5)
    t = TeacherEnsemble([a, b], "geometric")
    assert t.context == (2, 3)
    x = torch.randn(4, 6, 3)
    za, zb = t.member_logits(x)
    assert torch.allclose(za, a(x[:, 0:4]))
    assert torch.allclose(zb, b(x[:, 2:6]))
    assert torch.equal(crop_window(x, (2, 3), (2, 3)), x)
    t.train()
    assert not t.training  # the teacher never switches to training mode
    fast = TeacherEnsemble([a, b], "geometric", bf16=True)
    assert torch.allclose(fast(x, 2.0), t(x, 2.0), atol=2e-2)


def _tiny(num_pdfs=7, n_utts=5, seed=0):
    rng = np.random.default_rng(seed)
    feats = {f"u{i}": rng.standard_normal((int(rng.integers(5, 30)), 3)).astype(np.float32)
             for i in range(n_utts)}
    ds = FrameDataset.from_arrays(feats, None, context=(1, 1))
    torch.manual_seed(seed)
    cfg = ModelConfig(hidden=16, layers=1, context=(1, 1))
    teacher = TeacherEnsemble([build_model(cfg, 3, num_pdfs) for _ in range(2)])
    return ds, teacher


def test_store_round_trip_dense_equality_and_resume(tmp_path):
    ds, teacher = _tiny()
    P = teacher.num_pdfs
    cfg = SoftTargetConfig(T=2.0, k=3, shard_frames=17, batch_size=8)
    meta = compute_soft_targets(teacher, ds, cfg, tmp_path / "soft", members=["a.pt", "b.pt"],
                                transfer_set="data/x")
    assert meta["bytes_per_frame"] == 3 * 4 and meta["dense_bytes_per_frame"] == 4 * P
    assert np.load(tmp_path / "soft" / "shard-00000.idx.npy").dtype == np.uint16   # 16-bit ids
    st = SoftTargetStore(tmp_path / "soft")
    st.check_frames(ds.utts, ds.offsets)
    idx = torch.tensor([0, 16, 17, ds.num_frames - 1, 5])
    ti, tp = st.lookup(idx)
    want = teacher(ds.batch(idx)["x"], 2.0)
    wi, wp = topk_targets(want, 3)
    assert torch.equal(ti, wi.long())
    assert torch.allclose(tp, wp, atol=1e-3)       # float16 storage
    assert ti.dtype == torch.int64 and tp.shape == (5, 3)
    # dense store and k = P top-k agree
    dense = compute_soft_targets(teacher, ds, SoftTargetConfig(T=2.0, dense=True, shard_frames=17),
                                 tmp_path / "dense")
    assert dense["ratio"] == 1.0
    pd = SoftTargetStore(tmp_path / "dense").lookup(idx)
    assert torch.allclose(pd, want, atol=1e-6)
    # top-k that would be no smaller than dense (4·k >= 4·P) is stored dense, exactly
    for k, is_dense in ((P + 2, True), (P, True), (P - 1, False)):   # P = 7: 36, 28 >= 28 > 24 bytes
        m = compute_soft_targets(teacher, ds, SoftTargetConfig(T=2.0, k=k, shard_frames=17),
                                 tmp_path / f"k{k}")
        assert m["dense"] == is_dense and m["bytes_per_frame"] == (4 * P if is_dense else 4 * k)
        got = SoftTargetStore(tmp_path / f"k{k}").lookup(idx)
        if is_dense:
            assert m["k"] == P and torch.allclose(got, want, atol=1e-6)
        else:
            wi, wp = topk_targets(want, k)
            assert torch.equal(got[0], wi.long()) and torch.allclose(got[1], wp, atol=1e-3)
    # resume: a lost shard is recomputed, the others are kept
    out = tmp_path / "soft"
    (out / ".shard-00001.done").unlink()
    (out / ".done").unlink()
    before = (out / "shard-00000.prob.npy").stat().st_mtime_ns
    compute_soft_targets(teacher, ds, cfg, out, members=["a.pt", "b.pt"], transfer_set="data/x")
    assert (out / "shard-00000.prob.npy").stat().st_mtime_ns == before
    assert (out / ".shard-00001.done").exists()
    # other settings into the same dir: a clear error unless forced
    with pytest.raises(ConfigError, match="other settings"):
        compute_soft_targets(teacher, ds, SoftTargetConfig(T=5.0, k=3, shard_frames=17), out,
                             members=["a.pt", "b.pt"], transfer_set="data/x")
    m = json.loads((out / "meta.json").read_text())
    assert m["utts"] == ds.utts and m["offsets"][-1] == ds.num_frames and m["T"] == 2.0


def test_store_rejects_other_frames(tmp_path):
    ds, teacher = _tiny()
    compute_soft_targets(teacher, ds, SoftTargetConfig(k=2), tmp_path / "s")
    other, _ = _tiny(seed=1)
    with pytest.raises(Exception, match="do not match"):
        SoftTargetStore(tmp_path / "s").check_frames(other.utts, other.offsets)


def test_storage_formula():
    s = storage_bytes_per_frame(20, 1000)
    assert s["bytes_per_frame"] == 80 and s["ratio"] == pytest.approx(0.02)
    assert storage_bytes_per_frame(50, 2500)["ratio"] == pytest.approx(0.02)   # Mboshi's store
    big = storage_bytes_per_frame(20, 70000)          # beyond 16-bit ids: int32
    assert big["bytes_per_frame"] == 120


def test_store_frame_map_for_a_subset_of_utterances(tmp_path):
    from acoustic_kd.distill.train import store_frame_map

    ds, teacher = _tiny()
    compute_soft_targets(teacher, ds, SoftTargetConfig(T=3.0, k=7), tmp_path / "s")
    st = SoftTargetStore(tmp_path / "s")
    feats = {u: ds.feats[ds.utt_frames(u)].numpy() for u in ds.utts[1::2]}
    sub = FrameDataset.from_arrays(feats, None, context=(1, 1))
    fmap = store_frame_map(st, sub)
    want = teacher(sub.batch(torch.arange(sub.num_frames))["x"], 3.0)
    assert torch.allclose(st.lookup(fmap), want, atol=1e-6)        # k = P: stored dense
    other, _ = _tiny(seed=1)
    with pytest.raises(Exception, match="not in the soft targets"):
        store_frame_map(st, other)

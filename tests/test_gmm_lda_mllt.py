"""LDA+MLLT transforms, GMM updates that starve Gaussians, and the HMM self-loop scale."""

from __future__ import annotations

import numpy as np
import pytest

from acoustic_kd.errors import DataError
from acoustic_kd.gmm.diag_gmm import DiagGmm
from acoustic_kd.gmm.lda_mllt import (apply_transform, estimate_lda, estimate_mllt, mllt_stats,
                                      splice, transform_gmm)


def test_splice_replicates_edges():
    x = np.arange(8, dtype=np.float32).reshape(4, 2)
    s = splice(x, 1)
    assert s.shape == (4, 6)
    np.testing.assert_array_equal(s[0], [0, 1, 0, 1, 2, 3])      # left edge replicated
    np.testing.assert_array_equal(s[3], [4, 5, 6, 7, 6, 7])      # right edge replicated
    np.testing.assert_array_equal(s[1:3, 2:4], x[1:3])           # centre frame in the middle


def test_lda_finds_the_discriminative_direction_and_whitens_within_class(rng):
    # two classes separated along (1, 1, 0); the other directions are noise of larger variance
    n = 4000
    cls = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 3)) * [1.0, 1.0, 3.0]
    x[:, :2] += (cls[:, None] * 2.0 - 1.0) * 2.0
    m, eig = estimate_lda(x, cls, np.ones(n), dim=1)
    assert m.shape == (1, 4)
    direction = m[0, :3] / np.linalg.norm(m[0, :3])
    # catches a swapped eigen-order or using the total instead of the within-class scatter
    assert abs(abs(direction @ np.array([1, 1, 0]) / np.sqrt(2)) - 1) < 0.02
    y = apply_transform(m, x)[:, 0]
    within = np.mean([y[cls == k].var() for k in (0, 1)])
    assert abs(within - 1.0) < 0.05 and abs(y.mean()) < 0.05
    assert eig[0] > 10 * max(eig[1], 1e-9)
    # zero-weight frames are left out: with class 1 weighted out there is nothing to separate
    with pytest.raises(DataError, match="weighted frames"):
        estimate_lda(x, cls, np.zeros(n), dim=1)


def test_mllt_decorrelates_a_shared_correlated_covariance(rng):
    # every class has the same strongly correlated covariance: diagonal Gaussians fit badly until
    # the features are rotated; MLLT must find that rotation and raise the diagonal likelihood
    cov = np.array([[1.0, 0.9], [0.9, 1.0]])
    chol = np.linalg.cholesky(cov)
    means = np.array([[0.0, 0.0], [3.0, -1.0], [-2.0, 2.0]])
    pdf = rng.integers(0, 3, 6000)
    x = (means[pdf] + rng.normal(size=(6000, 2)) @ chol.T).astype(np.float32)

    def fit(feats):
        n = np.bincount(pdf, minlength=3).astype(float)
        s1 = np.zeros((3, 2))
        s2 = np.zeros((3, 2))
        np.add.at(s1, pdf, feats)
        np.add.at(s2, pdf, feats.astype(float) ** 2)
        return DiagGmm.from_stats(n, s1, s2, np.full(2, 1e-3), feats.mean(0), feats.var(0))

    gmm = fit(x)
    g, count = mllt_stats(gmm, x, pdf)
    a, gain = estimate_mllt(g, count)
    y = (x @ a.T).astype(np.float32)
    before = gmm.accumulate(x, pdf).avg_loglike
    after = fit(y).accumulate(y, pdf).avg_loglike + np.linalg.slogdet(a)[1]   # Jacobian
    assert gain > 0.3 and after > before + 0.3    # catches a wrong row update or a sign error
    resid = np.cov((y - fit(y).means[pdf]).T)
    assert abs(resid[0, 1]) / np.sqrt(resid[0, 0] * resid[1, 1]) < 0.05   # decorrelated
    moved = fit(x)
    transform_gmm(moved, a)
    np.testing.assert_allclose(moved.means, gmm.means @ a.T, rtol=1e-6)


def test_update_never_leaves_a_pdf_without_gaussians():
    # pdf 0 has 3 components whose data are spread thinly (each below min_occ) though the pdf
    # total is above it; an update that drops every starved component would leave pdf 0 empty
    # (the "pdf N has no Gaussian" crash at large tree sizes). The heaviest one must survive.
    means = np.array([[0.0], [1.0], [2.0], [5.0]])
    gmm = DiagGmm(means, np.ones((4, 1)), np.log([1 / 3, 1 / 3, 1 / 3, 1.0]),
                  np.array([0, 0, 0, 1]), 2)
    x = np.array([[0.0], [0.1], [1.0], [1.1], [2.0], [5.0]] + [[5.0]] * 10, dtype=np.float32)
    pdf = np.array([0] * 5 + [1] * 11)
    stats = gmm.accumulate(x, pdf)
    occ0 = stats.occ[:3]
    assert (occ0 < 3.0).all() and occ0.sum() >= 3.0
    gmm.update(stats, np.full(1, 1e-3), min_occ=3.0)
    assert np.bincount(gmm.comp_pdf, minlength=2).tolist() == [1, 1]
    assert gmm.removed_gauss == 2
    assert np.isclose(gmm.means[gmm.comp_pdf == 0, 0][0], 0.0, atol=1.0)


def test_a_gmm_file_without_a_pdf_names_the_file(tmp_path):
    gmm = DiagGmm(np.zeros((2, 1)), np.ones((2, 1)), np.zeros(2), np.array([0, 1]), 2)
    path = tmp_path / "final.gmm.npz"
    gmm.save(path)
    z = dict(np.load(path))
    z["comp_pdf"] = np.array([0, 0])
    np.savez(path, **z)
    with pytest.raises(DataError, match="final.gmm.npz.*pdf 1 has no Gaussian.*--force"):
        DiagGmm.load(path)


def test_cli_tri2_stage_trains_and_realigns_with_its_transform(tmp_path, synth_corpus):
    """`align --through tri2` on a tiny generated data dir: the LDA+MLLT stage trains from the Δ
    triphones' alignment, keeps its transform, and aligns a new set through that transform."""
    import json
    import shutil

    from acoustic_kd.ali import read_alignments
    from acoustic_kd.cli import main
    from acoustic_kd.hmm import HmmModel
    from test_gmm import _tiny_align_args

    rows, args = _tiny_align_args(tmp_path, synth_corpus)
    tri2 = ["--through", "tri2", "--tri2-iters", "4", "--tri2-realign-iters", "2",
            "--mllt-iters", "1", "3", "--tri2-leaves", "90", "--tri2-gauss", "120", "--lda-dim", "20"]
    assert main([*args, *tri2]) == 0
    d = tmp_path / "exp" / "tri2"
    mat = np.load(d / "final.mat.npy")
    assert mat.shape == (20, 13 * 7 + 1)          # 13 cepstra spliced +-3, affine
    log = [json.loads(x) for x in (d / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in log if "mllt_gain" in r] == [1, 3]
    assert all(r["mllt_gain"] > 0 for r in log if "mllt_gain" in r)
    hmm = HmmModel.load(d / "final.hmm.json")
    assert len(read_alignments(d / "ali_train")) == len(rows)
    # a new set is aligned through the stored transform: a copy of the training set must come out
    # (nearly) as the training alignment did; features without the transform would not even fit
    extra = tmp_path / "data" / "again"
    shutil.copytree(tmp_path / "data" / "train", extra)
    assert main([*args, *tri2, "--align-sets", str(extra)]) == 0
    again, train = read_alignments(d / "ali_again"), read_alignments(d / "ali_train")
    assert np.mean(np.concatenate([again[u] == train[u] for u in again])) > 0.9
    assert max(int(a.max()) for a in again.values()) < hmm.num_pdfs


def test_self_loop_scale_keeps_the_duration_model_from_outweighing_the_acoustics():
    # word Y = phone A (2 states); the second state's pdf has a near-certain self-loop, the first
    # a cheap exit. Acoustics (scaled 0.1 as in alignment) favour state 0 for the first 6 frames by
    # 1 per frame. With transitions at full weight (self_loop_scale 1) staying in state 1 is so cheap
    # that state 0 is cut to one frame -- the collapse seen on real speech; at Kaldi's 0.1 the
    # acoustics decide. Catches the scale being ignored or applied to the acoustics instead.
    from acoustic_kd.gmm.align import viterbi_batch
    from acoustic_kd.gmm.graph import compile_graph
    from test_gmm import _toy_lang

    lang, hmm = _toy_lang()
    g = compile_graph(hmm, lang, ["Y"], sil_prob=1e-6)
    chain = [ids for w, _, ids in g.segments if w == 0][0]
    p0, p1 = g.pdf[chain[0]], g.pdf[chain[1]]
    hmm.log_self[p0], hmm.log_fwd[p0] = np.log(0.05), np.log(0.95)
    hmm.log_self[p1], hmm.log_fwd[p1] = np.log(0.999), np.log(0.001)
    em = np.full((12, g.num_states), -50.0)
    em[:, chain[0]] = [0.1 * 10.0] * 6 + [0.0] * 6
    em[:, chain[1]] = [0.0] * 6 + [0.1 * 10.0] * 6
    frames_in_0 = {}
    for scale in (1.0, 0.1):
        path, _ = viterbi_batch([g], [em], beam=np.inf, hmm=hmm, self_loop_scale=scale)[0]
        frames_in_0[scale] = int((path == chain[0]).sum())
    assert frames_in_0[1.0] == 1 and frames_in_0[0.1] == 6, frames_in_0

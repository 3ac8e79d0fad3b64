"""fMLLR estimation (gmm/fmllr.py) and the speaker-adaptive tri3 stage (gmm/sat.py)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from acoustic_kd.gmm.diag_gmm import DiagGmm
from acoustic_kd.gmm.fmllr import (apply_fmllr, estimate_fmllr, estimate_speakers, identity,
                                   load_transforms)


def _speaker(rng, n=6000, d=5, pdfs=6, comps=2):
    """A diagonal GMM (2 components per pdf) and frames drawn from it with their pdfs."""
    means = rng.normal(scale=3.0, size=(pdfs * comps, d))
    var = rng.uniform(0.3, 1.5, size=(pdfs * comps, d))
    gmm = DiagGmm(means, var, np.log(np.full(pdfs * comps, 1.0 / comps)),
                  np.repeat(np.arange(pdfs), comps), pdfs)
    pdf = rng.integers(0, pdfs, n)
    comp = pdf * comps + rng.integers(0, comps, n)
    y = means[comp] + rng.normal(size=(n, d)) * np.sqrt(var[comp])
    return gmm, y, pdf


def test_fmllr_recovers_a_known_affine_distortion(rng):
    # one speaker's frames are the model's distribution through x = M y + c: the ML transform
    # maps them back, W ≈ [M⁻¹, −M⁻¹c]. Catches a wrong cofactor, a wrong root of the quadratic
    # in α, a missing log|A| term (the transform would shrink the features) or stats taken on
    # transformed frames (W would be composed with itself)
    gmm, y, pdf = _speaker(rng)
    d = y.shape[1]
    m = np.eye(d) + 0.3 * rng.normal(size=(d, d))
    c = rng.normal(size=d)
    x = y @ m.T + c
    minv = np.linalg.inv(m)
    truth = np.concatenate([minv, -(minv @ c)[:, None]], axis=1)
    r = estimate_fmllr(gmm, x, pdf, em_iters=8, passes=10, min_frames=100)
    assert not r.identity and r.frames == len(x)
    assert np.abs(r.w - truth).max() < 0.1, np.abs(r.w - truth).max()
    assert np.abs(apply_fmllr(r.w, x) - y).mean() < 0.1
    # the auxiliary function never decreases over the row-by-row passes of an E-step, and the
    # log-likelihood (with log|det A|) never decreases over the E-steps
    for trace in r.objective:
        assert np.all(np.diff(trace) >= -1e-9 * abs(trace[-1])), trace
    assert np.all(np.diff(r.loglike) >= -1e-4), r.loglike
    assert r.aux_gain > 1.0 and r.loglike_gain > 1.0
    # undistorted frames: (nearly) the identity, (nearly) no gain
    r0 = estimate_fmllr(gmm, y, pdf, em_iters=2, passes=5, min_frames=100)
    assert np.abs(r0.w - identity(d)).max() < 0.1 and r0.loglike_gain < 0.01


def test_speakers_with_too_few_frames_keep_the_identity(rng):
    gmm, y, pdf = _speaker(rng, n=3000)
    x = y * 1.5 + 1.0
    spk = np.zeros(len(x), dtype=np.int64)
    spk[:60] = 1                                   # "short": 60 frames
    spk[60:400] = 2                                # "quiet": 340 frames, 300 of them weighted 0
    weight = np.ones(len(x))
    weight[60:360] = 0.0
    trans, rep = estimate_speakers(gmm, x, pdf, spk, ["long", "short", "quiet", "absent"],
                                   weight=weight, em_iters=2, passes=5, min_frames=100)
    assert set(trans) == {"long", "short", "quiet", "absent"}
    for s in ("short", "quiet", "absent"):
        np.testing.assert_array_equal(trans[s], identity(x.shape[1]))
    assert np.abs(trans["long"][:, :-1] - np.eye(x.shape[1]) / 1.5).max() < 0.1
    assert rep["identity"] == 3 and rep["identity_speakers"] == ["absent", "quiet", "short"]
    assert rep["speakers"] == 4 and rep["frames"] == 3000 - 400 and rep["aux_gain"] > 0


def test_cli_tri3_sat_stage_trains_aligns_other_sets_and_beats_tri2(tmp_path, synth_corpus):
    """`align --through tri3` on the tiny generated corpus (one speaker per utterance, 110-400
    frames each): per-speaker transforms are estimated from tri2's alignment and re-estimated
    during training, kept per set, and the training log-likelihood per frame (with log|det A|)
    beats tri2's with the same tree size and Gaussians; another set gets its own transforms from
    a speaker-independent first pass."""
    from acoustic_kd.ali import read_alignments
    from acoustic_kd.cli import main
    from acoustic_kd.errors import DataError
    from acoustic_kd.gmm.run import pass_features
    from acoustic_kd.hmm import HmmModel
    from acoustic_kd.utils import read_table
    from test_gmm import _tiny_align_args

    rows, args = _tiny_align_args(tmp_path, synth_corpus)
    tri2 = ["--tri2-iters", "4", "--tri2-realign-iters", "2", "--mllt-iters", "1", "3",
            "--tri2-leaves", "90", "--tri2-gauss", "120", "--lda-dim", "20"]
    sat = ["--tri3-iters", "4", "--tri3-realign-iters", "2", "--fmllr-iters", "1", "3",
           "--fmllr-min-frames", "100"]
    assert main([*args, *tri2, *sat, "--through", "tri2"]) == 0
    # tri3 alone afterwards: starts from tri2's kept final state alignment
    assert main([*args, *tri2, *sat, "--through", "tri3"]) == 0
    exp = tmp_path / "exp"
    d = exp / "tri3"
    np.testing.assert_array_equal(np.load(d / "final.mat.npy"), np.load(exp / "tri2" / "final.mat.npy"))
    summary = json.loads((d / "summary.json").read_text())
    tri2_sum = json.loads((exp / "tri2" / "summary.json").read_text())
    assert summary["num_pdfs"] <= 90 and summary["num_gauss"] <= 120 + 5
    ali = summary["ali_train"]
    assert ali["aligned"] == len(rows)
    assert ali["avg_loglike_with_logdet"] > tri2_sum["ali_train"]["avg_loglike"] + 0.5, \
        (ali, tri2_sum["ali_train"])
    # the transforms: one per training speaker; the short ones keep the identity, and say so
    spks = {s for _, s, _ in read_table(tmp_path / "data" / "train" / "utt2spk")}
    trans = load_transforms(d / "ali_train" / "trans.npz")
    assert set(trans) == spks and all(w.shape == (20, 21) for w in trans.values())
    reports = ali["fmllr"]
    assert [r["iter"] for r in reports] == ["init", 1, 3]
    assert all(r["aux_gain"] > 0 for r in reports)
    ident = reports[-1]["identity_speakers"]
    assert 0 < len(ident) < len(spks)
    assert all(np.array_equal(trans[s], np.eye(20, 21)) for s in ident)
    log = [json.loads(x) for x in (d / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in log if "fmllr_gain" in r] == [1, 3]
    assert all("avg_logdet" in r for r in log)
    # another set: a speaker-independent pass with tri2, its own transforms, then tri3
    extra = tmp_path / "data" / "again"
    shutil.copytree(tmp_path / "data" / "train", extra)
    marker = (d / ".done").read_text()
    assert main([*args, *tri2, *sat, "--through", "tri3", "--align-sets", str(extra)]) == 0
    assert (d / ".done").read_text() == marker                     # nothing retrained
    again, train = read_alignments(d / "ali_again"), read_alignments(d / "ali_train")
    assert again.keys() == train.keys()
    assert np.mean(np.concatenate([again[u] == train[u] for u in again])) > 0.8
    assert max(int(a.max()) for a in again.values()) < HmmModel.load(d / "final.hmm.json").num_pdfs
    assert set(load_transforms(d / "ali_again" / "trans.npz")) == spks
    feats, _ = pass_features(d, extra)
    assert next(iter(feats.values())).shape[1] == 20
    with pytest.raises(DataError, match="no fMLLR transforms"):
        pass_features(d, tmp_path / "data" / "not_aligned")

"""`acoustic-kd decode --gmm`: a GMM pass decoded on a graph with the networks' tuning, scoring and
outputs, on the tiny generated corpus (conftest's synth_corpus: 14 training utterances, one speaker
each). Measured (2026-12-08): WER on the training set 3.03 % with tri and with tri2 (tuned on a copy
of it); tri3 at acwt 0.083 9.09 % adapted, 28.79 % on the unadapted features."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from acoustic_kd.cli import main

TRI2 = ["--tri2-iters", "4", "--tri2-realign-iters", "2", "--mllt-iters", "1", "3",
        "--tri2-leaves", "90", "--tri2-gauss", "120", "--lda-dim", "20"]
SAT = ["--tri3-iters", "4", "--tri3-realign-iters", "2", "--fmllr-iters", "1", "3",
       "--fmllr-min-frames", "100"]


@pytest.fixture(scope="module")
def gmm_exp(tmp_path_factory, synth_corpus):
    """GMM passes mono .. tri3 trained on the training set, a graph per tri pass, and `dev`: a
    copy of the training set to tune on (the decode refuses to tune on the set it decodes)."""
    from test_gmm import _tiny_align_args

    root = tmp_path_factory.mktemp("gmm_decode")
    _, args = _tiny_align_args(root, synth_corpus)
    assert main([*args, *TRI2, *SAT, "--through", "tri3"]) == 0
    exp = root / "exp"
    for p in ("tri", "tri2", "tri3"):
        assert main(["mkgraph", "--lang", str(root / "lang"), "--model",
                     str(exp / p / "final.hmm.json"), "--out", str(exp / p / "graph")]) == 0
    shutil.copytree(root / "data" / "train", root / "data" / "dev")
    return root


def _decode(root, gmm_pass: str, *extra: str, gmm: str | None = None, graph: str | None = None,
            out=None) -> list[str]:
    """`acoustic-kd decode` of the training set with GMM pass `gmm` (default `gmm_pass`) on the
    graph of pass `graph` (default `gmm_pass`) into exp/decode/gmm_<gmm_pass>_train or `out`."""
    exp, data = root / "exp", root / "data"
    return ["decode", "--graph", str(exp / (graph or gmm_pass) / "graph"), "--data",
            str(data / "train"), "--gmm", str(exp / (gmm or gmm_pass)),
            "--out", str(out or exp / "decode" / f"gmm_{gmm_pass}_train"), *extra]


def _wer(out) -> float:
    from acoustic_kd.report import parse_wer_file

    rate, partial = parse_wer_file(out / "wer")
    assert not partial
    return rate


@pytest.mark.parametrize("gmm_pass", ["tri", "tri2"])
def test_gmm_decode_of_its_training_set_is_accurate_and_its_scores_are_the_gmms(gmm_exp, gmm_pass):
    """tri (cepstra + deltas) and tri2 (LDA+MLLT) decode the speech they were trained on with few
    errors, tuned on dev like the networks; the hypotheses are the best paths of acwt · log p(x|s)
    of the pass's own features (no priors), computed here."""
    from acoustic_kd.decode.decoder import DecodeConfig, Graph, decode_utterance
    from acoustic_kd.decode.gmm_source import GmmPass
    from acoustic_kd.decode.graph import with_word_penalty
    from acoustic_kd.gmm.run import si_features

    root = gmm_exp
    assert main(_decode(root, gmm_pass, "--tune-on-dev", str(root / "data" / "dev"),
                        "--ali", str(root / "exp" / gmm_pass / "ali_train"))) == 0
    out = root / "exp" / "decode" / f"gmm_{gmm_pass}_train"
    assert _wer(out) <= 10.0
    for name in ("hyp.txt", "hyp.json", "cer", "errs.txt", "frame_acc", "tune.json",
                 "tune_surface.txt", "info.json", ".done"):
        assert (out / name).exists(), name
    summary = json.loads((out / "decode.json").read_text())
    assert summary["gmm"] == str(root / "exp" / gmm_pass) and summary["models"] == []
    assert summary["tune"]["method"] == "lattice" and summary["frame_acc"]["acc"] > 0.3
    gp, graph = GmmPass.load(root / "exp" / gmm_pass), Graph.load(root / "exp" / gmm_pass / "graph")
    feats, _ = si_features(gp.path, root / "data" / "train")
    cfg = DecodeConfig(**summary["config"])
    fst = with_word_penalty(graph.fst, cfg.word_penalty) if cfg.word_penalty else graph.fst
    want = {u: [graph.words[i] for i in decode_utterance(
        fst, cfg.acwt * gp.gmm.loglikes(x).astype(np.float32), cfg.beam, cfg.max_active,
        cfg.min_active).word_ids] for u, x in feats.items()}
    got = {line.split()[0]: line.split()[1:] for line in (out / "hyp.txt").read_text().splitlines()}
    assert got == want


def test_sat_pass_is_adapted_per_speaker_from_first_pass_best_paths(gmm_exp):
    """tri3 (SAT) decodes features transformed per speaker by fMLLR estimated from best paths (the
    first with tri2 on its own graph of the same lang, built beside the graph): far fewer errors
    than the same model on the unadapted features."""
    from acoustic_kd.decode.decoder import DecodeConfig, Graph, decode_set, words_of
    from acoustic_kd.decode.gmm_source import GmmPass
    from acoustic_kd.decode.score import read_text, score_both
    from acoustic_kd.gmm.run import si_features

    root = gmm_exp
    assert main(_decode(root, "tri3", "--acwt", "0.083", "--word-penalty", "0")) == 0
    out = root / "exp" / "decode" / "gmm_tri3_train"
    adapted = _wer(out)
    fmllr = json.loads((out / "decode.json").read_text())["fmllr"]
    assert [(r["estimate"], r["model"]) for r in fmllr] == [(1, "tri2"), (2, "tri3")]
    assert all(r["decoded"] == 14 and r["speakers"] == 14 and r["aux_gain"] > 0 for r in fmllr)
    si_graph = root / "exp" / "tri3" / "graph" / "si_tri2"
    assert json.loads((si_graph / "graph.json").read_text())["num_pdfs"] == \
        GmmPass.load(root / "exp" / "tri2").hmm.num_pdfs
    # the same model and scale on the features without transforms
    gp, graph = GmmPass.load(root / "exp" / "tri3"), Graph.load(root / "exp" / "tri3" / "graph")
    feats, _ = si_features(gp.path, root / "data" / "train")
    res, _ = decode_set(graph, sorted(feats), lambda u: gp.loglikes(feats[u]),
                        np.zeros(gp.hmm.num_pdfs), DecodeConfig(acwt=0.083))
    refs = read_text(root / "data" / "train" / "text")
    unadapted = score_both(refs, {u: words_of(graph, r) for u, r in res.items()})["wer"][0].rate
    assert adapted <= 15.0 and unadapted - adapted >= 10.0, (adapted, unadapted)


def test_gmm_with_model_or_a_foreign_graph_is_refused(gmm_exp, capsys):
    """One-line errors before anything is written: --gmm with --model or --priors, a dir that is
    no GMM pass, a graph built with another pass's HMM."""
    root = gmm_exp
    out = root / "exp" / "decode" / "refused"
    assert main(_decode(root, "tri2", "--model", str(root / "m1.pt"), out=out)) == 1
    err = capsys.readouterr().err
    assert "--gmm decodes with the GMM pass's own likelihoods" in err and "--model" in err
    assert len(err.strip().splitlines()) == 1
    assert main(_decode(root, "tri2", "--priors", str(root / "priors.txt"), out=out)) == 1
    assert "--priors" in capsys.readouterr().err
    assert main(_decode(root, "tri2", gmm="absent", out=out)) == 1
    assert "absent/final.hmm.json: not a finished GMM pass" in capsys.readouterr().err
    assert main(_decode(root, "tri2", "--acwt", "0.1", graph="tri", out=out)) == 1
    assert "the graph was built with" in capsys.readouterr().err
    assert not out.exists()

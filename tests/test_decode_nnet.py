"""Decoding from network checkpoints: batched log-posteriors and the decode CLI's --model path."""

from __future__ import annotations

import json

import kaldiio
import numpy as np
import pytest
import torch

from acoustic_kd.cli import main
from acoustic_kd.decode.decoder import (ChunkedLogPost, Graph, decode_utterance, hybrid_loglikes,
                                        nnet_log_posteriors)
from acoustic_kd.decode.graph import build_graph
from acoustic_kd.nnet.checkpoint import save_checkpoint
from acoustic_kd.nnet.infer import log_posteriors
from acoustic_kd.nnet.models import ModelConfig, build_model
from test_decode_fakes import FakeHmm, unigram_arpa, write_lang


def tiny_model(num_pdfs: int, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(ModelConfig(hidden=16, layers=1, context=(2, 2)), 5, num_pdfs).eval()


def test_batched_posteriors_equal_per_utterance():
    rng = np.random.default_rng(0)
    feats = {f"u{i}": rng.normal(size=(int(rng.integers(1, 30)), 5)).astype(np.float32) for i in range(5)}
    model = tiny_model(7)
    got = nnet_log_posteriors([(model, {"context": (2, 2)})], feats, sorted(feats), batch_size=16)
    for u, x in feats.items():
        np.testing.assert_allclose(got[u], log_posteriors(model, x, (2, 2)), atol=1e-5)


def test_chunked_source_computes_each_chunk_once():
    calls = []

    def many(us):
        calls.append(list(us))
        return {u: np.full((2, 3), float(u[1:]), np.float32) for u in us}

    fn = ChunkedLogPost(many, [f"u{i}" for i in range(5)], chunk=2)
    assert [float(fn(f"u{i}")[0, 0]) for i in range(5)] == [0, 1, 2, 3, 4]
    assert calls == [["u0", "u1"], ["u2", "u3"], ["u4"]]


def test_decode_cli_with_checkpoints(tmp_path, capsys):
    hmm = FakeHmm(["SIL", "A", "B"], states=2)
    lang = write_lang(tmp_path / "lang", {"X": [["A"]], "Y": [["B", "A"]]}, unigram_arpa(["X", "Y"]))
    build_graph(lang, hmm, tmp_path / "graph")
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(1)
    with kaldiio.WriteHelper(f"ark,scp:{data / 'feats.ark'},{data / 'feats.scp'}") as w:
        for u in ("a1", "a2", "a3"):
            w[u] = rng.normal(size=(40, 5)).astype(np.float32)
    offsets = {u: v.split(":")[-1] for u, v in
               (line.split() for line in (data / "feats.scp").read_text().splitlines())}
    (data / "text").write_text("a1 X\na2 Y X\na3 Y\n")
    # uneven priors (silence pdfs 0-2 common): dividing by them changes the paths, to words
    priors = np.concatenate([np.full(3, 3.0), rng.uniform(0.2, 1.0, hmm.num_pdfs - 3)])
    priors /= priors.sum()
    model = tiny_model(hmm.num_pdfs)
    save_checkpoint(tmp_path / "m1.pt", model, {"cmvn": "none", "priors": priors.tolist()})
    out = tmp_path / "dec"
    assert main(["decode", "--graph", str(tmp_path / "graph"), "--data", str(data),
                 "--model", str(tmp_path / "m1.pt"), "--out", str(out), "--acwt", "0.5",
                 "--word-penalty", "0"]) == 0
    assert capsys.readouterr().out.startswith("%WER ")
    summary = json.loads((out / "decode.json").read_text())
    assert summary["config"]["acwt"] == 0.5 and summary["rtf"] > 0
    # beam and max-active not given: planned from the graph's pdf count (a tiny graph: 15, 2000)
    assert (summary["config"]["beam"], summary["config"]["max_active"]) == (15.0, 2000)
    # the command's hypotheses are the best paths of acwt·(log p(s|x) − log p(s)) computed here
    # from the checkpoint: a CLI that forgot the priors, the acoustic scale, or fed another
    # utterance's posteriors, decodes differently
    graph = Graph.load(tmp_path / "graph")

    def best_paths(log_priors):
        out = {}
        for u in ("a1", "a2", "a3"):
            x = kaldiio.load_mat(f"{data / 'feats.ark'}:{offsets[u]}")
            scores = hybrid_loglikes(log_posteriors(model, x, (2, 2)), log_priors, 0.5)
            out[u] = [graph.words[i] for i in decode_utterance(graph.fst, scores).word_ids]
        return out

    want = best_paths(np.log(priors))
    got = {line.split()[0]: line.split()[1:] for line in (out / "hyp.txt").read_text().splitlines()}
    assert got == want, (got, want)
    assert best_paths(np.log(np.full(hmm.num_pdfs, 1.0 / hmm.num_pdfs))) != want   # priors matter here


def test_ensemble_is_decoded_from_combined_posteriors():
    from acoustic_kd import ensemble
    rng = np.random.default_rng(2)
    feats = {"u": rng.normal(size=(12, 5)).astype(np.float32)}
    members = [(tiny_model(4, s), {"context": (2, 2)}) for s in (0, 1)]
    got = nnet_log_posteriors(members, feats, ["u"], rule="geometric")["u"]
    each = [log_posteriors(m, feats["u"], (2, 2)) for m, _ in members]
    np.testing.assert_allclose(got, ensemble.combine(each, "geometric"), atol=1e-5)

"""Lattices: n-best lists agree with the 1-best decode, posteriors, confidences, LM costs of a
sentence (reference values), n-best rescoring and the decode CLI's --lattice outputs."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest
from test_decode_fakes import FakeHmm, alignment, perfect_loglikes, unigram_arpa, write_lang
from test_decode_graph import BIGRAM, LEX, PHONES

from acoustic_kd.decode.decoder import Graph, decode_utterance
from acoustic_kd.decode.graph import build_graph
from acoustic_kd.decode.lattice import (Path1, confidences, decode_lattice, nbest_paths, rescore,
                                        sentence_lm_cost, with_posteriors)
from acoustic_kd.lang import read_arpa

LN10 = math.log(10)


def test_sentence_lm_cost_reference_values(tmp_path):
    (tmp_path / "G.arpa").write_text(BIGRAM)
    lm = read_arpa(tmp_path / "G.arpa")
    assert sentence_lm_cost(["YES", "NO"], *lm) == pytest.approx((0.05 + 0.2 + 0.3) * LN10)
    # backoff(<s>) + p(NO), backoff(NO) + p(TWO), backoff(TWO) + p(</s>)
    assert sentence_lm_cost(["NO", "TWO"], *lm) == pytest.approx(
        (0.3 + 0.5 + 0.2 + 0.7 + 0.4 + 1.0) * LN10)


def test_posteriors_and_confidences():
    a = Path1([1, 2], [(0, 5), (5, 9)], 1.0, 2.0)
    b = Path1([1, 3], [(0, 5), (5, 9)], 1.0, 2.0 + math.log(3))
    paths = with_posteriors([a, b])
    assert [p.posterior for p in paths] == pytest.approx([0.75, 0.25])
    assert confidences(paths) == pytest.approx([1.0, 0.75])
    assert confidences([]) == []


@pytest.fixture
def graph(tmp_path):
    hmm = FakeHmm(PHONES)
    lang = write_lang(tmp_path / "lang", LEX, BIGRAM, sil_prob=0.3)
    return Graph.load(build_graph(lang, hmm, tmp_path / "graph").parent), hmm


def test_nbest_best_entry_is_the_one_best(graph):
    g, hmm = graph
    rng = np.random.default_rng(0)
    ali = alignment(hmm, ["SIL", "Y", "EH", "S", "N", "OW", "SIL"], 2)
    for noise in (0.0, 2.0):
        ll = perfect_loglikes(ali, hmm.num_pdfs, low=-3.0) + \
            rng.normal(0, noise, (len(ali), hmm.num_pdfs)).astype(np.float32)
        one = decode_utterance(g.fst, ll, align=g.align, silence_pdfs=g.info["silence_pdfs"])
        lat, final = decode_lattice(g.fst, ll, beam=15.0, lattice_beam=8.0)
        assert final and lat is not None
        paths = nbest_paths(lat, 5, g.align, set(g.info["silence_pdfs"]))
        assert paths[0].word_ids == one.word_ids and paths[0].frames == one.word_frames
        assert paths[0].cost == pytest.approx(one.cost, abs=1e-3)
        assert sum(p.posterior for p in paths) == pytest.approx(1.0)
        assert len({tuple(p.word_ids) for p in paths}) == len(paths)      # distinct sequences
        assert all(a.cost <= b.cost for a, b in zip(paths, paths[1:]))


def test_rescoring_replaces_the_lm(graph, tmp_path):
    g, _ = graph
    (tmp_path / "old.arpa").write_text(BIGRAM)
    (tmp_path / "new.arpa").write_text(unigram_arpa(["NO", "TWO", "YES"]))
    old, new = read_arpa(tmp_path / "old.arpa"), read_arpa(tmp_path / "new.arpa")
    ids = {w: i for i, w in g.words.items()}
    a = Path1([ids["YES"], ids["NO"]], [(0, 1), (1, 2)], 10.0, 5.0)
    b = Path1([ids["NO"], ids["TWO"]], [(0, 1), (1, 2)], 12.0, 4.0)
    out = rescore([a, b], g.words, old, new)
    for p, q in ((a, out[[x.word_ids for x in out].index(a.word_ids)]),
                 (b, out[[x.word_ids for x in out].index(b.word_ids)])):
        ws = [g.words[i] for i in p.word_ids]
        assert q.graph_cost == pytest.approx(p.graph_cost - sentence_lm_cost(ws, *old)
                                             + sentence_lm_cost(ws, *new))
        assert q.acoustic_cost == p.acoustic_cost
    assert out[0].cost <= out[1].cost


def test_decode_cli_writes_lattices_nbest_ctm_and_rescored(tmp_path, capsys):
    """--lattice on the tuning test's setup: files present and consistent with hyp.txt."""
    from test_decode_tune import LEX as YN_LEX
    from test_decode_tune import make_set

    from acoustic_kd.cli import main

    rng = np.random.default_rng(0)
    hmm = FakeHmm(["SIL", "EH", "N", "OW", "S", "Y"])
    lang = write_lang(tmp_path / "lang", YN_LEX, unigram_arpa(["NO", "YES"]))
    build_graph(lang, hmm, tmp_path / "graph")
    test = make_set(tmp_path, "test", hmm, {"t1": ["NO", "YES"], "t2": ["YES"]}, rng)
    (tmp_path / "priors.txt").write_text("".join(f"{1 / hmm.num_pdfs}\n" for _ in range(hmm.num_pdfs)))
    (tmp_path / "lm2.arpa").write_text(unigram_arpa(["NO", "YES"], end_lp=-0.2))
    out = tmp_path / "o"
    assert main(["decode", "--graph", str(tmp_path / "graph"), "--data", str(test),
                 "--logpost-scp", str(test / "post.scp"), "--priors", str(tmp_path / "priors.txt"),
                 "--out", str(out), "--acwt", "0.5", "--lattice", "--nbest", "3",
                 "--rescore-lm", str(tmp_path / "lm2.arpa")]) == 0
    assert "rescored with" in capsys.readouterr().out
    nbest = json.loads((out / "nbest.json").read_text())
    hyp = dict(line.split(" ", 1) for line in (out / "hyp.txt").read_text().splitlines())
    for utt, entries in nbest.items():
        assert 1 <= len(entries) <= 3
        assert " ".join(entries[0]["words"]) == hyp[utt].strip()
        assert sum(e["posterior"] for e in entries) == pytest.approx(1.0)
    ctm = (out / "ctm").read_text().splitlines()
    assert [line.split()[4] for line in ctm if line.startswith("t1 ")] == ["NO", "YES"]
    assert all(0.0 < float(line.split()[5]) <= 1.0 for line in ctm)
    lats = gzip.open(out / "lat.txt.gz", "rt").read()
    assert lats.startswith("t1\n") and "\n\nt2\n" in lats
    assert (out / "rescored" / "hyp.txt").read_text() == (out / "hyp.txt").read_text()
    assert (out / "rescored" / "wer").read_text().startswith("%WER 0.00")


def test_lattices_over_two_processes_equal_one(tmp_path):
    """decode --lattice --nj 2 (the lattice searches in two forked processes) writes the same
    lattices, n-best lists, CTM, rescored hyps and 1-best files as --nj 1."""
    from test_decode_tune import LEX as YN_LEX
    from test_decode_tune import make_set

    from acoustic_kd.cli import main

    rng = np.random.default_rng(1)
    hmm = FakeHmm(["SIL", "EH", "N", "OW", "S", "Y"])
    lang = write_lang(tmp_path / "lang", YN_LEX, unigram_arpa(["NO", "YES"]))
    build_graph(lang, hmm, tmp_path / "graph")
    sents = {f"t{i}": [["NO", "YES"], ["YES"], ["NO", "NO", "YES"]][i % 3] for i in range(7)}
    test = make_set(tmp_path, "test", hmm, sents, rng)
    (tmp_path / "priors.txt").write_text("".join(f"{1 / hmm.num_pdfs}\n" for _ in range(hmm.num_pdfs)))
    (tmp_path / "lm2.arpa").write_text(unigram_arpa(["NO", "YES"], end_lp=-0.2))
    for nj in (1, 2):
        assert main(["decode", "--graph", str(tmp_path / "graph"), "--data", str(test),
                     "--logpost-scp", str(test / "post.scp"), "--priors", str(tmp_path / "priors.txt"),
                     "--out", str(tmp_path / f"nj{nj}"), "--acwt", "0.5", "--lattice", "--nbest", "3",
                     "--rescore-lm", str(tmp_path / "lm2.arpa"), "--nj", str(nj)]) == 0
    one, two = tmp_path / "nj1", tmp_path / "nj2"
    lats = gzip.open(one / "lat.txt.gz", "rt").read()
    assert lats.count("\n\n") == len(sents) and gzip.open(two / "lat.txt.gz", "rt").read() == lats
    for name in ("nbest.json", "ctm", "hyp.txt", "rescored/hyp.txt", "lattice.json"):
        assert (two / name).read_bytes() == (one / name).read_bytes(), name
    assert json.loads((two / "decode.json").read_text())["config"]["nj"] == 2

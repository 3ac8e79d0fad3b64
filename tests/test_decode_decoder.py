"""FasterDecoder search equals exact Viterbi; hybrid scaling; DecodableCtc column convention."""

from __future__ import annotations

import kaldi_decoder as kd
import kaldifst as kf
import numpy as np
import pytest

from acoustic_kd.decode.decoder import DecodeConfig, Graph, decode_loglikes, decode_utterance, \
    hybrid_loglikes
from acoustic_kd.decode.graph import build_graph
from test_decode_fakes import FakeHmm, unigram_arpa, viterbi_reference, write_lang


def test_decodable_reads_column_ilabel_minus_one():
    m = np.arange(6, dtype=np.float32).reshape(2, 3)
    d = kd.DecodableCtc(m)
    assert [d.log_likelihood(1, i) for i in (1, 2, 3)] == [3.0, 4.0, 5.0]


def test_hybrid_loglikes_divides_by_priors():
    lp = np.log(np.array([[0.5, 0.5], [0.9, 0.1]]))
    pr = np.log(np.array([0.25, 0.75]))
    ll = hybrid_loglikes(lp, pr, 0.5)
    assert ll.dtype == np.float32
    np.testing.assert_allclose(ll, 0.5 * (lp - pr), rtol=1e-6)
    with pytest.raises(ValueError):
        hybrid_loglikes(lp, pr[:1], 1.0)


def random_fst(rng: np.random.Generator, n_states: int, n_pdfs: int, n_words: int) -> kf.StdVectorFst:
    """Random connected FST; epsilon-input arcs only go forward (no epsilon cycles)."""
    lines = []
    for s in range(n_states):
        for _ in range(rng.integers(1, 4)):
            d = int(rng.integers(0, n_states))
            ol = int(rng.integers(0, n_words + 1)) if rng.random() < 0.5 else 0
            lines.append(f"{s} {d} {int(rng.integers(1, n_pdfs + 1))} {ol} {rng.uniform(0, 2):.4f}")
        if s + 1 < n_states and rng.random() < 0.4:
            d = int(rng.integers(s + 1, n_states))
            lines.append(f"{s} {d} 0 {int(rng.integers(0, n_words + 1))} {rng.uniform(0, 2):.4f}")
    lines += [f"{s} {rng.uniform(0, 1):.4f}" for s in range(n_states) if rng.random() < 0.5]
    lines.append(f"{n_states - 1} 0.5")
    return kf.compile("\n".join(lines) + "\n")


@pytest.mark.parametrize("seed", range(8))
def test_decoder_equals_viterbi_on_random_fsts(seed):
    rng = np.random.default_rng(seed)
    fst = random_fst(rng, n_states=int(rng.integers(3, 8)), n_pdfs=4, n_words=3)
    ll = rng.normal(0, 2, size=(int(rng.integers(1, 12)), 4)).astype(np.float32)
    cost, words = viterbi_reference(fst, ll)
    res = decode_utterance(fst, ll, beam=1e4, max_active=10**6)
    if not np.isfinite(cost):
        assert not res.reached_final
        return
    assert res.reached_final
    assert res.cost == pytest.approx(cost, abs=1e-3)
    assert res.word_ids == words


@pytest.mark.parametrize("seed", range(4))
def test_decoder_equals_viterbi_on_random_hmm_graphs(tmp_path, seed):
    rng = np.random.default_rng(100 + seed)
    hmm = FakeHmm(["SIL", "A", "B", "C"], states=2, sil_states=2, rng=rng)
    lex = {"W1": [["A", "B"]], "W2": [["B"]], "W3": [["C", "A"], ["C"]]}
    lang = write_lang(tmp_path / "lang", lex, unigram_arpa(sorted(lex)), sil_prob=0.4)
    build_graph(lang, hmm, tmp_path / "graph")
    g = Graph.load(tmp_path / "graph")
    ll = rng.normal(0, 3, size=(int(rng.integers(4, 14)), hmm.num_pdfs)).astype(np.float32)
    cost, words = viterbi_reference(g.fst, ll)
    res = decode_utterance(g.fst, ll, beam=1e4, max_active=10**6)
    assert res.cost == pytest.approx(cost, abs=1e-3)
    assert res.word_ids == words


def test_parallel_decoding_matches_serial(tmp_path):
    rng = np.random.default_rng(7)
    hmm = FakeHmm(["SIL", "A", "B"], states=2, rng=rng)
    lang = write_lang(tmp_path / "lang", {"X": [["A"]], "Y": [["B", "A"]]}, unigram_arpa(["X", "Y"]))
    build_graph(lang, hmm, tmp_path / "graph")
    g = Graph.load(tmp_path / "graph")
    items = [(f"u{i}", rng.normal(0, 2, (20, hmm.num_pdfs)).astype(np.float32)) for i in range(6)]
    serial = dict(decode_loglikes(g, items, DecodeConfig(nj=1)))
    par = dict(decode_loglikes(g, items, DecodeConfig(nj=2)))
    assert {u: r.word_ids for u, r in serial.items()} == {u: r.word_ids for u, r in par.items()}
    with pytest.raises(Exception, match="pdfs"):
        list(decode_loglikes(g, [("bad", np.zeros((3, hmm.num_pdfs + 1), np.float32))],
                             DecodeConfig()))

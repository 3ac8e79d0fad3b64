"""Lattice generation and grid rescoring: the numpy lattice search against kaldi-decoder's
lattices, best paths against kaldifst's shortest path, every grid point against a direct decode
(equal whenever the direct decode's path lies within the lattice beam at the lattice's scale),
and the lattice tuner against the re-decoding one."""

from __future__ import annotations

import math

import kaldi_decoder as kd
import kaldifst as kf
import numpy as np
import pytest
from test_decode_fakes import FakeHmm, perfect_loglikes, unigram_arpa, write_lang

from acoustic_kd.decode.decoder import DecodeConfig, Graph, decode_utterance, hybrid_loglikes
from acoustic_kd.decode.graph import build_graph, with_word_penalty
from acoustic_kd.decode.latgen import GraphArrays, LatticeSearch, kaldi_lattice, set_lattices
from acoustic_kd.decode.latgrid import LatArrays, best_paths
from acoustic_kd.decode.search import best_path
from acoustic_kd.decode.tune import TuneConfig, _anchors, tune_on_dev

PHONES = ["A", "B", "D", "E", "I", "K", "O", "U"]


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    """A 24-word unigram graph and 12 noisy utterances: (graph, {utt: log-posteriors}, refs,
    log priors). The noise makes the dev surface depend on the acoustic scale."""
    rng = np.random.default_rng(3)
    tmp = tmp_path_factory.mktemp("latgrid")
    hmm = FakeHmm(["SIL"] + PHONES, rng=rng)
    lex: dict[str, list[list[str]]] = {}
    while len(lex) < 24:
        pron = [str(p) for p in rng.choice(PHONES, rng.integers(2, 5))]
        lex["W" + "".join(pron)] = [pron]
    lang = write_lang(tmp / "lang", lex, unigram_arpa(sorted(lex)))
    graph = Graph.load(build_graph(lang, hmm, tmp / "graph").parent)
    posts, refs = {}, {}
    for i in range(12):
        words = [str(w) for w in rng.choice(sorted(lex), rng.integers(2, 6))]
        ali = [pdf for ph in ["SIL"] + [p for w in words for p in lex[w][0]] + ["SIL"]
               for pdf, _, _ in hmm.table[ph] for _ in range(int(rng.integers(1, 4)))]
        ll = 5.0 * (perfect_loglikes(ali, hmm.num_pdfs, low=-4.0)
                    + rng.normal(0, 2.6, (len(ali), hmm.num_pdfs)).astype(np.float32))
        posts[f"u{i:02d}"] = ll - np.logaddexp.reduce(ll, axis=1, keepdims=True)
        refs[f"u{i:02d}"] = words
    return graph, posts, refs, np.full(hmm.num_pdfs, -math.log(hmm.num_pdfs))


def kaldi_pair(fst, scores: np.ndarray, acwt: float, penalty: float, lattice_beam: float
               ) -> tuple[kf.Lattice, LatArrays]:
    """kaldi-decoder's raw lattice of `scores` and the same lattice as arrays."""
    dec = kd.LatticeSimpleDecoder(fst, kd.LatticeSimpleDecoderConfig(beam=15.0,
                                                                     lattice_beam=lattice_beam))
    dec.decode(kd.DecodableCtc(np.ascontiguousarray(scores)))
    ok, lat = dec.get_raw_lattice(use_final_probs=True)
    assert ok and lat.num_states
    return lat, kaldi_lattice(fst, scores, 15.0, lattice_beam, acwt, penalty)


def test_best_paths_are_kaldifst_shortest_paths_of_the_rescaled_lattice(noisy):
    graph, posts, _, priors = noisy
    a0, scales = 0.1, [0.06, 0.1, 0.17]
    for utt in list(posts)[:4]:
        lat, arrays = kaldi_pair(graph.fst, hybrid_loglikes(posts[utt], priors, a0), a0, 0.0, 8.0)
        words, costs = best_paths(arrays, scales, [0.0] * 3)
        for a, w, c in zip(scales, words, costs):
            scaled = lat.copy()
            kf.scale_lattice([[1.0, 0.0], [0.0, a / a0]], scaled)
            arcs, g, ac = best_path(kf.shortest_path(scaled))
            assert c == pytest.approx(g + ac, abs=1e-3)
            assert w == [ol for _, ol in arcs if ol]


def test_lattice_search_keeps_the_paths_of_kaldi_decoders_lattices(noisy):
    """Same best cost as kaldi-decoder's LatticeSimpleDecoder lattices at every point, and at
    the decoding point the FasterDecoder's cost; the pool gives the same lattices."""
    graph, posts, _, priors = noisy
    a0, p0 = 0.1, 0.5
    fst = with_word_penalty(graph.fst, p0)
    search = LatticeSearch(GraphArrays.from_fst(graph.fst), 15.0, 8.0, 7000, p0, small_graph=0)
    scales, pens = [0.07, 0.1, 0.14, 0.1], [0.5, 0.5, 0.5, -0.5]
    items = [(u, hybrid_loglikes(posts[u], priors, a0)) for u in list(posts)[:6]]
    ours = set_lattices(search, items, a0)
    pooled = set_lattices(search, items, a0, nj=2)
    for utt, scores in items:
        assert best_paths(pooled[utt], scales, pens)[1] == pytest.approx(
            best_paths(ours[utt], scales, pens)[1])
        theirs = kaldi_lattice(fst, scores, 15.0, 8.0, a0, p0)
        assert best_paths(ours[utt], scales, pens)[1] == pytest.approx(
            best_paths(theirs, scales, pens)[1], abs=1e-3)
        direct = decode_utterance(fst, scores, beam=15.0)
        assert best_paths(ours[utt], [a0], [p0])[1][0] == pytest.approx(direct.cost, abs=1e-3)


@pytest.mark.parametrize("lattice_beam", [8.0, 2.0])
def test_each_grid_point_is_a_direct_decode_where_the_lattice_beam_allows(noisy, lattice_beam):
    """The condition: let d be the best path of a direct decode at (a, p). When d's cost at the
    lattice's own point (a0, p0) is within the lattice beam of the lattice's best there, d is in
    the lattice, so the lattice's best path at (a, p) costs what d does (the same words, unless two
    paths tie). A direct decode that is itself beam-limited can only be beaten, never equalled
    wrongly; with a wide beam it is exact here."""
    graph, posts, _, priors = noisy
    a0, p0 = 0.1, 0.25
    search = LatticeSearch(GraphArrays.from_fst(graph.fst), 15.0, lattice_beam, 7000, p0,
                           small_graph=0)
    points = [(a, p) for a in (0.07, 0.1, 0.125, 0.16, 0.2) for p in (-0.5, 0.25, 1.0)]
    fsts = {p: with_word_penalty(graph.fst, p) for p in {p for _, p in points}}
    inside = outside = 0
    for utt, lp in posts.items():
        lat = search.search(hybrid_loglikes(lp, priors, a0), a0)
        words, costs = best_paths(lat, [a for a, _ in points], [p for _, p in points])
        anchor_best = best_paths(lat, [a0], [p0])[1][0]
        for (a, p), w, c in zip(points, words, costs):
            d = decode_utterance(fsts[p], hybrid_loglikes(lp, priors, a), beam=30.0)
            n = len(d.word_ids)
            at_anchor = (d.graph_cost - p * n) + p0 * n + a0 * (d.acoustic_cost / a)
            if d.reached_final and at_anchor - anchor_best < lattice_beam - 1e-3:
                inside += 1
                assert c == pytest.approx(d.cost, abs=1e-3 * max(1.0, abs(d.cost)))
                assert w == d.word_ids or abs(c - d.cost) < 1e-3
            else:
                outside += 1
                assert c >= d.cost - 1e-3 * max(1.0, abs(d.cost))  # d exact here: never beaten
    if lattice_beam == 8.0:
        assert outside == 0
    else:
        assert inside and outside         # a narrow lattice misses some points' best paths


def test_anchors_cover_every_scale_from_below():
    grid = [0.05, 0.067, 0.083, 0.1, 0.125, 0.15]
    assert _anchors(grid, [], 2.0) == [0.05, 0.125]
    assert _anchors([0.0373, 0.2], [0.05, 0.125], 2.0) == [0.0373]       # a widening below
    assert _anchors(grid, [], 3.0) == [0.05]


@pytest.mark.parametrize("small_graph", [500, 0])
def test_lattice_tuner_picks_a_point_as_good_as_redecoding(noisy, monkeypatch, small_graph):
    """With the lattices of kaldi-decoder (this 124-state graph counts as small) and of the
    array search."""
    graph, posts, refs, priors = noisy
    monkeypatch.setattr("acoustic_kd.decode.latgen.SMALL_GRAPH", small_graph)
    grid = dict(acwts=[0.05, 0.067, 0.083, 0.1, 0.125, 0.15], word_penalties=[-0.5, 0.0, 0.5, 1.0])
    got = {m: tune_on_dev(graph, list(posts), refs, posts.__getitem__, priors, DecodeConfig(),
                          TuneConfig(**grid, tune_method=m)) for m in ("redecode", "lattice")}
    redecoded = {(g["acwt"], g["word_penalty"]): g["wer"] for g in got["redecode"].grid}
    lat = got["lattice"]
    assert len(set(redecoded.values())) > 3                       # the surface is not flat
    assert redecoded[(lat.acwt, lat.word_penalty)] == got["redecode"].dev_wer
    assert lat.method == "lattice" and lat.wall_s > 0 and lat.interior
    assert 1 <= len(lat.lattices) < len(lat.grid)                 # a few decodes, many points
    assert sum(r["points"] for r in lat.lattices) == len(lat.grid)
    assert all(g["lattice_acwt"] <= g["acwt"] for g in lat.grid)
    assert len(lat.verified) == 3                                 # the finalists, decoded directly
    assert lat.dev_wer == min(v["wer"] for v in lat.verified)
    assert (lat.acwt, lat.word_penalty) in {(v["acwt"], v["word_penalty"]) for v in lat.verified}
    assert all(v["wer"] == redecoded[(v["acwt"], v["word_penalty"])] for v in lat.verified)


def test_the_search_widens_at_low_scales_and_beam_acwt_narrows_it(noisy):
    """SearchProbe's arcs per frame grow as the acoustic scale falls (the beam admits more
    acoustic cost); beam_acwt narrows the beam below its scale, and with it the search."""
    from acoustic_kd.decode.decoder import decode_set, search_beam

    graph, posts, _, priors = noisy
    width = {}
    for acwt, ref in ((0.2, 0.0), (0.05, 0.0), (0.05, 0.1)):
        cfg = DecodeConfig(acwt=acwt, beam_acwt=ref)
        _, timing = decode_set(graph, list(posts), posts.__getitem__, priors, cfg, probe=True)
        assert timing["beam"] == search_beam(cfg)
        width[(acwt, ref)] = timing["search"]["arcs_per_frame"]
    assert search_beam(DecodeConfig(acwt=0.05, beam=15.0, beam_acwt=0.1)) == pytest.approx(7.5)
    assert search_beam(DecodeConfig(acwt=0.2, beam=15.0, beam_acwt=0.1)) == 15.0   # never widened
    assert width[(0.05, 0.0)] > 1.5 * width[(0.2, 0.0)]
    assert width[(0.05, 0.1)] < width[(0.05, 0.0)]

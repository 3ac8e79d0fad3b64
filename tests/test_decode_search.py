"""`decode.search.best_path` walks a best-path lattice with kaldifst's arc iterator.

Reference: the parser of the lattice's Kaldi text form (`to_str`) it replaced, kept here only as the
reference, on hand-built lattices (weights that print exactly: equal to the last bit) and on the
best paths and n-best entries of real decodes (costs equal to the text's 6 significant digits).
"""

from __future__ import annotations

import kaldi_decoder as kd
import kaldifst as kf
import numpy as np
import pytest

from acoustic_kd.decode.search import best_path, lattice_arcs


def best_path_from_text(lattice) -> tuple[list[tuple[int, int]], float, float]:
    """The text parser `best_path` used before (reference only)."""
    arcs: dict[int, tuple[int, int, int]] = {}
    graph_cost = ac_cost = 0.0
    for line in lattice.to_str().splitlines():
        f = line.split()
        w = f[4] if len(f) > 4 else f[1] if len(f) == 2 else None
        if w is not None:
            g, a = w.split(",")
            graph_cost, ac_cost = graph_cost + float(g), ac_cost + float(a)
        if len(f) >= 4:
            arcs[int(f[0])] = (int(f[1]), int(f[2]), int(f[3]))
    out, state = [], lattice.start
    while state in arcs:
        nxt, il, ol = arcs.pop(state)
        out.append((il, ol))
        state = nxt
    return out, graph_cost, ac_cost


def linear_lattice(final: tuple[float, float] | None) -> kf.Lattice:
    """2 -> 0 -> 3 -> 1 (states numbered off the path order; an input-epsilon word arc, a
    weight-one arc), final weight `final` on state 1 (None: weight one)."""
    lat = kf.Lattice()
    for _ in range(4):
        lat.add_state()
    lat.start = 2
    lat.add_arc(2, kf.LatticeArc(5, 0, kf.LatticeWeight(0.5, 1.25), 0))
    lat.add_arc(0, kf.LatticeArc(0, 7, kf.LatticeWeight.one, 3))
    lat.add_arc(3, kf.LatticeArc(6, 8, kf.LatticeWeight(2.75, 120.5), 1))
    lat.set_final(1, kf.LatticeWeight(*final) if final is not None else kf.LatticeWeight.one)
    return lat


@pytest.mark.parametrize("final, costs", [((0.25, -3.5), (3.5, 118.25)), (None, (3.25, 121.75))])
def test_best_path_equals_the_text_parser_on_a_built_lattice(final, costs):
    lat = linear_lattice(final)
    want = ([(5, 0), (0, 7), (6, 8)], *costs)
    assert best_path_from_text(lat) == want
    assert best_path(lat) == want


def test_lattice_arcs_and_an_empty_lattice():
    lat = linear_lattice(None)
    assert lattice_arcs(lat, 3) == [(6, 8, 2.75, 120.5, 1)]
    assert lattice_arcs(lat, 1) == []
    assert best_path(kf.Lattice()) == best_path_from_text(kf.Lattice()) == ([], 0.0, 0.0)


def random_graph(rng: np.random.Generator, n_states: int, n_pdfs: int, n_words: int
                 ) -> kf.StdVectorFst:
    """Random graph, every state final: pdf arcs (ilabel = pdf + 1), some with words."""
    lines = []
    for s in range(n_states):
        for _ in range(int(rng.integers(1, 4))):
            ol = int(rng.integers(1, n_words + 1)) if rng.random() < 0.4 else 0
            lines.append(f"{s} {int(rng.integers(0, n_states))} {int(rng.integers(1, n_pdfs + 1))} "
                         f"{ol} {rng.uniform(0, 2):.4f}")
        lines.append(f"{s} {rng.uniform(0, 1):.4f}")
    return kf.compile("\n".join(lines) + "\n")


def assert_same(lat) -> None:
    arcs, graph, acoustic = best_path(lat)
    ref_arcs, ref_graph, ref_acoustic = best_path_from_text(lat)
    assert arcs == ref_arcs
    assert graph == pytest.approx(ref_graph, rel=1e-5, abs=1e-4)
    assert acoustic == pytest.approx(ref_acoustic, rel=1e-5, abs=1e-4)


@pytest.mark.parametrize("seed", range(6))
def test_best_path_equals_the_text_parser_on_decoded_lattices(seed):
    from acoustic_kd.decode.lattice import decode_lattice

    rng = np.random.default_rng(seed)
    fst = random_graph(rng, n_states=int(rng.integers(3, 8)), n_pdfs=5, n_words=4)
    scores = rng.normal(0, 3, size=(int(rng.integers(5, 40)), 5)).astype(np.float32)
    dec = kd.FasterDecoder(fst, kd.FasterDecoderOptions(beam=20.0, max_active=1000))
    dec.decode(kd.DecodableCtc(scores))
    ok, lat = dec.get_best_path(use_final_probs=bool(dec.reached_final()))
    assert ok
    assert_same(lat)
    assert sum(il > 0 for il, _ in best_path(lat)[0]) == len(scores)   # one pdf arc per frame
    raw, _ = decode_lattice(fst, scores, 20.0, 6.0)
    nbest = kf.lattice_to_nbest(raw, 1.0, 1.0, 5)
    assert nbest
    for lin in nbest:
        assert_same(lin)

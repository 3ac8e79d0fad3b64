"""HCLG composition, determinization and minimization, as Kaldi's mkgraph.sh builds it.

Determinized graph (the default, `determinize`), built as Kaldi's mkgraph.sh builds HCLG:
1. L: the HL of `lexicon_fst` without self-loops, its input labels HMM-state units (pdf, self-loop prob); a
   disambiguation symbol #k after each pronunciation whose unit sequence is a prefix of another's
   or identical to another's (homophones: Kaldi's add_lex_disambig rule, applied to tied states);
   a #0:#0 loop at LOOP. G carries #0 on its backoff arcs (Kaldi's arpa2fst --disambig-symbol).
2. L∘G determinized (`determinize_star`, tropical: each input sequence keeps its best word
   sequence and cost, so Viterbi decoding is unchanged) and minimized (`minimize_encoded`) with
   the symbols still in, which makes the lexicon a tree/graph shared across words.
3. Disambiguation symbols become ε; every state gets a single preceding unit (a state entered by
   several units is split, as Kaldi's MakePrecedingInputSymbolsSame) and that unit's self-loop is
   added (Kaldi's add-self-loops); units are relabelled to pdf + 1.
Cross-word context (`context="cross-word"`) is Kaldi's full H∘C∘L∘G instead: L over phones
(disambiguation symbols, optional silence) ∘ G determinized and minimized, the triphone context
transducer composed on its left (`kaldifst.compose_context`), H (one HMM-state chain per context
window, from the HMM's trees with the real neighbours; C's #-1 and the disambiguation symbols pass
through) on the left of that, the result determinized and minimized, then step 3. It is the graph
of a cross-word HMM (trees grown on the phones across words, silence included: gmm/xword.py);
mkgraph builds the graph that matches the HMM (with context-free pdfs both graphs decode
identically).
"""

from __future__ import annotations

import math
import time

import kaldifst as kf

from ..errors import DataError
from ..hmm import BOUNDARY, HmmModel
from .lexicon_fst import HmmChain, add_chain, arc_cost, fst_size, hmm_units, lexicon_disambig, make_hl


def _arcs(fst: kf.StdFst) -> list[list[tuple[int, int, float, int]]]:
    return [[(a.ilabel, a.olabel, a.weight.value, a.nextstate) for a in kf.ArcIterator(fst, s)]
            for s in range(fst.num_states)]


def add_unit_self_loops(fst: kf.StdFst, first_disambig: int, self_cost: dict[int, float],
                        unit_pdf: dict[int, int]) -> kf.StdVectorFst:
    """Remove disambiguation symbols (inputs >= first_disambig become ε), give every state one
    preceding input unit (Kaldi's MakePrecedingInputSymbolsSame: a state entered by arcs of several
    units is split, one copy per unit), add each unit's self-loop (cost `self_cost[unit]`) on the
    states it enters, and relabel units to pdf + 1. States entered by ε or at the start get none:
    the frame before an ε arc already looped on the state before it."""
    arcs = _arcs(fst)
    n = fst.num_states
    for s in range(n):
        arcs[s] = [(0 if il >= first_disambig else il, ol, w, d) for il, ol, w, d in arcs[s]]
    classes: list[set[int]] = [set() for _ in range(n)]
    classes[fst.start].add(0)
    for s in range(n):
        for il, _, _, d in arcs[s]:
            classes[d].add(il)
    copy_of: dict[tuple[int, int], int] = {}
    total = n
    for s in range(n):
        cl = sorted(classes[s])
        for c in cl[1:]:
            copy_of[(s, c)] = total
            total += 1
    owner = list(range(n)) + [s for (s, _c) in sorted(copy_of, key=copy_of.get)]
    unit_of = [min(classes[s]) if classes[s] else 0 for s in range(n)] + \
        [c for (_s, c) in sorted(copy_of, key=copy_of.get)]
    out = kf.StdVectorFst()
    for _ in range(total):
        out.add_state()
    out.start = fst.start
    for q in range(total):
        s = owner[q]
        final = fst.final(s).value
        if math.isfinite(final):
            out.set_final(q, final)
        u = unit_of[q]
        if u:
            out.add_arc(q, kf.StdArc(unit_pdf[u] + 1, 0, self_cost[u], q))
        for il, ol, w, d in arcs[s]:
            dest = copy_of.get((d, il), d)
            out.add_arc(q, kf.StdArc(unit_pdf[il] + 1 if il else 0, ol, w, dest))
    return out


def compose(a: kf.StdVectorFst, b: kf.StdVectorFst) -> kf.StdVectorFst:
    """a ∘ b (arcs sorted for it), trimmed."""
    kf.arcsort(a, sort_type="olabel")
    kf.arcsort(b, sort_type="ilabel")
    out = kf.compose(a, b)
    kf.connect(out)
    return out


def _with_self_loops(fst: kf.StdVectorFst, unit_list: list[tuple[int, float]], scale: float,
                     times: dict) -> kf.StdVectorFst:
    """`add_unit_self_loops` with the units' self-loop costs and pdfs; disambiguation symbols are
    the labels after the units."""
    t0 = time.perf_counter()
    self_cost = {i + 1: arc_cost(lself, scale) for i, (_, lself) in enumerate(unit_list)}
    unit_pdf = {i + 1: pdf for i, (pdf, _) in enumerate(unit_list)}
    out = add_unit_self_loops(fst, len(unit_list) + 1, self_cost, unit_pdf)
    times["self_loops_s"] = time.perf_counter() - t0
    return out


def _det_min(fst: kf.StdVectorFst, stats: dict, times: dict, tag: str) -> None:
    """determinize_star (tropical) then minimize_encoded, in place, recording sizes and times."""
    t0 = time.perf_counter()
    if kf.determinize_star(fst):                 # True = stopped early (it has no state limit here)
        raise DataError(None, "the graph's determinization stopped early",
                        "rebuild with --determinize false")
    stats[f"{tag}_det"] = fst_size(fst)
    times[f"{tag}_determinize_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    kf.minimize_encoded(fst)
    stats[f"{tag}_min"] = fst_size(fst)
    times[f"{tag}_minimize_s"] = time.perf_counter() - t0


def determinized_hclg(prons: list[tuple[int, list[HmmChain], float]], sil_chain: HmmChain,
                      sil_prob: float, g: kf.StdVectorFst, w0: int, transition_scale: float
                      ) -> tuple[kf.StdVectorFst, dict]:
    """mkgraph's recipe on the word-internal HL: L with disambiguation symbols (no self-loops) ∘ G
    with #0 on its backoff arcs, determinized (tropical, so every path keeps its Viterbi cost) and
    minimized (encoded) with the symbols in, then symbols removed and self-loops added."""
    t0 = time.perf_counter()
    units, unit_list = hmm_units(prons, sil_chain)
    first_disambig = len(units) + 1
    l_fst = make_hl(prons, sil_chain, sil_prob, transition_scale, units, first_disambig, w0)
    lg = compose(l_fst, g)
    stats = {"L": fst_size(l_fst), "G": fst_size(g), "LG": fst_size(lg)}
    times = {"compose_s": time.perf_counter() - t0}
    _det_min(lg, stats, times, "LG")
    hclg = _with_self_loops(lg, unit_list, transition_scale, times)
    stats["disambig_symbols"] = max(lexicon_disambig(
        [tuple(units[(p, s)] for ph in c for p, s, _ in ph) for _, c, _ in prons]) or [0])
    stats["units"] = len(units)
    return hclg, {"sizes": stats, "times": times}


def crossword_hclg(hmm: HmmModel, phone_prons: list[tuple[int, list[str], float]], sil_prob: float,
                   g: kf.StdVectorFst, w0: int, transition_scale: float
                   ) -> tuple[kf.StdVectorFst, dict]:
    """Kaldi's full recipe with cross-word triphone context: L over phones (disambiguation
    symbols, optional silence) ∘ G, determinized and minimized; C composed on the left
    (`kaldifst.compose_context`, width 3, centre 1); H (one HMM-state chain per context window,
    the HMM's tree queried with the real neighbours as the HMM sees them (`HmmModel.neighbour`:
    silence is itself for a cross-word HMM); the edge of the utterance is the boundary '#')
    composed on the left of that; H∘C∘L∘G determinized and minimized; symbols removed and
    self-loops added as for the word-internal graph."""
    t0 = time.perf_counter()
    times: dict = {}
    pid = hmm.phone_id
    d0 = len(hmm.phones)                         # phone-level #0; #k = d0 + k
    one = lambda ph: [[(pid[ph], 0.0, 0.0)]]     # noqa: E731  a phone as a one-"state" chain
    l_prons = [(w, [one(ph)[0] for ph in phones], cost) for w, phones, cost in phone_prons]
    identity = {(i, 0.0): i for i in range(1, d0)}
    sil = pid[hmm.silence_phone]
    l_fst = make_hl(l_prons, one(hmm.silence_phone)[0], sil_prob, 1.0, identity, d0, w0)
    max_k = max(lexicon_disambig([tuple(pid[ph] for ph in phones)
                                  for _, phones, _ in phone_prons]) or [0])
    lg = compose(l_fst, g)
    stats: dict = {"L": fst_size(l_fst), "G": fst_size(g), "LG": fst_size(lg)}
    times["compose_s"] = time.perf_counter() - t0
    _det_min(lg, stats, times, "LG")
    t0 = time.perf_counter()
    phone_disambig = list(range(d0, d0 + max_k + 1))
    clg, windows = kf.compose_context(phone_disambig, 3, 1, lg)
    stats["CLG"] = fst_size(clg)
    ci = set(hmm.context_independent)
    name = {i: p for p, i in pid.items()}

    def ctx(i: int) -> str:
        return BOUNDARY if i <= 0 or i >= d0 else hmm.neighbour(name[i])

    chains: dict[int, HmmChain] = {}
    for i, win in enumerate(windows):
        if len(win) == 3 and 0 < win[1] < d0:
            c = name[win[1]]
            chains[i] = hmm.phone_hmm(c) if c in ci else hmm.phone_hmm(c, ctx(win[0]), ctx(win[2]))
    units: dict[tuple[int, float], int] = {}
    for chain in chains.values():
        for pdf, lself, _ in chain:
            units.setdefault((pdf, lself), len(units) + 1)
    unit_list = list(units)
    first_disambig = len(units) + 1
    h = kf.StdVectorFst()
    h.add_state()
    h.start = 0
    h.set_final(0, 0.0)
    for i, win in enumerate(windows):
        if i in chains:
            last, leave = add_chain(h, 0, chains[i], i, 0.0, transition_scale, units)
            h.add_arc(last, kf.StdArc(0, 0, leave, 0))
        elif len(win) == 1 and -win[0] >= d0:      # a disambiguation symbol: passed through
            h.add_arc(0, kf.StdArc(first_disambig + (-win[0] - d0), i, 0.0, 0))
        elif win == [0]:                           # C's "#-1" (an ε input of C): as Kaldi's H
            h.add_arc(0, kf.StdArc(first_disambig + max_k + 1, i, 0.0, 0))
    hclg = compose(h, clg)
    stats["H"] = fst_size(h)
    stats["HCLG_a"] = fst_size(hclg)
    times["context_s"] = time.perf_counter() - t0
    _det_min(hclg, stats, times, "HCLG_a")
    out = _with_self_loops(hclg, unit_list, transition_scale, times)
    stats.update({"disambig_symbols": max_k, "units": len(units), "context_windows": len(chains),
                  "silence_phone": sil})
    return out, {"sizes": stats, "times": times}

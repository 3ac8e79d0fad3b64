"""Lattice generation: a frame-synchronous Viterbi beam search in numpy that keeps its lattice.

Tokens (one per graph state and frame) within `beam` of the frame's best survive, at most
`max_active` of them (the cheapest), as in Kaldi's decoders; the ε arcs of a frame are followed
to a fixed point. Every arc into a surviving token is kept as a lattice arc when its cost exceeds
that token's best by at most `lattice_beam` (an arc further off cannot lie on a path within the
lattice beam of the best), and at the end the arcs on no path within `lattice_beam` of the best
are removed by forward + backward costs, as Kaldi's lattice pruning does. The result is the raw
state-level lattice as `latgrid.LatArrays`.

kaldi-decoder's LatticeSimpleDecoder yields the same lattices (tests/test_decode_latgrid.py) but
has no max-active limit and is several times slower than its FasterDecoder, the more so at low
acoustic scales; array operations over all active arcs of a frame at once bring lattice
generation near the cost of a 1-best decode (bench/bench_tune.py, bench/RESULTS.md). On a graph of
at most SMALL_GRAPH states (a digit or yes/no loop) a frame holds few tokens and the array search's
fixed cost per frame dominates, so there the lattice comes from LatticeSimpleDecoder instead.
"""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass
from typing import Iterable

import kaldi_decoder as kd
import kaldifst as kf
import numpy as np

from .graph import with_word_penalty
from .latgrid import LatArrays
from .search import lattice_arcs

PRUNE_EVERY = 25           # frames between lattice prunings during the search (Kaldi's interval)
SMALL_GRAPH = 500          # graph states up to which kaldi-decoder's lattice decoder is faster


@dataclass
class GraphArrays:
    """An HCLG as arrays: emitting (ilabel > 0) and ε arcs apart, each in CSR order of source.

    `*_off` [S + 1] offsets; `*_pdf` [E] pdf = ilabel − 1; `*_word` [E] olabel; `*_w` [E] cost;
    `*_dst` [E] next state; `final` [S] final cost (inf where not final)."""

    emit_off: np.ndarray
    emit_pdf: np.ndarray
    emit_word: np.ndarray
    emit_w: np.ndarray
    emit_dst: np.ndarray
    eps_off: np.ndarray
    eps_word: np.ndarray
    eps_w: np.ndarray
    eps_dst: np.ndarray
    final: np.ndarray
    start: int
    fst: kf.StdFst

    @classmethod
    def from_fst(cls, fst: kf.StdFst) -> "GraphArrays":
        rows = [(s, a.ilabel, a.olabel, a.weight.value, a.nextstate)
                for s in range(fst.num_states) for a in kf.ArcIterator(fst, s)]
        arcs = np.array(rows, dtype=np.float64).reshape(-1, 5)
        n = fst.num_states
        final = np.array([fst.final(s).value for s in range(n)], dtype=np.float64)
        parts = []
        for sel in (arcs[:, 1] > 0, arcs[:, 1] == 0):
            a = arcs[sel][np.argsort(arcs[sel][:, 0], kind="stable")]
            off = np.searchsorted(a[:, 0], np.arange(n + 1)).astype(np.int64)
            parts.append((off, a[:, 1].astype(np.int64) - 1, a[:, 2].astype(np.int64), a[:, 3],
                          a[:, 4].astype(np.int64)))
        (eo, ep, ewd, ew, ed), (no, _, nwd, nw, nd) = parts
        return cls(eo, ep, ewd, ew, ed, no, nwd, nw, nd, final, fst.start, fst)

    @property
    def num_states(self) -> int:
        return len(self.final)


def _arcs_of(off: np.ndarray, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index into `states`, arc index) of every arc leaving `states`, by CSR offsets."""
    cnt = off[states + 1] - off[states]
    rep = np.repeat(np.arange(len(states)), cnt)
    return rep, np.arange(cnt.sum()) + np.repeat(off[states] - np.cumsum(cnt) + cnt, cnt)


class _Frame:
    """The tokens of one frame: graph states, forward costs, global ids from `first`."""

    def __init__(self, states: np.ndarray, costs: np.ndarray, first: int, index: np.ndarray):
        self.states, self.costs, self.first, self.index = states, costs, first, index
        index[states] = np.arange(len(states))

    def release(self) -> None:
        self.index[self.states] = -1


def _min_per(keys: np.ndarray, values: np.ndarray, scratch: np.ndarray, pos: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """(distinct keys, the least value of each); `scratch` (inf) and `pos` are [S] work arrays."""
    np.minimum.at(scratch, keys, values)
    pos[keys] = np.arange(len(keys))
    uniq = keys[pos[keys] == np.arange(len(keys))]
    low = scratch[uniq].copy()
    scratch[uniq] = np.inf
    return uniq, low


class LatticeSearch:
    """Decodes scaled log-likelihoods [T, P] through a graph (word penalty on its word arcs)
    into lattices: `search(scores, acwt) -> LatArrays | None` (None: no frames); by kaldi-decoder
    on graphs of at most `small_graph` (default SMALL_GRAPH) states."""

    def __init__(self, graph: GraphArrays, beam: float, lattice_beam: float,
                 max_active: int = 7000, penalty: float = 0.0, small_graph: int | None = None):
        self.g, self.beam, self.lattice_beam = graph, float(beam), float(lattice_beam)
        self.max_active, self.penalty = int(max_active), float(penalty)
        self.emit_w = graph.emit_w + penalty * (graph.emit_word != 0)
        self.eps_w = graph.eps_w + penalty * (graph.eps_word != 0)
        n = graph.num_states
        self.scratch, self.pos = np.full(n, np.inf), np.zeros(n, dtype=np.int64)
        self.index = np.full(n, -1, dtype=np.int64)
        self.has_eps = np.diff(graph.eps_off) > 0
        self.small = None
        if n <= (SMALL_GRAPH if small_graph is None else small_graph):
            self.small = with_word_penalty(graph.fst, penalty) if penalty else graph.fst

    def search(self, scores: np.ndarray, acwt: float) -> LatArrays | None:
        if not len(scores):
            return None
        if self.small is not None:
            return kaldi_lattice(self.small, scores, self.beam, self.lattice_beam, acwt,
                                 self.penalty)
        cur = _Frame(np.array([self.g.start]), np.zeros(1), 0, self.index)
        eps = self._keep(cur, self._closure(cur, np.inf))
        frames, links = [cur], [(tuple(x[:0] for x in eps), eps)]
        for t in range(len(scores)):
            nxt, emitted = self._emit(cur, -scores[t])
            if not len(nxt.states):            # nothing survived: the best partial paths stand
                nxt.release()
                break
            eps = self._closure(nxt, nxt.costs.min() + self.beam)
            links.append((self._keep(nxt, emitted), self._keep(nxt, eps)))
            frames.append(nxt)
            cur = nxt
            if t % PRUNE_EVERY == PRUNE_EVERY - 1:
                self._prune_window(frames, links)
        cur.release()
        return self._prune(frames, links, acwt)

    def _prune_window(self, frames: list[_Frame], links: list[tuple]) -> None:
        """Drop the links of the last PRUNE_EVERY frames that lie on no path to a current token
        within the lattice beam of that token's best (Kaldi's periodic lattice pruning: a link
        failing this cannot lie within the lattice beam of the final best either)."""
        k0 = max(1, len(links) - PRUNE_EVERY)
        off = frames[k0 - 1].first
        alpha = np.concatenate([f.costs for f in frames[k0 - 1:]])
        beta = np.full(len(alpha), np.inf)
        beta[frames[-1].first - off:] = -frames[-1].costs
        for i in range(len(links) - 1, k0 - 1, -1):
            _relax_back(beta, links[i][1], off, fixed_point=True)
            _relax_back(beta, links[i][0], off, fixed_point=False)
        for i in range(k0, len(links)):
            links[i] = tuple(_within(part, alpha, beta, off, self.lattice_beam)
                             for part in links[i])

    def _emit(self, cur: _Frame, costs_t: np.ndarray) -> tuple[_Frame, tuple]:
        """The next frame's tokens from `cur`'s emitting arcs (beam, max-active) and the arcs."""
        rep, arc = _arcs_of(self.g.emit_off, cur.states)
        ac = costs_t[self.g.emit_pdf[arc]]
        c = cur.costs[rep] + self.emit_w[arc] + ac
        ok = c <= c.min() + self.beam if len(c) else np.zeros(0, bool)
        rep, arc, ac, c = rep[ok], arc[ok], ac[ok], c[ok]
        dst = self.g.emit_dst[arc]
        states, low = _min_per(dst, c, self.scratch, self.pos)
        if len(states) > self.max_active:
            top = np.argpartition(low, self.max_active - 1)[:self.max_active]
            states, low = states[top], low[top]
        cur.release()
        nxt = _Frame(states, low, cur.first + len(cur.states), self.index)
        tok = nxt.index[dst]
        live = tok >= 0
        return nxt, (cur.first + rep[live], nxt.first + tok[live], self.emit_w[arc[live]],
                     ac[live], self.g.emit_word[arc[live]], c[live])

    def _closure(self, fr: _Frame, cut: float) -> tuple:
        """Follow ε arcs within frame `fr` to a fixed point (tokens added or made cheaper in
        place); the ε arcs taken, as link arrays (dst as token ids of `fr`)."""
        out = []
        front = np.arange(len(fr.states))
        for _ in range(1000):
            front = front[self.has_eps[fr.states[front]]]
            if not front.size:
                return _cat(out)
            rep, arc = _arcs_of(self.g.eps_off, fr.states[front])
            c = fr.costs[front][rep] + self.eps_w[arc]
            ok = c <= cut
            rep, arc, c = rep[ok], arc[ok], c[ok]
            dst = self.g.eps_dst[arc]
            states, low = _min_per(dst, c, self.scratch, self.pos)
            known = fr.index[states]
            fresh, old, old_c = states[known < 0], known[known >= 0], low[known >= 0]
            better = old[old_c < fr.costs[old] - 1e-6]
            fr.costs[better] = old_c[old_c < fr.costs[old] - 1e-6]
            new_ids = np.arange(len(fr.states), len(fr.states) + len(fresh))
            fr.states = np.concatenate([fr.states, fresh])
            fr.costs = np.concatenate([fr.costs, low[known < 0]])
            fr.index[fresh] = new_ids
            out.append((fr.first + front[rep], fr.first + fr.index[dst], self.eps_w[arc],
                        np.zeros(len(arc)), self.g.eps_word[arc], c))
            front = np.concatenate([new_ids, better])
        raise ValueError("ε closure did not converge: the graph has a negative-cost ε cycle")

    def _keep(self, fr: _Frame, links: tuple) -> tuple:
        """The links into frame `fr` whose cost exceeds their target token's best by at most
        the lattice beam (measured with the token costs after the ε closure), stored compactly
        as (src, dst, graph cost, acoustic cost, word)."""
        src, dst, g, ac, word, c = links
        ok = c - fr.costs[dst - fr.first] <= self.lattice_beam
        return (src[ok].astype(np.int32), dst[ok].astype(np.int32), g[ok].astype(np.float32),
                ac[ok].astype(np.float32), word[ok].astype(np.int32))

    def _prune(self, frames: list[_Frame], links: list[tuple], acwt: float) -> LatArrays:
        """Lattice arcs on a path within the lattice beam of the best, renumbered."""
        alpha = np.concatenate([f.costs for f in frames])
        last = frames[-1]
        fin = self.g.final[last.states]
        reached = bool(np.isfinite(fin).any())
        fin = fin if reached else np.zeros(len(last.states))
        beta = np.full(len(alpha), np.inf)
        beta[last.first:] = fin
        for emitted, eps in reversed(links):
            _relax_back(beta, eps, 0, fixed_point=True)
            _relax_back(beta, emitted, 0, fixed_point=False)
        src, dst, g, ac, word = _cat([part for pair in links for part in pair])
        best = (alpha[last.first:] + fin).min()
        ok = alpha[src] + g + ac + beta[dst] <= best + self.lattice_beam
        keep = np.unique(np.concatenate([[0], src[ok], dst[ok]]))
        renum = np.full(len(alpha), -1, dtype=np.int64)
        renum[keep] = np.arange(len(keep))
        fg = np.full(len(keep), np.inf)
        is_last = keep >= last.first
        fg[is_last] = fin[keep[is_last] - last.first]
        w = word[ok].astype(np.int32)
        fa = np.where(np.isfinite(fg), 0.0, np.inf)
        return LatArrays(renum[src[ok]].astype(np.int32), renum[dst[ok]].astype(np.int32),
                         (g[ok] - self.penalty * (w != 0)).astype(np.float32),
                         (ac[ok] / acwt).astype(np.float32), w, fg, fa, 0, reached)


def kaldi_lattice(fst: kf.StdFst, scores: np.ndarray, beam: float, lattice_beam: float,
                  acwt: float, penalty: float) -> LatArrays | None:
    """The raw lattice of kaldi-decoder's LatticeSimpleDecoder for scaled log-likelihoods [T, P]
    through `fst` (carrying word penalty `penalty`) as arrays; None when no path survived."""
    dec = kd.LatticeSimpleDecoder(fst, kd.LatticeSimpleDecoderConfig(
        beam=float(beam), lattice_beam=float(lattice_beam)))
    dec.decode(kd.DecodableCtc(np.ascontiguousarray(scores, dtype=np.float32)))
    ok, lat = dec.get_raw_lattice(use_final_probs=True)
    reached = ok and lat.num_states > 0
    if not reached:
        ok, lat = dec.get_raw_lattice(use_final_probs=False)
    if not ok or not lat.num_states:
        return None
    rows = np.array([(s, *a) for s in range(lat.num_states) for a in lattice_arcs(lat, s)],
                    dtype=np.float64).reshape(-1, 6)     # src ilabel olabel graph acoustic dst
    src, word, dst = rows[:, 0].astype(np.int64), rows[:, 2].astype(np.int32), \
        rows[:, 5].astype(np.int64)
    fin = [lat.final(s) for s in range(lat.num_states)]
    fg = np.array([w.value1 for w in fin])
    fa = np.where(np.isfinite(fg), np.array([w.value2 for w in fin]) / acwt, np.inf)
    return LatArrays(src.astype(np.int32), dst.astype(np.int32),
                     (rows[:, 3] - penalty * (word != 0)).astype(np.float32),
                     (rows[:, 4] / acwt).astype(np.float32), word, fg, fa, lat.start, reached)


def _relax_back(beta: np.ndarray, links: tuple, off: int, fixed_point: bool) -> None:
    """beta[src - off] = min(itself, cost + beta[dst - off]) over `links`; repeated until nothing
    changes when they chain within a frame (ε links)."""
    if not len(links[0]):
        return
    src, dst = links[0] - off, links[1] - off
    cost = links[2].astype(np.float64) + links[3]
    for _ in range(1000):
        before = beta[src]
        np.minimum.at(beta, src, cost + beta[dst])
        if not fixed_point or np.array_equal(before, beta[src]):
            return
    raise ValueError("backward costs did not converge: a negative-cost ε cycle")


def _within(links: tuple, alpha: np.ndarray, beta: np.ndarray, off: int, beam: float) -> tuple:
    """The links with alpha[src - off] + cost + beta[dst - off] <= beam."""
    src, dst, g, ac = links[:4]
    ok = alpha[src - off] + g + ac + beta[dst - off] <= beam
    return tuple(x[ok] for x in links)


def _cat(parts: list[tuple]) -> tuple:
    """Concatenate link arrays field by field (an empty link set for no parts)."""
    if len(parts) == 1:
        return parts[0]
    if not parts:
        i, f = np.zeros(0, np.int64), np.zeros(0)
        return i, i, f, f, i, f
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(len(parts[0])))


_WORKER: dict = {}


def _worker_search(item: tuple[str, np.ndarray]) -> tuple[str, LatArrays | None]:
    return item[0], _WORKER["search"].search(item[1], _WORKER["acwt"])


def set_lattices(search: LatticeSearch, items: Iterable[tuple[str, np.ndarray]], acwt: float,
                 nj: int = 1) -> dict[str, LatArrays | None]:
    """{utt: lattice} of (utt, log-likelihoods [T, P] scaled by `acwt`) pairs; `nj` > 1 searches
    in forked worker processes (which inherit `search`)."""
    if nj <= 1:
        return {utt: search.search(ll, acwt) for utt, ll in items}
    _WORKER.update(search=search, acwt=acwt)
    try:
        with mp.get_context("fork").Pool(nj) as pool:
            return dict(pool.imap(_worker_search, items, chunksize=2))
    finally:
        _WORKER.clear()

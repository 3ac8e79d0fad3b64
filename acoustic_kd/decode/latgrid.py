"""Best paths of raw lattices at many (acoustic scale, word penalty) points at once.

Kaldi scores a decode by rescaling its stored lattices (lattice-scale), adding a penalty per word
(lattice-add-penalty) and taking the best path (lattice-best-path) at every point of a grid, rather
than decoding again. Here a raw state-level lattice (`latgen.LatticeSearch`), decoded at acoustic
scale a0 with word penalty p0 in the graph, is held as arc arrays with its costs taken apart:
graph cost G (penalty removed), unscaled acoustic cost A (−log-likelihood ratio, the stored cost
divided by a0) and the word count n. At a point (a, p) an arc costs G + p·n + a·A, so the best
path at every point of a batch is one dynamic-programming pass over the lattice's states in
topological order, vectorised over the points. Lattices of many utterances are laid side by side
into one (`LatBatch`), so that one pass over their topological levels serves them all.

The best path at (a, p) is the one a direct decode at (a, p) finds whenever that path lies in the
lattice, i.e. its cost at (a0, p0) is within the lattice beam of the best there and its prefixes
survived the decode's beam (tests/test_decode_latgrid.py checks it point by point).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class LatArrays:
    """A raw lattice as arrays: E arcs (src, dst [E] states; word [E] output label, 0 = none),
    S states. Costs: graph [E] (less the decode's word penalty), acoustic [E] (unscaled),
    final_graph / final_acoustic [S] (inf where not final); sums are taken in float64."""

    src: np.ndarray
    dst: np.ndarray
    graph: np.ndarray
    acoustic: np.ndarray
    word: np.ndarray
    final_graph: np.ndarray
    final_acoustic: np.ndarray
    start: int
    reached_final: bool = True

    @property
    def num_states(self) -> int:
        return len(self.final_graph)


@dataclass
class LatBatch:
    """Lattices of `utts` side by side as one (`lat`: state ids offset by `offsets` [U + 1],
    `starts` [U]), arcs sorted by (topological level of their target, target). `levels[i]` =
    (first arc, end arc, segment starts from the first arc, the segments' targets): the arcs into
    the states of level i + 1, grouped by target."""

    utts: list[str]
    lat: LatArrays
    offsets: np.ndarray
    starts: np.ndarray
    levels: list[tuple[int, int, np.ndarray, np.ndarray]]


def _topological_levels(src: np.ndarray, dst: np.ndarray, num_states: int) -> np.ndarray:
    """Level of each state: 0 for states without incoming arcs, else 1 + the highest level of
    its predecessors (Kahn's algorithm, one frontier at a time). [S] int64."""
    out_order = np.argsort(src, kind="stable")
    offsets = np.searchsorted(src[out_order], np.arange(num_states + 1))
    indeg = np.bincount(dst, minlength=num_states)
    level = np.full(num_states, -1, dtype=np.int64)
    frontier, lev = np.flatnonzero(indeg == 0), 0
    while frontier.size:
        level[frontier] = lev
        counts = offsets[frontier + 1] - offsets[frontier]
        first = np.repeat(offsets[frontier] - np.cumsum(counts) + counts, counts)
        nxt = dst[out_order[first + np.arange(counts.sum())]]
        np.subtract.at(indeg, nxt, 1)
        frontier, lev = np.unique(nxt[indeg[nxt] == 0]), lev + 1
    if (level < 0).any():
        raise ValueError("the lattice has a cycle; raw decoder lattices are acyclic")
    return level


def batch(utts: list[str], parts: list[LatArrays]) -> LatBatch:
    """`parts` (the lattices of `utts`) side by side as one `LatBatch`."""
    offsets = np.cumsum([0] + [x.num_states for x in parts]).astype(np.int64)
    cat = lambda name, shift=False: np.concatenate(  # noqa: E731
        [getattr(x, name) + (o if shift else 0) for x, o in zip(parts, offsets)])
    src, dst = cat("src", True).astype(np.int64), cat("dst", True).astype(np.int64)
    level = _topological_levels(src, dst, int(offsets[-1]))
    perm = np.lexsort((dst, level[dst]))
    d, lv = dst[perm], level[dst[perm]]
    bounds = np.flatnonzero(np.diff(lv)) + 1
    levels = []
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(perm)]):
        if hi > lo:
            seg = np.r_[0, np.flatnonzero(np.diff(d[lo:hi])) + 1]
            levels.append((int(lo), int(hi), seg, d[lo:hi][seg]))
    lat = LatArrays(src[perm], d, cat("graph")[perm], cat("acoustic")[perm], cat("word")[perm],
                    cat("final_graph"), cat("final_acoustic"), 0)
    return LatBatch(list(utts), lat, offsets, offsets[:-1] + [x.start for x in parts], levels)


def batch_best(b: LatBatch, acwts, penalties) -> tuple[list[list[list[int]]], np.ndarray]:
    """Per utterance u and point k: word ids of the best path at (acwts[k], penalties[k]) and
    its cost [U, K]; no words and cost inf where no final state is reachable."""
    lat = b.lat
    a = np.asarray(acwts, dtype=np.float64)[None, :]
    p = np.asarray(penalties, dtype=np.float64)[None, :]
    k = a.shape[1]
    dist = np.full((lat.num_states, k), np.inf)
    dist[b.starts] = 0.0
    back = np.full((lat.num_states, k), -1, dtype=np.int64)
    nwords = (lat.word != 0).astype(np.float64)
    for lo, hi, seg, heads in b.levels:
        cost = lat.graph[lo:hi, None] + p * nwords[lo:hi, None] + a * lat.acoustic[lo:hi, None]
        cand = dist[lat.src[lo:hi]] + cost
        low = np.minimum.reduceat(cand, seg, axis=0)
        sizes = np.diff(np.r_[seg, hi - lo])
        at = np.where(cand == np.repeat(low, sizes, axis=0), np.arange(hi - lo)[:, None], hi - lo)
        dist[heads] = low
        back[heads] = lo + np.minimum.reduceat(at, seg, axis=0)
    total = dist + lat.final_graph[:, None] + a * lat.final_acoustic[:, None]
    low = np.minimum.reduceat(total, b.offsets[:-1], axis=0)
    n = lat.num_states
    at = np.where(total == np.repeat(low, np.diff(b.offsets), axis=0), np.arange(n)[:, None], n)
    best = np.minimum.reduceat(at, b.offsets[:-1], axis=0)
    words = _trace(lat, back, best.ravel(), np.tile(np.arange(k), len(b.utts)), low.ravel())
    return [words[u * k:(u + 1) * k] for u in range(len(b.utts))], low


def best_paths(lat: LatArrays, acwts, penalties) -> tuple[list[list[int]], np.ndarray]:
    """Word ids of one lattice's best path at each point (acwts[k], penalties[k]), its cost [K]."""
    words, cost = batch_best(batch([""], [lat]), acwts, penalties)
    return words[0], cost[0]


def _trace(lat: LatArrays, back: np.ndarray, states: np.ndarray, cols: np.ndarray,
           cost: np.ndarray) -> list[list[int]]:
    """Word ids along the back-pointers of column cols[w] from states[w] to a start, for every
    walker w at once (none where cost[w] is inf)."""
    cur = states.copy()
    live = np.isfinite(cost)
    steps = []
    while live.any():
        arc = np.where(live, back[cur, cols], -1)
        live &= arc >= 0
        steps.append(np.where(live, lat.word[np.maximum(arc, 0)], 0))
        cur = np.where(live, lat.src[np.maximum(arc, 0)], cur)
    words = np.array(steps[::-1], dtype=np.int64).reshape(-1, len(states))
    return [[int(x) for x in words[:, w] if x] if math.isfinite(cost[w]) else []
            for w in range(len(states))]


def lattice_size(lats: dict[str, LatArrays | None], frames: int) -> dict:
    """States and arcs of a set's lattices, in all and per frame (`frames` in all)."""
    kept = [x for x in lats.values() if x is not None]
    states, arcs = sum(x.num_states for x in kept), sum(len(x.src) for x in kept)
    return {"lattices": len(lats), "empty": len(lats) - len(kept),
            "not_final": sum(not x.reached_final for x in kept), "states": states, "arcs": arcs,
            "states_per_frame": states / max(frames, 1), "arcs_per_frame": arcs / max(frames, 1)}


def batches(lats: dict[str, LatArrays | None], max_states: int = 250_000) -> list[LatBatch]:
    """A set's lattices in batches of at most `max_states` states (one lattice may exceed it);
    utterances without a lattice are left out (their best path is no words)."""
    out, utts, parts = [], [], []
    for utt, lat in lats.items():
        if lat is None:
            continue
        if parts and sum(x.num_states for x in parts) + lat.num_states > max_states:
            out.append(batch(utts, parts))
            utts, parts = [], []
        utts.append(utt)
        parts.append(lat)
    if parts:
        out.append(batch(utts, parts))
    return out


def set_best_words(sets: list[LatBatch], utts: list[str], acwts, penalties
                   ) -> list[dict[str, list[int]]]:
    """Per point k: {utt: word ids of the best path at (acwts[k], penalties[k])} over `utts`
    (those in no batch get no words)."""
    out: list[dict[str, list[int]]] = [{u: [] for u in utts} for _ in acwts]
    for b in sets:
        words, _ = batch_best(b, acwts, penalties)
        for utt, per_point in zip(b.utts, words):
            for k, w in enumerate(per_point):
                out[k][utt] = w
    return out

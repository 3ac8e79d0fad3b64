"""Per-utterance alignment graphs: the transcript's words as HMM state chains, in topological order.

Graph = [optional SIL] word_1 [optional SIL] word_2 ... word_N [optional SIL]. Each word is a set of
parallel chains, one per pronunciation (Viterbi picks the best). Optional silence is taken with
probability `sil_prob` (log weights on the entry arcs). States are numbered in topological order, so
every arc except self-loops goes from a lower to a higher index. An empty transcript is a single
mandatory silence. With a cross-word model (hmm.py `context`) the graph so built is the skeleton
that gmm/xword.py expands: each phone at a word edge copied per neighbouring phone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import ConfigError
from ..hmm import BOUNDARY, CROSS_WORD, WORD_INTERNAL, HmmModel
from ..lang.langdir import Lang
from .xword import Skeleton, expand

NEG_INF = -np.inf


@dataclass
class UttGraph:
    """Arrays over S states: pdf [S], pred [S, K] (predecessor state ids, padded with 0), pred_w
    [S, K] (structural log weights — optional-silence probabilities — -inf = no arc), init [S] /
    final [S] (structural log entry / exit weights), info [S, 4] (left context, phone, right
    context, HMM state — phone ids, 0 = the boundary `#`) and word [S] (transcript word index, -1
    for silence). HMM transition probabilities are added by `weights(hmm)`, so a graph stays valid when
    they are re-estimated. `segments` lists (word index, alternative, state ids) per chain; in a
    cross-word graph (`context`) those are states of the skeleton, which `lift` maps to the
    graph's. `min_frames` is the shortest path length."""

    pdf: np.ndarray
    pred: np.ndarray
    pred_w: np.ndarray
    init: np.ndarray
    final: np.ndarray
    info: np.ndarray
    word: np.ndarray
    segments: list[tuple[int, int, list[int]]] = field(default_factory=list)
    min_frames: int = 0
    to_end: np.ndarray | None = None   # [S] fewest frames from entering a state to the end
    words: list[str] = field(default_factory=list)   # the transcript words the graph spells
    context: str = WORD_INTERNAL                      # the convention of the model it was built for
    skeleton: Skeleton | None = None                  # cross-word: the unexpanded graph's map

    def lift(self, path: np.ndarray | None) -> np.ndarray | None:
        """A state path over the chains of `segments` [T] -> the same path in this graph's states."""
        return path if path is None or self.skeleton is None else self.skeleton.lift(path)

    @property
    def num_states(self) -> int:
        return len(self.pdf)

    def weights(self, hmm: HmmModel | None, self_loop_scale: float = 1.0
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Total log weights (self-loop [S], arcs [S, K], exit [S]) with `hmm`'s transitions; every
        non-self arc leaves its source state, so it carries the source pdf's forward probability.
        `self_loop_scale` multiplies both (the HMM's duration model; Kaldi's --self-loop-scale: in
        a left-to-right topology the forward arc is the loop's complement); the structural
        weights (optional silence) stay at full weight. Without a model: self-loops and arcs
        weigh 0."""
        if hmm is None:
            return np.zeros(self.num_states), self.pred_w, self.final
        fwd = self_loop_scale * hmm.log_fwd[self.pdf]
        return (self_loop_scale * hmm.log_self[self.pdf], self.pred_w + fwd[self.pred],
                self.final + fwd)


class _Builder:
    def __init__(self, hmm: HmmModel):
        self.hmm = hmm
        self.pdf: list[int] = []
        self.preds: list[list[tuple[int, float]]] = []
        self.info: list[tuple[int, int, int, int]] = []
        self.word: list[int] = []
        self.segments: list[tuple[int, int, list[int]]] = []
        self.nodes: list[tuple[int, int, str]] = []   # (first state, states, phone) per phone

    def chain(self, phones: list[str], entry: list[tuple[int, float]], word: int, alt: int
              ) -> tuple[int, float]:
        """Append the states of `phones` entered from `entry` [(state or -1 = start, log w)]."""
        pid = self.hmm.phone_id
        ids = []
        for p, (lc, rc) in zip(phones, self.hmm.contexts(phones)):
            self.nodes.append((len(self.pdf), self.hmm.num_states[p], p))
            for s, (k, _, _) in enumerate(self.hmm.phone_hmm(p, lc, rc)):
                sid = len(self.pdf)
                self.preds.append(list(entry) if not ids else [(ids[-1], 0.0)])
                self.pdf.append(k)
                # the word boundary `#` gets id 0 (the <eps> slot, never a real context)
                self.info.append((pid.get(lc, 0), pid[p], pid.get(rc, 0), s))
                self.word.append(word)
                ids.append(sid)
        self.segments.append((word, alt, ids))
        return ids[-1], 0.0


def compile_graph(hmm: HmmModel, lang: Lang, words: list[str], sil_prob: float | None = None
                  ) -> UttGraph:
    """Build the alignment graph of a transcript (words must all be in `lang.lexicon`)."""
    p = lang.sil_prob if sil_prob is None else sil_prob
    b = _Builder(hmm)
    sil = [lang.silence_phone]
    frontier: list[tuple[int, float]] = [(-1, 0.0)]

    def opt_sil(frontier):
        if p <= 0:
            return frontier
        last, lf = b.chain(sil, [(s, w + math.log(p)) for s, w in frontier], -1, 0)
        skip = [(s, w + math.log1p(-p)) for s, w in frontier] if p < 1 else []
        return skip + [(last, lf)]

    if not words:
        frontier = [b.chain(sil, frontier, -1, 0)]
    else:
        frontier = opt_sil(frontier)
        for i, w in enumerate(words):
            frontier = [b.chain(pron, frontier, i, a) for a, pron in enumerate(lang.prons(w))]
            frontier = opt_sil(frontier)
    pdf, preds, info, word, skeleton = b.pdf, b.preds, b.info, b.word, None
    if hmm.context == CROSS_WORD:
        x = expand(hmm, b.nodes, b.preds, b.word, frontier)
        pdf, preds, info, word, frontier, skeleton = (x.pdf, x.preds, x.info, x.word, x.final,
                                                      x.skeleton)
    s = len(pdf)
    k = max(len(x) for x in preds)
    pred = np.zeros((s, k), dtype=np.int64)
    pred_w = np.full((s, k), NEG_INF)
    init = np.full(s, NEG_INF)
    for j, plist in enumerate(preds):
        col = 0
        for i, w in plist:
            if i < 0:
                init[j] = max(init[j], w)
            else:
                pred[j, col], pred_w[j, col] = i, w
                col += 1
    final = np.full(s, NEG_INF)
    for i, w in frontier:
        final[i] = max(final[i], w)
    g = UttGraph(np.array(pdf, dtype=np.int64), pred, pred_w, init, final,
                 np.array(info, dtype=np.int64).reshape(-1, 4), np.array(word, dtype=np.int64),
                 b.segments, context=hmm.context, skeleton=skeleton)
    g.min_frames, g.to_end = _shortest(g)
    g.words = list(words)
    return g


def _shortest(g: UttGraph) -> tuple[int, np.ndarray]:
    """Fewest frames of any complete path, and per state the fewest frames from it to the end
    (both counting one frame per visited state; states are in topological order)."""
    s = g.num_states
    from_start = np.full(s, np.inf)
    to_end = np.where(np.isfinite(g.final), 1.0, np.inf)
    for j in range(s):
        arcs = np.isfinite(g.pred_w[j])
        best = from_start[g.pred[j][arcs]].min() + 1 if arcs.any() else np.inf
        from_start[j] = min(1.0 if np.isfinite(g.init[j]) else np.inf, best)
    for j in range(s - 1, -1, -1):
        arcs = np.isfinite(g.pred_w[j])
        for i in g.pred[j][arcs]:
            to_end[i] = min(to_end[i], to_end[j] + 1)
    return int(from_start[np.isfinite(g.final)].min()), to_end


def equal_alignment(g: UttGraph, num_frames: int) -> np.ndarray | None:
    """Flat-start path: first pronunciations, silence at the edges if the frames allow, frames split
    evenly over the states -> graph state per frame int64 [T], or None when T is too short."""
    words, sils = first_pron_chains(g)
    core = [s for ids in words for s in ids]
    path = core
    if len(sils) >= 2 and num_frames >= len(core) + len(sils[0]) + len(sils[-1]):
        path = sils[0] + core + sils[-1]
    if num_frames < len(path):
        return None
    return g.lift(spread(path, num_frames))


def first_pron_chains(g: UttGraph) -> tuple[list[list[int]], list[list[int]]]:
    """State ids of each word's first pronunciation (in order) and of each optional silence
    (before word 0, ..., after the last word); an empty transcript is its one silence as a word.
    In a cross-word graph they are skeleton states: a path of them goes through `g.lift`."""
    first = {}
    for w, a, ids in g.segments:
        if w >= 0 and a == 0:
            first[w] = ids
    words = [first[w] for w in sorted(first)]
    sils = [ids for w, _, ids in g.segments if w < 0]
    if not words:  # empty transcript: the single silence chain
        words, sils = sils[:1], []
    return words, sils


def spread(states: list[int], frames: int) -> np.ndarray:
    """`frames` frames split evenly over `states` in order (frames >= len(states)) -> int64 [frames]."""
    if frames <= 0:
        return np.zeros(0, dtype=np.int64)
    seg = np.floor(np.arange(frames) * len(states) / frames).astype(np.int64)
    return np.asarray(states, dtype=np.int64)[seg]


def retarget_graph(hmm: HmmModel, g: UttGraph) -> UttGraph:
    """The same graph with another model's pdfs: graph structure and state order do not depend on
    the model, only each state's pdf does (looked up from its stored context). Both models must
    share the context convention the graph was built for."""
    if hmm.context != g.context:
        raise ConfigError(f"alignment graphs built for a {g.context} model cannot take the pdfs of "
                          f"a {hmm.context} one; train every GMM pass with the same align.context")
    names = hmm.phones
    pdf = np.array([hmm.pdf(names[lc] if lc else BOUNDARY, names[p], names[rc] if rc else BOUNDARY,
                            int(s)) for lc, p, rc, s in g.info], dtype=np.int64)
    return replace(g, pdf=pdf)

"""Viterbi beam search over an HCLG with kaldi-decoder; words and per-word times (torch-free: shared
by `decode` and the exported runtime).

The graph's input labels are pdf + 1, which is what kaldi-decoder's `DecodableCtc` expects of a
[T, P] score matrix (column = ilabel - 1). Scores are `acwt * (log p(s|x) - log p(s))`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Iterable

import kaldi_decoder
import kaldifst
import numpy as np

try:  # the binding kaldifst's ArcIterator would wrap for a Lattice (that class takes Std FSTs only)
    from kaldifst.lib._kaldifst import _ArcIteratorLattice
except ImportError:  # pragma: no cover
    _ArcIteratorLattice = None


@dataclass
class WordSpan:
    """One decoded word with its time span in seconds (start inclusive, end exclusive)."""

    word: str
    start: float
    end: float


@dataclass
class Hypothesis:
    """Best path of one utterance."""

    words: list[str]
    spans: list[WordSpan] = field(default_factory=list)
    num_frames: int = 0
    reached_final: bool = True
    cost: float = 0.0

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def to_dict(self) -> dict:
        return {"text": self.text, "words": [asdict(s) for s in self.spans],
                "num_frames": self.num_frames, "reached_final": self.reached_final,
                "cost": self.cost}


def lattice_arcs(lattice: kaldifst.Lattice, state: int) -> list[tuple[int, int, float, float, int]]:
    """(ilabel, olabel, graph cost, acoustic cost, next state) of each arc leaving `state`, in the
    lattice's order, by kaldifst's own arc iterator."""
    if _ArcIteratorLattice is None:
        raise RuntimeError(f"kaldifst {getattr(kaldifst, '__version__', '?')} has no arc iterator "
                           "over lattices (kaldifst.lib._kaldifst._ArcIteratorLattice): upgrade it")
    it, out = _ArcIteratorLattice(lattice, state), []
    while not it.done:
        a = it.value
        out.append((a.ilabel, a.olabel, a.weight.value1, a.weight.value2, a.nextstate))
        it.next()
    return out


def best_path(lattice: kaldifst.Lattice) -> tuple[list[tuple[int, int]], float, float]:
    """(ilabel, olabel) of each arc of a linear best-path lattice, followed from its start state,
    and the path's graph and acoustic costs (the final weight included)."""
    out: list[tuple[int, int]] = []
    graph_cost = ac_cost = 0.0
    state, seen = lattice.start, set()
    while state >= 0 and state not in seen:
        seen.add(state)
        arcs = lattice_arcs(lattice, state)
        if not arcs:
            final = lattice.final(state)
            if not math.isinf(final.value1):    # a final state (LatticeWeight.zero is inf, inf)
                graph_cost, ac_cost = graph_cost + final.value1, ac_cost + final.value2
            break
        il, ol, g, a, state = arcs[-1]          # linear: one arc per state
        out.append((il, ol))
        graph_cost, ac_cost = graph_cost + g, ac_cost + a
    return out, graph_cost, ac_cost


def word_frames(pdfs: list[int], word_ids: list[int], lexicon: dict, partial: bool = False
                ) -> list[tuple[int, int]] | None:
    """[start, end) frames of each word of a best path from its per-frame pdfs, by matching the
    words' HMM-state chains (`align_lexicon`; optional silence before, between and after the words)
    against the frames, each chain state held one frame or more. None when the frames do not fit
    the words (`partial`: the path may stop inside its last word, as a best path that reached no
    final state does)."""
    if "pdf_key" in lexicon:
        key = lexicon["pdf_key"]
        pdfs = [key[p] for p in pdfs]
    sil = tuple(lexicon["silence"])
    chains = [[tuple(c) for c in lexicon["words"].get(str(w), [])] for w in word_ids]
    n = len(word_ids)
    SIL, START = -1, -2
    Hyp = tuple[int, int, int]          # (word index k, chain index or SIL (silence before k), position)

    def enter(k: int, spans: tuple, t: int, sil_ok: bool) -> list[tuple[Hyp, tuple]]:
        out = [((k, ci, 0), spans + ((t, t),)) for ci in range(len(chains[k]))] if k < n else []
        return out + ([((k, SIL, 0), spans)] if sil_ok and sil else [])

    frontier: dict[Hyp, tuple] = {(0, START, 0): ()}
    for t, p in enumerate(pdfs):
        new: dict[Hyp, tuple] = {}
        for (k, ci, pos), spans in frontier.items():
            if ci == START:
                moves = enter(0, spans, t, True)
            else:
                chain = sil if ci == SIL else chains[k][ci]
                moves = [((k, ci, pos), spans)]
                if pos + 1 < len(chain):
                    moves.append(((k, ci, pos + 1), spans))
                elif ci == SIL:
                    moves += enter(k, spans, t, False)
                else:
                    moves += enter(k + 1, spans[:-1] + ((spans[-1][0], t),), t, True)
            for (k2, c2, pos2), sp in moves:
                if (sil if c2 == SIL else chains[k2][c2])[pos2] == p:
                    new.setdefault((k2, c2, pos2), sp)
        if not new:
            return None
        frontier = new
    end = len(pdfs)
    for (k, ci, pos), spans in frontier.items():
        if ci == SIL and k == n and pos == len(sil) - 1:
            return list(spans)
        if ci >= 0 and k == n - 1 and (partial or pos == len(chains[k][ci]) - 1):
            return list(spans[:-1]) + [(spans[-1][0], end)]
    return None



def word_spans(arcs: list[tuple[int, int]], silence_pdfs: np.ndarray, align: dict | None = None,
               partial: bool = False) -> tuple[list[int], list[tuple[int, int]]]:
    """(word ids, [start, end) frames) of a best path's arcs (ilabel = pdf + 1, olabel = word).

    With `align` (the align lexicon of a determinized graph, whose word labels sit anywhere inside
    or before their words) the spans are the words' pdf chains matched to the frames
    (`word_frames`; `partial`: the path may stop inside its last word). Otherwise, or when the
    frames do not fit, a word spans from its output arc to the next word's, less the silence-pdf
    frames at either edge (where the graph puts the label is not the word's acoustic start, so the
    pdf sequence decides). `silence_pdfs`: bool [P]. The one rule of the decode stage, its
    lattices and the exported runtime.
    """
    pdfs: list[int] = []
    starts: list[tuple[int, int]] = []  # (word id, first frame)
    for il, ol in arcs:
        if ol:
            starts.append((ol, len(pdfs)))
        if il:
            pdfs.append(il - 1)
    ids = [w for w, _ in starts]
    if align is not None:
        exact = word_frames(pdfs, ids, align, partial)
        if exact is not None:
            return ids, exact
    sil = np.asarray(silence_pdfs, dtype=bool)
    sil = sil[np.asarray(pdfs, dtype=np.int64)] if pdfs and sil.size else np.zeros(len(pdfs), bool)
    frames = []
    for i, (_, begin) in enumerate(starts):
        s, e = begin, starts[i + 1][1] if i + 1 < len(starts) else len(pdfs)
        while s < e - 1 and sil[s]:
            s += 1
        while e - 1 > s and sil[e - 1]:
            e -= 1
        frames.append((s, e))
    return ids, frames


class GraphDecoder:
    """FasterDecoder over one graph; `decode(scores [T, P]) -> Hypothesis`."""

    def __init__(self, graph: kaldifst.StdVectorFst, words: dict[int, str],
                 silence_pdfs: np.ndarray, frame_shift_s: float, beam: float = 13.0,
                 max_active: int = 7000, min_active: int = 20, align: dict | None = None):
        """`silence_pdfs` bool [P]: frames on these pdfs are trimmed from word spans. `align`: the
        align lexicon of a determinized graph (word spans then come from its pdf chains)."""
        self.graph = graph  # the decoder keeps a reference only; hold the FST alive here
        self.align = align
        self.words = words
        self.silence_pdfs = np.asarray(silence_pdfs, dtype=bool)
        self.frame_shift_s = float(frame_shift_s)
        self.options = kaldi_decoder.FasterDecoderOptions(
            beam=float(beam), max_active=int(max_active), min_active=int(min_active))
        self._decoder = kaldi_decoder.FasterDecoder(graph, self.options)

    def decode(self, scores: np.ndarray) -> Hypothesis:
        """Best word sequence for scaled log-likelihoods `scores` [T, P] float32."""
        return self.decode_chunks([scores])

    def decode_chunks(self, chunks: Iterable[np.ndarray]) -> Hypothesis:
        """`decode` of the concatenation of score chunks [T_i, P], consumed one at a time: the
        search advances frame by frame either way, so the result equals decoding all at once and
        only one chunk of scores is held in memory."""
        self._decoder.init_decoding()
        num_frames = 0
        for scores in chunks:
            scores = np.ascontiguousarray(scores, dtype=np.float32)
            if len(scores):
                self._decoder.advance_decoding(kaldi_decoder.DecodableCtc(scores, num_frames))
                num_frames += len(scores)
        if num_frames == 0:
            return Hypothesis(words=[], num_frames=0, reached_final=False)
        reached = bool(self._decoder.reached_final())
        ok, lattice = self._decoder.get_best_path(use_final_probs=reached)
        if not ok:
            return Hypothesis(words=[], num_frames=num_frames, reached_final=False)
        arcs, graph_cost, ac_cost = best_path(lattice)
        ids, frames = word_spans(arcs, self.silence_pdfs, self.align, partial=not reached)
        spans = [WordSpan(self.words.get(w, f"<{w}>"), round(s * self.frame_shift_s, 3),
                          round(e * self.frame_shift_s, 3)) for w, (s, e) in zip(ids, frames)]
        return Hypothesis(words=[w.word for w in spans], spans=spans, num_frames=num_frames,
                          reached_final=reached, cost=graph_cost + ac_cost)


class _CountedScores(kaldi_decoder.DecodableInterface):
    """Scaled log-likelihoods [T, P] (column = ilabel − 1) that count the decoder's look-ups: one
    per emitting arc it expands from a token inside the beam."""

    def __init__(self, scores: np.ndarray):
        super().__init__()
        self.scores, self.lookups = scores, 0

    def log_likelihood(self, frame: int, index: int) -> float:
        self.lookups += 1
        return float(self.scores[frame, index - 1])

    def is_last_frame(self, frame: int) -> bool:
        return frame == len(self.scores) - 1

    def num_frames_ready(self) -> int:
        return len(self.scores)

    def num_indices(self) -> int:
        return self.scores.shape[1]


def emitting_arcs_per_state(fst: kaldifst.StdFst) -> float:
    """Mean number of emitting (non-ε input) arcs per state of a graph."""
    arcs = sum(a.ilabel != 0 for s in range(fst.num_states) for a in kaldifst.ArcIterator(fst, s))
    return arcs / max(fst.num_states, 1)


class SearchProbe:
    """Counts the arcs a FasterDecoder expands per frame on a sample of utterances: how wide the
    beam is at a given acoustic scale (the search's work per frame, whatever the machine).

    `see(i, scores [T, P])` is offered every utterance i of a set of `num_utts`, in order; about
    20 of them, spread over the set, are decoded again with counted look-ups until `max_frames`
    frames were. `summary()`: sampled utterances and frames, arcs per frame and active states
    per frame (≈ arcs / the graph's emitting arcs per state)."""

    def __init__(self, fst: kaldifst.StdFst, num_utts: int, max_frames: int, beam: float,
                 max_active: int, min_active: int):
        self.fst, self.max_frames = fst, max_frames
        self.stride = max(1, num_utts // 20)
        self.options = kaldi_decoder.FasterDecoderOptions(
            beam=float(beam), max_active=int(max_active),
            min_active=max(0, min(int(min_active), int(max_active) - 1)))
        self.utts = self.frames = self.lookups = 0
        self.seconds = 0.0

    def see(self, index: int, scores: np.ndarray) -> None:
        if index % self.stride or self.frames >= self.max_frames or not len(scores):
            return
        t0 = time.perf_counter()
        counted = _CountedScores(np.ascontiguousarray(scores, dtype=np.float32))
        kaldi_decoder.FasterDecoder(self.fst, self.options).decode(counted)
        self.utts, self.frames = self.utts + 1, self.frames + len(scores)
        self.lookups += counted.lookups
        self.seconds += time.perf_counter() - t0

    def summary(self) -> dict:
        per_frame = self.lookups / self.frames if self.frames else None
        return {"beam": self.options.beam, "sample_utts": self.utts, "sample_frames": self.frames,
                "arcs_per_frame": per_frame,
                "states_per_frame": per_frame and per_frame / emitting_arcs_per_state(self.fst)}

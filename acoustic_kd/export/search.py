"""Viterbi beam search over the exported HCLG with kaldi-decoder; words and per-word times.

The graph's input labels are pdf + 1, which is what kaldi-decoder's `DecodableCtc` expects of a
[T, P] score matrix (column = ilabel - 1). Scores are `acwt * (log p(s|x) - log p(s))`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable

import kaldi_decoder
import kaldifst
import numpy as np


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


def best_path(lattice) -> tuple[list[tuple[int, int]], float, float]:
    """(ilabel, olabel) of each arc of a linear best-path lattice, followed from its start state,
    and the path's graph and acoustic costs (the final weight included)."""
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


def word_spans(arcs: list[tuple[int, int]], silence_pdfs: np.ndarray
               ) -> tuple[list[int], list[tuple[int, int]]]:
    """(word ids, [start, end) frames) of a best path's arcs (ilabel = pdf + 1, olabel = word).

    A word spans from its output arc to the next word's, less the silence-pdf frames at either
    edge (where the graph puts the label is not the word's acoustic start, so the pdf sequence
    decides). `silence_pdfs`: bool [P]. The one rule of the decode stage and the exported runtime.
    """
    pdfs: list[int] = []
    starts: list[tuple[int, int]] = []  # (word id, first frame)
    for il, ol in arcs:
        if ol:
            starts.append((ol, len(pdfs)))
        if il:
            pdfs.append(il - 1)
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
    return [w for w, _ in starts], frames


class GraphDecoder:
    """FasterDecoder over one graph; `decode(scores [T, P]) -> Hypothesis`."""

    def __init__(self, graph: kaldifst.StdVectorFst, words: dict[int, str],
                 silence_pdfs: np.ndarray, frame_shift_s: float, beam: float = 13.0,
                 max_active: int = 7000, min_active: int = 20):
        """`silence_pdfs` bool [P]: frames on these pdfs are trimmed from word spans."""
        self.graph = graph  # the decoder keeps a reference only; hold the FST alive here
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
        ids, frames = word_spans(arcs, self.silence_pdfs)
        spans = [WordSpan(self.words.get(w, f"<{w}>"), round(s * self.frame_shift_s, 3),
                          round(e * self.frame_shift_s, 3)) for w, (s, e) in zip(ids, frames)]
        return Hypothesis(words=[w.word for w in spans], spans=spans, num_frames=num_frames,
                          reached_final=reached, cost=graph_cost + ac_cost)

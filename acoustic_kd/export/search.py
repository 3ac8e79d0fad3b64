"""Viterbi beam search over the exported HCLG with kaldi-decoder; words and per-word times.

The graph's input labels are pdf + 1, which is what kaldi-decoder's `DecodableCtc` expects of a
[T, P] score matrix (column = ilabel - 1). Scores are `acwt * (log p(s|x) - log p(s))`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

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


def _best_path_arcs(lattice) -> list[tuple[int, int, float]]:
    """(ilabel, olabel, graph+acoustic cost) of each arc of a linear lattice, start to end."""
    arcs: dict[int, tuple[int, int, int, float]] = {}
    for line in lattice.to_str().splitlines():
        f = line.split()
        if len(f) >= 4:
            w = f[4].split(",") if len(f) > 4 else ["0", "0"]
            arcs[int(f[0])] = (int(f[1]), int(f[2]), int(f[3]), float(w[0]) + float(w[1]))
    out, state = [], lattice.start
    while state in arcs:
        nxt, il, ol, cost = arcs.pop(state)
        out.append((il, ol, cost))
        state = nxt
    return out


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
        scores = np.ascontiguousarray(scores, dtype=np.float32)
        if scores.shape[0] == 0:
            return Hypothesis(words=[], num_frames=0, reached_final=False)
        self._decoder.decode(kaldi_decoder.DecodableCtc(scores))
        reached = bool(self._decoder.reached_final())
        ok, lattice = self._decoder.get_best_path(use_final_probs=reached)
        if not ok:
            return Hypothesis(words=[], num_frames=len(scores), reached_final=False)
        return self._hypothesis(_best_path_arcs(lattice), len(scores), reached)

    def _hypothesis(self, arcs: list[tuple[int, int, float]], num_frames: int,
                    reached: bool) -> Hypothesis:
        """Words from the best path. With the align lexicon of a determinized graph the spans
        are the words' pdf chains matched to the frames (`decode.graph.word_frames`); otherwise
        a word spans from its output arc to the next word's, less the silence frames at either
        edge (where the graph puts the label is not the word's acoustic start, so the pdf
        sequence decides)."""
        pdfs: list[int] = []
        starts: list[tuple[int, int]] = []  # (word id, first frame)
        for il, ol, _ in arcs:
            if ol:
                starts.append((ol, len(pdfs)))
            if il:
                pdfs.append(il - 1)
        exact = None
        if self.align is not None:
            from ..decode.graph import word_frames

            exact = word_frames(pdfs, [w for w, _ in starts], self.align, partial=not reached)
        sil = self.silence_pdfs[np.asarray(pdfs, dtype=np.int64)] if pdfs else np.zeros(0, bool)
        spans = []
        for i, (wid, begin) in enumerate(starts):
            if exact is not None:
                s, e = exact[i]
            else:
                end = starts[i + 1][1] if i + 1 < len(starts) else len(pdfs)
                s, e = begin, end
                while s < e - 1 and sil[s]:
                    s += 1
                while e - 1 > s and sil[e - 1]:
                    e -= 1
            spans.append(WordSpan(self.words.get(wid, f"<{wid}>"),
                                  round(s * self.frame_shift_s, 3), round(e * self.frame_shift_s, 3)))
        return Hypothesis(words=[w.word for w in spans], spans=spans, num_frames=num_frames,
                          reached_final=reached, cost=float(sum(c for *_, c in arcs)))

"""Forced alignment: batched Viterbi over per-utterance graphs, with a beam and a retry beam.

The time recursion is vectorised over the states of a batch of utterances (frames looped, utterances
of similar length padded together). Scores are `acoustic_scale * log p(x|pdf) + log transition`, as in
Kaldi's aligner (acoustic scale 0.1, beam 10, retry beam 40). Utterances that cannot be aligned are
returned in `failed` with a reason: `too_short(T<min)`, `beam(retry=B)`, `oov:WORD`, `no_transcript`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
from tqdm import tqdm

from ..hmm import HmmModel
from ..lang.langdir import Lang
from ..utils import get_logger
from .diag_gmm import DiagGmm, single_thread
from .graph import NEG_INF, UttGraph, compile_graph

log = get_logger(__name__)


@dataclass
class AlignResult:
    """Alignment of a set: graph-state path per utterance (int64 [T]) and everything derived."""

    graphs: dict[str, UttGraph]
    states: dict[str, np.ndarray] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    loglike: float = 0.0          # sum of acoustic log-likelihoods on the best paths (unscaled)
    frames: int = 0

    def pdfs(self) -> dict[str, np.ndarray]:
        """Pdf alignment per aligned utterance: int32 [T]."""
        return {u: self.graphs[u].pdf[s].astype(np.int32) for u, s in self.states.items()}

    @property
    def avg_loglike(self) -> float:
        return self.loglike / max(self.frames, 1)

    def transition_counts(self, num_pdfs: int) -> tuple[np.ndarray, np.ndarray]:
        """Viterbi transition counts per pdf: (self-loops [P], forward exits [P])."""
        stay, fwd = np.zeros(num_pdfs), np.zeros(num_pdfs)
        for u, s in self.states.items():
            pdf = self.graphs[u].pdf[s]
            same = s[1:] == s[:-1]
            np.add.at(stay, pdf[:-1][same], 1)
            np.add.at(fwd, pdf[:-1][~same], 1)
            fwd[pdf[-1]] += 1
        return stay, fwd

    def word_times(self, utt: str, frame_shift: float = 0.01) -> list[tuple[int, float, float]]:
        """(word index, start s, end s) per transcript word of an aligned utterance."""
        return word_segments(self.graphs[utt].word[self.states[utt]], frame_shift)


def word_segments(word_per_frame: np.ndarray, frame_shift: float = 0.01
                  ) -> list[tuple[int, float, float]]:
    """Runs of equal non-negative word index [T] -> [(word index, start s, end s)]."""
    out = []
    w = np.asarray(word_per_frame)
    change = np.nonzero(np.diff(w))[0] + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(w)]])
    for a, b in zip(starts, ends):
        if w[a] >= 0:
            out.append((int(w[a]), a * frame_shift, b * frame_shift))
    return out


def viterbi_batch(graphs: list[UttGraph], scores: list[np.ndarray], beam: float,
                  hmm: HmmModel | None = None, self_loop_scale: float = 1.0
                  ) -> list[tuple[np.ndarray | None, float]]:
    """Best state path per utterance. scores[b]: [T_b, S_b] per-state emission scores; transition
    log-probabilities from `hmm` (none when None), times `self_loop_scale`.

    Returns (path int64 [T_b] or None when no path survived the beam, path score).
    """
    bsz = len(graphs)
    lens = np.array([len(x) for x in scores])
    tmax, smax = int(lens.max()), max(g.num_states for g in graphs)
    kmax = max(g.pred.shape[1] for g in graphs)
    em = np.full((bsz, tmax, smax), NEG_INF)
    loop = np.full((bsz, smax), NEG_INF)
    pred = np.zeros((bsz, smax, kmax), dtype=np.int64)
    pred_w = np.full((bsz, smax, kmax), NEG_INF)
    init = np.full((bsz, smax), NEG_INF)
    final = np.full((bsz, smax), NEG_INF)
    to_end = np.full((bsz, smax), np.inf)
    for b, (g, sc) in enumerate(zip(graphs, scores)):
        s, k = g.num_states, g.pred.shape[1]
        em[b, :len(sc), :s] = sc
        g_loop, g_pred_w, g_final = g.weights(hmm, self_loop_scale)
        loop[b, :s], init[b, :s], final[b, :s] = g_loop, g.init, g_final
        pred[b, :s, :k], pred_w[b, :s, :k] = g.pred, g_pred_w
        to_end[b, :s] = g.to_end
    flat_pred = pred.reshape(bsz, smax * kmax)
    ar = np.broadcast_to(np.arange(smax), (bsz, smax))
    back = np.zeros((tmax, bsz, smax), dtype=np.int32)
    delta = np.where(to_end <= lens[:, None], init + em[:, 0], NEG_INF)
    with np.errstate(invalid="ignore"):
        for t in range(1, tmax):
            stay = delta + loop
            cand = np.take_along_axis(delta, flat_pred, 1).reshape(bsz, smax, kmax) + pred_w
            k_best = cand.argmax(2)
            enter = np.take_along_axis(cand, k_best[..., None], 2)[..., 0]
            use_stay = stay >= enter
            new = np.where(use_stay, stay, enter) + em[:, t]
            back[t] = np.where(use_stay, ar, np.take_along_axis(pred, k_best[..., None], 2)[..., 0])
            active = (t < lens)[:, None]
            # states that cannot reach the end in the frames left are dead: drop them before
            # beam pruning so that they never push viable paths out of the beam
            new = np.where(to_end <= (lens - t)[:, None], new, NEG_INF)
            delta = np.where(active, new, delta)
            top = delta.max(1, keepdims=True)
            delta = np.where(delta < top - beam, NEG_INF, delta)
    total = delta + final
    best_end = total.argmax(1)
    best = total[np.arange(bsz), best_end]
    cur = best_end.copy()
    paths = np.zeros((bsz, tmax), dtype=np.int64)
    for t in range(tmax - 1, -1, -1):
        at_end = t == lens - 1
        inside = t < lens - 1
        if inside.any():
            cur = np.where(inside, back[t + 1, np.arange(bsz), cur], cur)
        cur = np.where(at_end, best_end, cur)
        paths[:, t] = cur
    return [(paths[b, :lens[b]] if np.isfinite(best[b]) else None, float(best[b]))
            for b in range(bsz)]


def emission_scores(gmm: DiagGmm, x: np.ndarray, g: UttGraph) -> np.ndarray:
    """Unscaled acoustic log-likelihoods per graph state: x [T, D] -> [T, S]."""
    uniq, inv = np.unique(g.pdf, return_inverse=True)
    return gmm.loglikes(x, uniq)[:, inv].astype(np.float64)


def compile_graphs(hmm: HmmModel, lang: Lang, texts: Mapping[str, str], utts: list[str]
                   ) -> tuple[dict[str, UttGraph], dict[str, str]]:
    """Graphs of the utterances' transcripts -> (graphs, failed {utt: reason}) (OOV policy applied)."""
    graphs, failed = {}, {}
    for u in utts:
        if u not in texts:
            failed[u] = "no_transcript"
            continue
        words, oovs = lang.map_oov(texts[u].split())
        bad = [w for w in words if w not in lang.lexicon]
        if bad:
            failed[u] = "oov:" + ",".join(sorted(set(oovs or bad)))
            continue
        graphs[u] = compile_graph(hmm, lang, words)
    return graphs, failed


def align(hmm: HmmModel, gmm: DiagGmm, feats: Mapping[str, np.ndarray], graphs: dict[str, UttGraph],
          beam: float = 10.0, retry_beam: float = 40.0, acoustic_scale: float = 0.1,
          batch_size: int = 32, progress: str | None = None, boost_silence: float = 1.0,
          self_loop_scale: float = 0.1) -> AlignResult:
    """Viterbi-align every utterance of `graphs` (features [T, D] from `feats`).

    Utterances too short for their graph, or with no path inside `retry_beam`, go to `failed`.
    `boost_silence` multiplies the likelihood of the context-independent phones' pdfs (as Kaldi's
    --boost-silence), so that low-level noise next to words is less often absorbed by speech.
    `self_loop_scale` weighs the HMM transition (duration) probabilities against the scaled
    acoustics; at Kaldi's 0.1 (with acoustic scale 0.1) they keep their natural weight relative to
    the log-likelihoods. At 1.0 they weigh ten times that, and Viterbi EM can collapse: phones
    pinned at one frame per state while one phone per utterance absorbs the rest (bench/ALIGNMENT.md).
    """
    bias = np.zeros(hmm.num_pdfs)
    if boost_silence != 1.0:
        ci = [hmm.phone_id[p] for p in hmm.context_independent]
        bias[np.isin(hmm.pdf_to_phone, ci)] = np.log(boost_silence)
    with single_thread():
        return _align(hmm, gmm, feats, graphs, beam, retry_beam, acoustic_scale, batch_size,
                      progress, bias, self_loop_scale)


def _align(hmm, gmm, feats, graphs, beam, retry_beam, acoustic_scale, batch_size, progress, bias,
           self_loop_scale) -> AlignResult:
    res = AlignResult(graphs=graphs)
    todo = []
    for u, g in graphs.items():
        t = len(feats[u])
        if t < g.min_frames:
            res.failed[u] = f"too_short({t}<{g.min_frames})"
        else:
            todo.append(u)
    todo.sort(key=lambda u: len(feats[u]))
    retry: list[str] = []
    for cur_beam, utts in ((beam, todo), (retry_beam, retry)):
        if not utts:
            continue
        bar = tqdm(total=len(utts), desc=progress or "align", disable=None if progress else True)
        for i in range(0, len(utts), batch_size):
            chunk = utts[i:i + batch_size]
            lls = [emission_scores(gmm, feats[u], graphs[u]) for u in chunk]
            out = viterbi_batch([graphs[u] for u in chunk],
                                [acoustic_scale * (x + bias[graphs[u].pdf]) for u, x in zip(chunk, lls)],
                                cur_beam, hmm, self_loop_scale)
            for u, ll, (path, _) in zip(chunk, lls, out):
                if path is None:
                    if cur_beam == beam and retry_beam > beam:
                        retry.append(u)
                    else:
                        res.failed[u] = f"beam(retry={retry_beam:g})"
                    continue
                res.states[u] = path
                res.loglike += float(ll[np.arange(len(path)), path].sum())
                res.frames += len(path)
            bar.update(len(chunk))
        bar.close()
    if retry:
        log.debug("%d utterances needed the retry beam %g", len(retry), retry_beam)
    return res

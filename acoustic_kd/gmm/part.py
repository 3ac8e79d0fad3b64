"""One part of a data set for the GMM passes: its utterances' features, graphs and state alignment,
and the statistics that the passes sum over parts (gmm/parallel.py keeps one Part in each job).

A Part is the unit of work of `acoustic-kd align --nj N`: each holds whole speakers, aligns its own
utterances, and returns sums (Gaussian, tree, LDA, MLLT statistics, transition counts) that the
driver adds up before estimating once; fMLLR transforms are estimated inside the part that holds
the speaker. Methods only read their arguments (in a job they are copies; in-process they are not).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from ..ali import check_lengths
from ..hmm import HmmModel
from ..lang.langdir import Lang, load_lang
from ..utils import c_sorted, read_table
from .align import AlignResult, align, compile_graphs
from .diag_gmm import DiagGmm, GmmStats, single_thread
from .feats import load_set
from .flatstart import loud_frames, vad_alignment
from .fmllr import FmllrResult, estimate_set_each, read_utt2spk, speaker_of, transform_set
from .graph import equal_alignment, retarget_graph
from .lda_mllt import LdaStats, apply_transform, lda_stats, mllt_stats, splice, transform_features
from .tree import context_stats

LDA_BLOCK = 50_000   # frames converted to float64 (or spliced) at a time for the statistics


@dataclass
class AlignStats:
    """What a (re)alignment tells the driver, summed over parts: log-likelihood and frames of the
    best paths, Viterbi transition counts per pdf (self-loops [P], exits [P]), and the selection's
    utterances, aligned and failed counts."""

    loglike: float
    frames: int
    stay: np.ndarray
    fwd: np.ndarray
    counts: tuple[int, int, int]

    def __add__(self, o: "AlignStats") -> "AlignStats":
        return AlignStats(self.loglike + o.loglike, self.frames + o.frames, self.stay + o.stay,
                          self.fwd + o.fwd, tuple(a + b for a, b in zip(self.counts, o.counts)))


@dataclass
class SetAlignment:
    """A set's alignment as it goes to disk: per aligned utterance its graph-state path and pdfs
    (int32 [T]) and its words.ctm lines; the failures {utt: reason}; the best paths' summed
    log-likelihood and frames; the feature frames of every utterance with features."""

    states: dict[str, np.ndarray]
    pdfs: dict[str, np.ndarray]
    ctm: dict[str, str]
    failed: dict[str, str]
    loglike: float
    frames: int
    lengths: dict[str, int]

    @property
    def avg_loglike(self) -> float:
        return self.loglike / max(self.frames, 1)

    @classmethod
    def of(cls, res: AlignResult, lengths: Mapping[str, int] | None = None) -> "SetAlignment":
        """From an AlignResult (graphs give the pdfs and word times)."""
        ctm = {}
        for u in res.states:
            ctm[u] = "".join(f"{u} 1 {s:.2f} {e - s:.2f} {res.graphs[u].words[w]}\n"
                             for w, s, e in res.word_times(u))
        return cls({u: s.astype(np.int32) for u, s in res.states.items()}, res.pdfs(), ctm,
                   dict(res.failed), res.loglike, res.frames, dict(lengths or {}))

    @classmethod
    def merge(cls, parts: list["SetAlignment"]) -> "SetAlignment":
        """The parts' alignments (disjoint utterances) as one."""
        out = cls({}, {}, {}, {}, 0.0, 0, {})
        for p in parts:
            for mine, theirs in ((out.states, p.states), (out.pdfs, p.pdfs), (out.ctm, p.ctm),
                                 (out.failed, p.failed), (out.lengths, p.lengths)):
                mine.update(theirs)
            out.loglike += p.loglike
            out.frames += p.frames
        return out


class Part:
    """The utterances `utts` (C-sorted, whole speakers) of a data set: features, transcripts,
    speakers, the alignment of the whole part (`res`) and the selection trained on (`cur`)."""

    def __init__(self, lang: Lang, texts: Mapping[str, str], utt2spk: Mapping[str, str],
                 utts: list[str], data_dir=None, front_end: dict | None = None):
        self.lang, self.texts, self.utt2spk = lang, dict(texts), dict(utt2spk)
        self.utts, self.data_dir, self.fe = list(utts), data_dir, dict(front_end or {})
        self.feats: dict[str, np.ndarray] = {}
        self.si: dict[str, np.ndarray] = {}        # speaker-independent features (SAT)
        self.trans: dict[str, np.ndarray] = {}     # fMLLR transform per speaker (SAT)
        self._set_res(AlignResult(graphs={}))

    @classmethod
    def load(cls, data_dir, lang_dir, utts: list[str], front_end: dict) -> "Part":
        """The part `utts` of a data dir with its transcripts and speakers (features: load_features)."""
        keep = set(utts)
        texts = {k: v for k, v, _ in read_table(Path(data_dir) / "text", min_fields=1) if k in keep}
        u2s = {u: s for u, s in read_utt2spk(data_dir).items() if u in keep}
        return cls(load_lang(lang_dir), texts, u2s, utts, data_dir, front_end)

    @classmethod
    def of(cls, feats: Mapping[str, np.ndarray], texts: Mapping[str, str], lang: Lang,
           utt2spk: Mapping[str, str] | None = None, res: AlignResult | None = None) -> "Part":
        """One part holding the given features (utt -> [T, D]) and, optionally, an alignment."""
        part = cls(lang, texts, utt2spk or {}, c_sorted(feats))
        part.set_features(feats)
        if res is not None:
            part._set_res(res)
        return part

    # ------------------------------------------------------------ features
    def load_features(self, transform: np.ndarray | None = None, context: int = 0,
                      delta_order: int | None = None, front_end: dict | None = None) -> int:
        """The part's GMM features from its data dir: cepstra + deltas as the front end (the
        part's, or `front_end`) says (`delta_order` overrides it) or, with an affine `transform`,
        the cepstra spliced +-`context` frames through it -> the feature dimension."""
        order = 0 if transform is not None else delta_order
        fe = dict(front_end or self.fe)
        fe = fe if order is None else {**fe, "delta_order": order}
        feats, _ = load_set(self.data_dir, utts=self.utts, **fe)
        if transform is not None:
            feats = transform_features(feats, transform, context)
        self.set_features(feats)
        return next(iter(feats.values())).shape[1] if feats else 0

    def set_features(self, feats: Mapping[str, np.ndarray]) -> None:
        self.feats, self.si, self.trans = dict(feats), {}, {}
        self._frames_cache = None

    def transform(self, a: np.ndarray) -> None:
        """Every utterance's features through the transform `a` ([d, D] or affine [d, D + 1])."""
        self.feats = {u: apply_transform(a, x) for u, x in self.feats.items()}
        self._frames_cache = None

    def splice_transform(self, m: np.ndarray, context: int) -> None:
        """Every utterance's features spliced +-`context` frames through the affine `m`."""
        self.feats = transform_features(self.feats, m, context)
        self._frames_cache = None

    # ------------------------------------------------------------ graphs and alignments
    def compile(self, hmm: HmmModel, listed: bool = False) -> None:
        """Graphs of `hmm` for the transcripts of the utterances with features, no paths yet.
        `listed`: every utterance of the part is accounted for (no features / no transcript
        are failures), as when a set is aligned; otherwise those are left out, as in training."""
        if listed:
            failed = {u: "no_features" for u in self.utts if u not in self.feats}
            utts = [u for u in self.utts if u in self.feats]
        else:
            failed, utts = {}, [u for u in self.utts if u in self.feats and u in self.texts]
        graphs, gfail = compile_graphs(hmm, self.lang, self.texts, utts)
        self._set_res(AlignResult(graphs=graphs, failed={**failed, **gfail}))

    def flat_start(self, cfg) -> dict[str, int]:
        """The first state paths (energy-guided, or frames split evenly) -> frames per aligned utt."""
        res = self.res
        for u, g in res.graphs.items():
            x = self.feats[u]
            path = (vad_alignment(g, len(x), loud_frames(x[:, 0]), cfg.flat_start_min_pause)
                    if cfg.flat_start_vad else equal_alignment(g, len(x)))
            if path is None:
                res.failed[u] = f"too_short({len(x)}<{g.min_frames})"
            else:
                res.states[u] = path
        self.select(None)
        return {u: len(self.feats[u]) for u in res.states}

    def restore(self, hmm: HmmModel, path) -> bool:
        """Graphs of `hmm`, and the state paths of the part's utterances from `path` (a stage's
        final.states.npz) -> False (nothing taken) when a path has no graph here."""
        self.compile(hmm)
        z = np.load(path)
        utts = [str(u) for u in z["utts"]]
        mine = set(self.utts)
        if any(u in mine and u not in self.res.graphs for u in utts):
            return False
        paths = np.split(z["states"].astype(np.int64), np.cumsum(z["lens"])[:-1]) if utts else []
        self.res.states = {u: p for u, p in zip(utts, paths) if u in mine}
        kept = {str(u): str(w) for u, w in zip(z["failed_utts"], z["failed_why"]) if str(u) in mine}
        self.res.failed = {**kept, **self.res.failed}
        self.select(None)
        return True

    def retarget(self, hmm: HmmModel) -> None:
        """The same graphs and paths with `hmm`'s pdfs (a new tree)."""
        r = self.res
        self._set_res(AlignResult(graphs={u: retarget_graph(hmm, g) for u, g in r.graphs.items()},
                                  states=dict(r.states), failed=dict(r.failed)))

    def select(self, utts: list[str] | None = None) -> tuple[int, int, int]:
        """Train on the aligned utterances `utts` (those of this part), or with None on every
        utterance with a graph -> the selection's (utterances, aligned, failed)."""
        if utts is None:
            self.cur, self.view = self.res, sorted(self.res.graphs)
        else:
            keep = [u for u in utts if u in self.res.states]
            self.cur = AlignResult(graphs={u: self.res.graphs[u] for u in keep},
                                   states={u: self.res.states[u] for u in keep})
            self.view = sorted(keep)
        self._frames_cache = None
        return self.counts()

    def counts(self) -> tuple[int, int, int]:
        return len(self.view), len(self.cur.states), len(self.cur.failed)

    def align(self, hmm: HmmModel, gmm: DiagGmm, cfg, label: str | None = None) -> AlignStats:
        """Viterbi-align the selection with (hmm, gmm) -> its AlignStats."""
        ungraphed = {u: r for u, r in self.cur.failed.items() if u not in self.cur.graphs}
        res = align(hmm, gmm, self.feats, self.cur.graphs, cfg.beam, cfg.retry_beam,
                    cfg.acoustic_scale, cfg.batch_size, progress=label,
                    boost_silence=cfg.boost_silence, self_loop_scale=cfg.self_loop_scale)
        res.failed.update(ungraphed)
        if self.cur is self.res:
            self.res = res
        self.cur = res
        self._frames_cache = None
        return AlignStats(res.loglike, res.frames, *res.transition_counts(hmm.num_pdfs),
                          self.counts())

    def result(self) -> SetAlignment:
        """The part's alignment for writing (its lengths checked against the features)."""
        out = SetAlignment.of(self.res, {u: len(x) for u, x in self.feats.items()})
        check_lengths(out.pdfs, out.lengths, where=str(self.data_dir or "alignment"))
        return out

    # ------------------------------------------------------------ statistics
    def _frames(self, dim: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The selection's aligned frames [N, D] (utterance order) and their pdfs int32 [N]."""
        if self._frames_cache is None:
            pdfs = self.cur.pdfs()
            us = [u for u in self.view if u in pdfs]
            if not us:
                return np.zeros((0, dim), dtype=np.float32), np.zeros(0, dtype=np.int32)
            self._frames_cache = (np.concatenate([self.feats[u] for u in us]).astype(np.float32),
                                  np.concatenate([pdfs[u] for u in us]))
        return self._frames_cache

    def global_stats(self) -> tuple[float, np.ndarray, np.ndarray] | None:
        """Frames, sum [D] and sum of squares [D] over every frame of the selection (float64,
        an utterance at a time); None without frames (so for every statistic below)."""
        if not self.view:
            return None
        n, s1, s2 = 0.0, 0.0, 0.0
        for u in self.view:
            x = self.feats[u].astype(np.float64)
            n, s1, s2 = n + len(x), s1 + x.sum(0), s2 + (x * x).sum(0)
        return n, s1, s2

    def pdf_stats(self, num_pdfs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Frames [P], sums and sums of squares [P, D] per pdf of the aligned frames."""
        x, pdf = self._frames()
        if not len(pdf):
            return None
        s1, s2 = np.zeros((num_pdfs, x.shape[1])), np.zeros((num_pdfs, x.shape[1]))
        for i in range(0, len(x), LDA_BLOCK):
            xb, pb = x[i:i + LDA_BLOCK].astype(np.float64), pdf[i:i + LDA_BLOCK]
            np.add.at(s1, pb, xb)
            np.add.at(s2, pb, xb * xb)
        return np.bincount(pdf, minlength=num_pdfs).astype(np.float64), s1, s2

    def accumulate(self, gmm: DiagGmm) -> GmmStats:
        """Gaussian statistics of the aligned frames (component posteriors within each pdf)."""
        with single_thread():
            return gmm.accumulate(*self._frames(gmm.dim))

    def tree_stats(self, num_phones: int) -> tuple | None:
        """Single-Gaussian statistics per seen (left, phone, right, state) (tree.context_stats)."""
        us = [u for u in self.view if u in self.cur.states]
        if not us:
            return None
        info = np.concatenate([self.cur.graphs[u].info[self.cur.states[u]] for u in us])
        return context_stats(info, self._frames()[0], num_phones)

    def lda_stats(self, silence: np.ndarray, context: int, num_classes: int) -> LdaStats | None:
        """LDA statistics of the aligned frames spliced +-`context`, classes = pdfs, pdfs with
        `silence` [P] True left out (spliced a block of utterances at a time)."""
        pdfs = self.res.pdfs()
        out, block, size = None, [], 0
        utts = sorted(u for u in self.res.states if u in self.feats)
        for i, u in enumerate(utts):
            block.append(u)
            size += len(pdfs[u])
            if size < LDA_BLOCK and i < len(utts) - 1:
                continue
            cls = np.concatenate([pdfs[v] for v in block]).astype(np.int64)
            x = np.concatenate([splice(self.feats[v], context) for v in block])
            st = lda_stats(x, cls, (~silence[cls]).astype(np.float64), num_classes)
            out, block, size = st if out is None else out + st, [], 0
        return out

    def mllt_stats(self, gmm: DiagGmm) -> tuple[np.ndarray, float]:
        """Semi-tied covariance statistics (lda_mllt.mllt_stats) of the aligned frames."""
        with single_thread():
            return mllt_stats(gmm, *self._frames(gmm.dim))

    # ------------------------------------------------------------ speaker adaptation
    def fmllr(self, gmm: DiagGmm, hmm: HmmModel, cfg) -> dict[str, FmllrResult]:
        """(Re-)estimate the part's speakers' fMLLR transforms with (hmm, gmm) from the selection's
        alignment and the speaker-independent features (the features held at the first call),
        then transform the features -> {speaker: estimate}."""
        if not self.si:
            self.si = self.feats
        per = estimate_set_each(gmm, hmm, self.si, self.cur.pdfs(), self.utt2spk, cfg, self.trans)
        self.trans = {s: r.w for s, r in per.items()}
        self.feats = transform_set(self.si, self.utt2spk, self.trans)
        self._frames_cache = None
        return per

    def speaker_frames(self) -> dict[str, int]:
        """Aligned frames of the selection per speaker."""
        out: dict[str, int] = {}
        for u, s in self.cur.states.items():
            k = speaker_of(self.utt2spk, u)
            out[k] = out.get(k, 0) + len(s)
        return out

    def align_sat(self, si_hmm: HmmModel, si_gmm: DiagGmm, hmm: HmmModel, gmm: DiagGmm, cfg,
                  label: str | None = None) -> tuple[dict[str, FmllrResult], AlignStats]:
        """Align the part with a SAT model: a speaker-independent pass with (si_hmm, si_gmm) on the
        features held, fMLLR per speaker from it with (hmm, gmm), then (hmm, gmm) on the
        transformed features -> (the estimates, the first pass's AlignStats)."""
        self.compile(si_hmm)
        first = self.align(si_hmm, si_gmm, cfg, label)
        self.retarget(hmm)
        per = self.fmllr(gmm, hmm, cfg)
        self.compile(hmm, listed=True)
        self.align(hmm, gmm, cfg, label)
        return per, first

    def threads(self) -> tuple[int, int, str | None]:
        """(process id, torch threads, OMP_NUM_THREADS) of the process holding the part."""
        import os

        import torch

        return os.getpid(), torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")

    def _set_res(self, res: AlignResult) -> None:
        self.res = res
        self.select(None)


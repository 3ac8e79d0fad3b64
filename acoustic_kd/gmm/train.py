"""GMM-HMM training with Viterbi EM: flat-start monophones, then tree-tied word-internal triphones.

Each iteration: (re)align on the realignment schedule (the Viterbi E-step over HMM states), accumulate
Gaussian statistics with soft component posteriors inside each frame's pdf, re-estimate (M-step),
then mix up (split Gaussians) towards the target count. The average per-frame log-likelihood of the
aligned data under the model entering the iteration is logged (JSONL) for every iteration.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

import numpy as np

from ..config_types import check_fields
from ..errors import DataError
from ..hmm import BOUNDARY, HmmModel
from ..lang.langdir import Lang
from ..utils import get_logger
from .align import AlignResult, align, compile_graphs
from .diag_gmm import MIN_OCC, DiagGmm, single_thread
from .flatstart import loud_frames, vad_alignment
from .graph import UttGraph, equal_alignment
from .lda_mllt import (apply_transform, estimate_lda, estimate_mllt, mllt_stats, splice,
                       transform_features, transform_gmm)
from .tree import TreeConfig, build_trees, context_stats

log = get_logger(__name__)


@dataclass
class AlignConfig:
    """Options of `acoustic-kd align` (GMM-HMM training and forced alignment)."""

    num_ceps: int = field(default=13, metadata={"help": "cepstra of the GMM features (+ deltas)",
                                                "range": "[1, inf)"})
    norm_vars: bool = field(default=True, metadata={
        "help": "also normalise cepstral variances (helps in noise)"})
    cmvn: str = field(default="utterance", metadata={
        "help": "cepstral mean/variance normalisation unit: 'utterance' (noise differs per "
                "utterance) or 'speaker' (utt2spk)", "choices": ("utterance", "speaker")})
    delta_order: int = field(default=2, metadata={
        "help": "time derivatives appended to the cepstra (2 = deltas + delta-deltas, 0 = none)",
        "range": "[0, inf)"})
    delta_window: int = field(default=2, metadata={
        "help": "frames on each side in a delta regression; wider is steadier in noise, narrower "
                "places speech/silence boundaries more precisely (see gmm/feats.py)", "range": "[1, inf)"})
    flat_start_vad: bool = field(default=True, metadata={
        "help": "flat start from frame energy (c0): quiet edges and pauses start as silence "
                "(see gmm/flatstart.py) instead of all frames being split evenly"})
    flat_start_min_pause: int = field(default=20, metadata={
        "help": "shortest quiet run (frames) inside an utterance that the flat start makes a pause",
        "range": "[1, inf)"})
    mono_iters: int = field(default=25, metadata={"help": "monophone EM iterations", "range": "[1, inf)"})
    mono_gauss: int = field(default=600, metadata={"help": "target total monophone Gaussians",
                                                   "range": "[1, inf)"})
    mono_subset: int = field(default=0, metadata={
        "help": "flat-start the first half of the monophone iterations on this many shortest "
                "utterances (0 = all), as Kaldi's train_mono does", "range": "[0, inf)"})
    mono_realign_iters: list[int] = field(
        default_factory=lambda: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 18, 20, 22],
        metadata={"help": "monophone iterations that start with a realignment", "range": "[0, inf)"})
    tri_leaves: int = field(default=2000, metadata={
        "help": "target number of tied states (leaves); 2000 / 10000 Gaussians at ~3 h (Mboshi, "
                "recipes/mboshi/RESULTS.md: 500 gave degenerate alignments)", "range": "[1, inf)"})
    tri_gauss: int = field(default=10000, metadata={"help": "target total triphone Gaussians",
                                                    "range": "[1, inf)"})
    tri_iters: int = field(default=20, metadata={"help": "triphone EM iterations", "range": "[1, inf)"})
    tri_realign_iters: list[int] = field(default_factory=lambda: [5, 10, 15],
                                         metadata={"help": "triphone realignment iterations",
                                                   "range": "[0, inf)"})
    tri2_leaves: int = field(default=2500, metadata={
        "help": "tied states of the LDA+MLLT stage (tri2; trained with `align --through tri2`)",
        "range": "[1, inf)"})
    tri2_gauss: int = field(default=15000, metadata={"help": "total Gaussians of the tri2 stage",
                                                     "range": "[1, inf)"})
    tri2_iters: int = field(default=35, metadata={"help": "tri2 EM iterations", "range": "[1, inf)"})
    tri2_realign_iters: list[int] = field(default_factory=lambda: [10, 20, 30],
                                          metadata={"help": "tri2 realignment iterations",
                                                    "range": "[0, inf)"})
    tri3_leaves: int = field(default=0, metadata={
        "help": "tied states of the speaker-adaptive (fMLLR) stage (tri3; `align --through tri3`); "
                "0 = tri2_leaves", "range": "[0, inf)"})
    tri3_gauss: int = field(default=0, metadata={"help": "total Gaussians of tri3; 0 = tri2_gauss",
                                                 "range": "[0, inf)"})
    tri3_iters: int = field(default=35, metadata={"help": "tri3 EM iterations", "range": "[1, inf)"})
    tri3_realign_iters: list[int] = field(default_factory=lambda: [10, 20, 30],
                                          metadata={"help": "tri3 realignment iterations",
                                                    "range": "[0, inf)"})
    fmllr_iters: list[int] = field(default_factory=lambda: [2, 4, 6, 12], metadata={
        "help": "tri3 iterations that re-estimate the per-speaker fMLLR transforms", "range": "[0, inf)"})
    fmllr_em_iters: int = field(default=2, metadata={
        "help": "fMLLR estimation: times the Gaussian posteriors are recomputed under the current "
                "transform, each followed by row-by-row updates", "range": "[1, inf)"})
    fmllr_passes: int = field(default=10, metadata={
        "help": "fMLLR estimation: row-by-row sweeps over the statistics per posterior pass",
        "range": "[1, inf)"})
    fmllr_min_frames: float = field(default=500.0, metadata={
        "help": "speakers with fewer (weighted) frames keep the identity transform", "range": "[0, inf)"})
    fmllr_silence_weight: float = field(default=0.0, metadata={
        "help": "weight of silence frames in fMLLR estimation (0 = left out)", "range": "[0, 1]"})
    lda_context: int = field(default=3, metadata={
        "help": "frames spliced on each side of the cepstra before LDA (tri2)", "range": "[0, inf)"})
    lda_dim: int = field(default=40, metadata={"help": "LDA output dimension (tri2)", "range": "[1, inf)"})
    mllt_iters: list[int] = field(default_factory=lambda: [2, 4, 6, 12], metadata={
        "help": "tri2 iterations that re-estimate the MLLT transform", "range": "[0, inf)"})
    tree_min_count: float = field(default=50.0, metadata={"help": "min frames on each side of a split",
                                                          "range": "[0, inf)"})
    tree_min_gain: float = field(default=20.0, metadata={"help": "min log-likelihood gain of a split",
                                                         "range": "[0, inf)"})
    beam: float = field(default=10.0, metadata={"help": "alignment beam (scaled score units)",
                                                "range": "(0, inf)"})
    retry_beam: float = field(default=40.0, metadata={"help": "beam of the second try", "range": "(0, inf)"})
    acoustic_scale: float = field(default=0.1, metadata={"help": "acoustic scale for alignment",
                                                         "range": "(0, inf)"})
    self_loop_scale: float = field(default=0.1, metadata={
        "help": "scale of the HMM self-loop/forward log-probabilities in alignment (Kaldi's "
                "--self-loop-scale); 1.0 lets the duration model outweigh the scaled acoustics",
                "range": "[0, inf)"})
    boost_silence: float = field(default=1.0, metadata={
        "help": "likelihood factor for silence / spoken-noise pdfs in training alignments",
        "range": "(0, inf)"})
    batch_size: int = field(default=32, metadata={"help": "utterances aligned together", "range": "[1, inf)"})
    var_floor: float = field(default=0.01, metadata={"help": "variance floor, fraction of global",
                                                     "range": "(0, inf)"})
    min_gauss_frames: float = field(default=20.0, metadata={"help": "min frames per Gaussian",
                                                            "range": "[0, inf)"})
    mixup_power: float = field(default=0.2, metadata={"help": "Gaussians per pdf ~ occupancy^power",
                                                      "range": "[0, inf)"})

    def __post_init__(self):
        check_fields(self)


class _Data:
    """All training frames in one array [N, D] with per-utterance offsets."""

    def __init__(self, feats: Mapping[str, np.ndarray], utts: list[str]):
        self.utts = utts
        self.x = np.concatenate([feats[u] for u in utts]).astype(np.float32)
        lens = [len(feats[u]) for u in utts]
        self.offset = dict(zip(utts, np.concatenate([[0], np.cumsum(lens)[:-1]]).tolist()))
        self.feats = feats

    def gather(self, seqs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Frame row ids of the utterances in `seqs` and the concatenated values -> ([n], [n])."""
        us = [u for u in self.utts if u in seqs]
        rows = np.concatenate([self.offset[u] + np.arange(len(seqs[u])) for u in us])
        return rows, np.concatenate([seqs[u] for u in us])

    def global_stats(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x.mean(0).astype(np.float64), self.x.var(0).astype(np.float64)


def _log_iter(log_path: Path | None, rec: dict) -> None:
    log.info("%s iter %d: avg loglike/frame %.4f, %d Gaussians%s", rec["stage"], rec["iter"],
             rec["avg_loglike"], rec["num_gauss"], " (realigned)" if rec["realigned"] else "")
    if log_path:
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")


def viterbi_em(hmm: HmmModel, gmm: DiagGmm, data: _Data, res: AlignResult, cfg: AlignConfig,
               iters: int, realign_iters: list[int], target_gauss: int, stage: str,
               log_path: Path | None = None, first_iter: int = 0, hook=None
               ) -> tuple[AlignResult, list[dict]]:
    """Run `iters` Viterbi-EM iterations from the state alignment `res`; returns the final
    alignment (made with the final model) and the per-iteration log records. Iterations are
    numbered from `first_iter` (also for `realign_iters`). `hook(iter, gmm, data, rows, pdf)`, when
    given, runs on each iteration's alignment before the statistics are gathered and may change
    the features (`data`) and the GMM in place (the LDA+MLLT stage re-estimates its transform
    there); it returns a dict of fields for the iteration's log record."""
    with single_thread():
        return _viterbi_em(hmm, gmm, data, res, cfg, iters, realign_iters, target_gauss, stage,
                           log_path, first_iter, hook)


def _viterbi_em(hmm, gmm, data, res, cfg, iters, realign_iters, target_gauss, stage, log_path,
                first_iter, hook):
    _, var = data.global_stats()
    floor = cfg.var_floor * var
    # failures decided before alignment (OOV, no transcript) have no graph: keep them listed
    ungraphed = {u: r for u, r in res.failed.items() if u not in res.graphs}
    start_gauss = gmm.num_gauss
    mixup_until = max(1, int(iters * 0.75))
    history = []
    for it in range(iters):
        t0 = time.time()
        realigned = it + first_iter in realign_iters
        if realigned:
            res = align(hmm, gmm, data.feats, res.graphs, cfg.beam, cfg.retry_beam,
                        cfg.acoustic_scale, cfg.batch_size, boost_silence=cfg.boost_silence,
                        self_loop_scale=cfg.self_loop_scale)
            res.failed.update(ungraphed)
            hmm.update_transitions(*res.transition_counts(hmm.num_pdfs))
        rows, pdf = data.gather(res.pdfs())
        extra = hook(it + first_iter, gmm, data, rows, pdf) if hook else None
        stats = gmm.accumulate(data.x[rows], pdf)
        rec = {"stage": stage, "iter": it + first_iter, "utts": len(data.utts), "avg_loglike": stats.avg_loglike, "frames": stats.frames,
               "num_gauss": gmm.num_gauss, "realigned": realigned, "aligned_utts": len(res.states),
               "failed_utts": len(res.failed)}
        occ = np.bincount(gmm.comp_pdf, weights=stats.occ, minlength=gmm.num_pdfs)
        gmm.update(stats, floor)
        # tied states that lost (nearly) all their frames keep their old Gaussians
        rec["starved_pdfs"] = int((occ < MIN_OCC).sum())
        rec["removed_gauss"] = gmm.removed_gauss
        if it < mixup_until:
            goal = start_gauss + (target_gauss - start_gauss) * (it + 1) // mixup_until
            before = gmm.num_gauss
            gmm.split(goal, occ, cfg.mixup_power, cfg.min_gauss_frames)
            if gmm.num_gauss > before:
                # one EM pass on the same alignment lets the split Gaussians move apart, so the
                # next iteration does not start from the (slightly worse) perturbed copies
                gmm.update(gmm.accumulate(data.x[rows], pdf), floor)
        rec.update(extra or {})
        rec["time_s"] = round(time.time() - t0, 3)
        _log_iter(log_path, rec)
        history.append(rec)
    res = align(hmm, gmm, data.feats, res.graphs, cfg.beam, cfg.retry_beam, cfg.acoustic_scale,
                cfg.batch_size, progress=f"{stage} final align", boost_silence=cfg.boost_silence,
                self_loop_scale=cfg.self_loop_scale)
    res.failed.update(ungraphed)
    hmm.update_transitions(*res.transition_counts(hmm.num_pdfs))
    return res, history


def train_mono(feats: Mapping[str, np.ndarray], texts: Mapping[str, str], lang: Lang,
               cfg: AlignConfig, log_path: Path | None = None
               ) -> tuple[HmmModel, DiagGmm, AlignResult, list[dict]]:
    """Flat-start monophone training on GMM features (utt -> [T, D]).

    Returns (model, GMMs, final alignment incl. failures, per-iteration log records).
    """
    hmm = HmmModel.monophone(lang.phones, lang.topo, lang.silence_phone)
    utts = sorted(u for u in feats if u in texts)
    graphs, failed = compile_graphs(hmm, lang, texts, utts)
    res = AlignResult(graphs=graphs, failed=dict(failed))
    for u, g in graphs.items():
        if cfg.flat_start_vad:  # c0 of the GMM features: an affine function of log energy
            path = vad_alignment(g, len(feats[u]), loud_frames(feats[u][:, 0]),
                                 cfg.flat_start_min_pause)
        else:
            path = equal_alignment(g, len(feats[u]))
        if path is None:
            res.failed[u] = f"too_short({len(feats[u])}<{g.min_frames})"
        else:
            res.states[u] = path
    if not res.states:
        raise DataError(None, "no utterance could be flat-start aligned",
                        "check transcripts, lexicon and feature lengths")
    data = _Data(feats, [u for u in utts if u in graphs])
    log.info("monophones: %d phones, %d pdfs, %d utterances (%d failed flat start)",
             len(lang.phones) - 1, hmm.num_pdfs, len(res.states), len(res.failed))
    hist: list[dict] = []
    first = 0
    if 0 < cfg.mono_subset < len(res.states):
        # flat start is most accurate on short utterances: train on those, then align everything
        short = sorted(res.states, key=lambda u: (len(feats[u]), u))[:cfg.mono_subset]
        sub = AlignResult(graphs={u: graphs[u] for u in short},
                          states={u: res.states[u] for u in short})
        sub_data = _Data(feats, sorted(short))
        gmm = _flat_gmm(hmm, sub_data, sub, cfg)
        first = cfg.mono_iters // 2
        _, hist = viterbi_em(hmm, gmm, sub_data, sub, cfg, first, cfg.mono_realign_iters,
                             cfg.mono_gauss // 2, "mono", log_path)
        res = align(hmm, gmm, feats, graphs, cfg.beam, cfg.retry_beam, cfg.acoustic_scale,
                    cfg.batch_size, boost_silence=cfg.boost_silence,
                    self_loop_scale=cfg.self_loop_scale)
        res.failed.update(failed)
    else:
        gmm = _flat_gmm(hmm, data, res, cfg)
    res, more = viterbi_em(hmm, gmm, data, res, cfg, cfg.mono_iters - first,
                           cfg.mono_realign_iters, cfg.mono_gauss, "mono", log_path, first)
    return hmm, gmm, res, hist + more


def _flat_gmm(hmm: HmmModel, data: _Data, res: AlignResult, cfg: AlignConfig) -> DiagGmm:
    """One Gaussian per pdf from the frames of a state alignment (the flat start)."""
    rows, pdf = data.gather(res.pdfs())
    x = data.x[rows].astype(np.float64)
    n = np.bincount(pdf, minlength=hmm.num_pdfs).astype(np.float64)
    s1 = np.zeros((hmm.num_pdfs, x.shape[1]))
    s2 = np.zeros_like(s1)
    np.add.at(s1, pdf, x)
    np.add.at(s2, pdf, x * x)
    mean, var = data.global_stats()
    return DiagGmm.from_stats(n, s1, s2, cfg.var_floor * var, mean, var)


def train_tri(feats: Mapping[str, np.ndarray], lang: Lang, mono: HmmModel, mono_res: AlignResult,
              cfg: AlignConfig, log_path: Path | None = None, stage: str = "tri", hook=None
              ) -> tuple[HmmModel, DiagGmm, AlignResult, list[dict]]:
    """Tree-tied word-internal triphones from the state alignment of an earlier stage (`mono_res`:
    monophones, or the Δ triphones for the LDA+MLLT stage) on `feats`; `mono` gives the phone set
    and topology. `hook`: see `viterbi_em`."""
    tri, gmm, data, res = init_tri(feats, mono, mono_res, cfg)
    res, hist = viterbi_em(tri, gmm, data, res, cfg, cfg.tri_iters, cfg.tri_realign_iters,
                           cfg.tri_gauss, stage, log_path, hook=hook)
    return tri, gmm, res, hist


def init_tri(feats: Mapping[str, np.ndarray], mono: HmmModel, mono_res: AlignResult,
             cfg: AlignConfig) -> tuple[HmmModel, DiagGmm, _Data, AlignResult]:
    """A new tree (`cfg.tri_leaves`) and one Gaussian per leaf from the contexts and frames of the
    state alignment `mono_res` -> (model, GMM, training data, the alignment re-targeted to it)."""
    data = _Data(feats, sorted(mono_res.graphs))
    infos = {u: mono_res.graphs[u].info[s] for u, s in mono_res.states.items()}
    us = [u for u in data.utts if u in infos]
    rows = np.concatenate([data.offset[u] + np.arange(len(infos[u])) for u in us])
    info = np.concatenate([infos[u] for u in us])
    keys, n, s1, s2 = context_stats(info, data.x[rows], len(mono.phones))
    mean, var = data.global_stats()
    floor = cfg.var_floor * var
    tri, leaf_n, leaf_s = build_trees(mono, keys, n, s1, s2, floor,
                                      TreeConfig(cfg.tri_leaves, cfg.tree_min_count, cfg.tree_min_gain))
    gmm = DiagGmm.from_stats(leaf_n, leaf_s[:, 0], leaf_s[:, 1], floor, mean, var)
    log.info("triphones: %d tied states from %d seen contexts", tri.num_pdfs, len(keys))
    graphs = {u: retarget_graph(tri, g) for u, g in mono_res.graphs.items()}
    res = AlignResult(graphs=graphs, states=dict(mono_res.states), failed=dict(mono_res.failed))
    return tri, gmm, data, res


def retarget_graph(tri: HmmModel, g: UttGraph) -> UttGraph:
    """The same graph with another model's pdfs: graph structure and state order do not depend on
    the model, only each state's pdf does (looked up from its stored context)."""
    names = tri.phones
    pdf = np.array([tri.pdf(names[lc] if lc else BOUNDARY, names[p], names[rc] if rc else BOUNDARY,
                            int(s)) for lc, p, rc, s in g.info], dtype=np.int64)
    return replace(g, pdf=pdf)


def train_lda_mllt(ceps: Mapping[str, np.ndarray], lang: Lang, mono: HmmModel, tri: HmmModel,
                   tri_res: AlignResult, cfg: AlignConfig, log_path: Path | None = None
                   ) -> tuple[HmmModel, DiagGmm, AlignResult, list[dict], np.ndarray]:
    """The LDA+MLLT stage (tri2) from the Δ-triphone stage's alignment `tri_res` (model `tri`).

    ceps: normalised cepstra without deltas (utt -> [T, C]). LDA classes are `tri`'s tied states,
    silence frames left out; a new tree is grown on the LDA features and MLLT re-estimated on the
    `cfg.mllt_iters` iterations. Returns (model, GMM, alignment, log records, transform
    [lda_dim, C(2·lda_context+1) + 1] of the spliced cepstra)."""
    utts = sorted(u for u in tri_res.states if u in ceps)
    pdfs = tri_res.pdfs()
    spliced = np.concatenate([splice(ceps[u], cfg.lda_context) for u in utts])
    cls = np.concatenate([pdfs[u] for u in utts])
    sil = np.isin(tri.pdf_to_phone, [tri.phone_id[p] for p in tri.context_independent])
    lda, eig = estimate_lda(spliced, cls, (~sil[cls]).astype(np.float64), cfg.lda_dim)
    del spliced
    log.info("LDA: %d -> %d dims from %d classes; eigenvalues %.2f ... %.2f (kept), %.3f (first "
             "dropped)", lda.shape[1] - 1, cfg.lda_dim, tri.num_pdfs, eig[0], eig[cfg.lda_dim - 1],
             eig[cfg.lda_dim] if len(eig) > cfg.lda_dim else float("nan"))
    feats = transform_features(ceps, lda, cfg.lda_context)
    state = {"transform": lda}

    def mllt(it, gmm, data, rows, pdf):
        if it not in cfg.mllt_iters:
            return {}
        g, count = mllt_stats(gmm, data.x[rows], pdf)
        a, gain = estimate_mllt(g, count)
        state["transform"] = a @ state["transform"]  # affine: the offset column rotates too
        for u in data.feats:
            data.feats[u] = apply_transform(a, data.feats[u])
        data.x = apply_transform(a, data.x)
        transform_gmm(gmm, a)
        log.info("tri2 iter %d: MLLT re-estimated, objective gain %.4f per frame", it, gain)
        return {"mllt_gain": round(gain, 5)}

    c2 = replace(cfg, tri_leaves=cfg.tri2_leaves, tri_gauss=cfg.tri2_gauss, tri_iters=cfg.tri2_iters,
                 tri_realign_iters=cfg.tri2_realign_iters)
    model, gmm, res, hist = train_tri(feats, lang, mono, tri_res, c2, log_path, "tri2", mllt)
    return model, gmm, res, hist, state["transform"]

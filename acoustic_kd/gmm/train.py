"""GMM-HMM training with Viterbi EM: flat-start monophones, then tree-tied triphones (word-internal
or cross-word context: `AlignConfig.context`, recorded in the models).

Each iteration: (re)align on the realignment schedule (the Viterbi E-step over HMM states), accumulate
Gaussian statistics with soft component posteriors inside each frame's pdf, re-estimate (M-step),
then mix up (split Gaussians) towards the target count. The average per-frame log-likelihood of the
aligned data under the model entering the iteration is logged (JSONL) for every iteration.

The data are held by parts (gmm/parallel.py: one in this process, or `nj` worker jobs): alignment,
Gaussian, tree and LDA/MLLT statistics are computed per part and summed here, then the model is
re-estimated once, as Kaldi's gmm-acc-stats-ali / gmm-sum-accs / gmm-est (and acc-tree-stats /
sum-tree-stats / build-tree, est-lda, est-mllt) do over its `nj` jobs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

import numpy as np

from ..config_types import check_fields
from ..errors import ConfigError, DataError
from ..hmm import CONTEXTS, WORD_INTERNAL, HmmModel
from ..lang.langdir import Lang
from ..utils import get_logger
from .align import AlignResult
from .diag_gmm import MIN_OCC, DiagGmm, single_thread
from .graph import retarget_graph  # noqa: F401 - part of this module's interface (sat.py)
from .lda_mllt import estimate_mllt, lda_from_stats, transform_gmm
from .parallel import Parts, global_moments, merge_context_stats
from .tree import TreeConfig, build_trees

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
    context: str = field(default=WORD_INTERNAL, metadata={
        "help": "phonetic context of the triphone trees: 'word-internal' (a word edge sees the "
                "boundary '#') or 'cross-word' (Kaldi's: the neighbouring words' phones, and the "
                "silence phone next to a pause; mkgraph then builds H∘C∘L∘G). The models record it "
                "(final.hmm.json), so mkgraph, decode and export follow them", "choices": CONTEXTS})
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


def check_context(hmm: HmmModel, cfg: AlignConfig, where) -> None:
    """Refuse to build a pass on a model (at `where`) trained with another context convention."""
    if hmm.context != cfg.context:
        raise ConfigError(f"{where} was trained with align.context {hmm.context} (now "
                          f"{cfg.context}); train every pass with one context: run `acoustic-kd "
                          "align` without --pass (it retrains from the monophones)")


def _log_iter(log_path: Path | None, rec: dict) -> None:
    log.info("%s iter %d: avg loglike/frame %.4f, %d Gaussians%s", rec["stage"], rec["iter"],
             rec["avg_loglike"], rec["num_gauss"], " (realigned)" if rec["realigned"] else "")
    if log_path:
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")


def realign(parts: Parts, hmm: HmmModel, gmm: DiagGmm, cfg: AlignConfig, label: str | None = None
            ) -> tuple[int, int, int]:
    """Every part realigns its selection; the transitions are re-estimated from the summed counts
    -> the selection's (utterances, aligned, failed)."""
    a = parts.sum("align", hmm, gmm, cfg, label)
    hmm.update_transitions(a.stay, a.fwd)
    return a.counts


def viterbi_em(hmm: HmmModel, gmm: DiagGmm, parts: Parts, cfg: AlignConfig, iters: int,
               realign_iters: list[int], target_gauss: int, stage: str,
               log_path: Path | None = None, first_iter: int = 0, hook=None) -> list[dict]:
    """Run `iters` Viterbi-EM iterations on the parts' selections from their state alignments;
    they end with the final model's alignment. Returns the per-iteration log records. Iterations
    are numbered from `first_iter` (also for `realign_iters`). `hook(iter, gmm)`, when given, runs
    on each iteration's alignment before the statistics are gathered and may change the parts'
    features and the GMM in place (LDA+MLLT, SAT); it returns fields for the iteration's record."""
    with single_thread():
        return _viterbi_em(hmm, gmm, parts, cfg, iters, realign_iters, target_gauss, stage,
                           log_path, first_iter, hook)


def _viterbi_em(hmm, gmm, parts, cfg, iters, realign_iters, target_gauss, stage, log_path,
                first_iter, hook):
    floor = cfg.var_floor * global_moments(parts)[1]
    counts = parts.sum("counts")
    start_gauss = gmm.num_gauss
    mixup_until = max(1, int(iters * 0.75))
    history = []
    for it in range(iters):
        t0 = time.time()
        realigned = it + first_iter in realign_iters
        if realigned:
            counts = realign(parts, hmm, gmm, cfg)
        extra = hook(it + first_iter, gmm) if hook else None
        stats = parts.sum("accumulate", gmm)
        rec = {"stage": stage, "iter": it + first_iter, "utts": counts[0],
               "avg_loglike": stats.avg_loglike, "frames": stats.frames,
               "num_gauss": gmm.num_gauss, "realigned": realigned, "aligned_utts": counts[1],
               "failed_utts": counts[2]}
        occ = stats.pdf_frames
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
                gmm.update(parts.sum("accumulate", gmm), floor)
        rec.update(extra or {})
        rec["time_s"] = round(time.time() - t0, 3)
        _log_iter(log_path, rec)
        history.append(rec)
    realign(parts, hmm, gmm, cfg, f"{stage} final align")
    return history


def mono_pass(parts: Parts, lang: Lang, cfg: AlignConfig, log_path: Path | None = None
              ) -> tuple[HmmModel, DiagGmm, list[dict]]:
    """Flat-start monophone training on the parts (holding GMM features); they end with its
    final alignment. Returns (model, GMMs, per-iteration log records)."""
    hmm = HmmModel.monophone(lang.phones, lang.topo, lang.silence_phone, cfg.context)
    parts.all("compile", hmm)
    frames = parts.merged("flat_start", cfg)
    if not frames:
        raise DataError(None, "no utterance could be flat-start aligned",
                        "check transcripts, lexicon and feature lengths")
    _, aligned, failed = parts.sum("counts")
    log.info("monophones: %d phones, %d pdfs, %d utterances (%d failed flat start)",
             len(lang.phones) - 1, hmm.num_pdfs, aligned, failed)
    hist: list[dict] = []
    first = 0
    if 0 < cfg.mono_subset < len(frames):
        # flat start is most accurate on short utterances: train on those, then align everything
        parts.all("select", sorted(frames, key=lambda u: (frames[u], u))[:cfg.mono_subset])
        gmm = _flat_gmm(parts, hmm, cfg)
        first = cfg.mono_iters // 2
        hist = viterbi_em(hmm, gmm, parts, cfg, first, cfg.mono_realign_iters,
                          cfg.mono_gauss // 2, "mono", log_path)
        parts.all("select", None)
        parts.all("align", hmm, gmm, cfg)
    else:
        gmm = _flat_gmm(parts, hmm, cfg)
    more = viterbi_em(hmm, gmm, parts, cfg, cfg.mono_iters - first, cfg.mono_realign_iters,
                      cfg.mono_gauss, "mono", log_path, first)
    return hmm, gmm, hist + more


def _flat_gmm(parts: Parts, hmm: HmmModel, cfg: AlignConfig) -> DiagGmm:
    """One Gaussian per pdf from the frames of the parts' state alignments (the flat start)."""
    n, s1, s2 = parts.sum("pdf_stats", hmm.num_pdfs)
    mean, var = global_moments(parts)
    return DiagGmm.from_stats(n, s1, s2, cfg.var_floor * var, mean, var)


def init_tri(parts: Parts, mono: HmmModel, cfg: AlignConfig) -> tuple[HmmModel, DiagGmm]:
    """A new tree (`cfg.tri_leaves`) from the summed context statistics of the parts' state
    alignments (their graphs' contexts), one Gaussian per leaf; the parts' graphs re-targeted to
    it -> (model, GMM)."""
    parts.all("select", None)
    keys, n, s1, s2 = merge_context_stats(parts.all("tree_stats", len(mono.phones)))
    mean, var = global_moments(parts)
    floor = cfg.var_floor * var
    tri, leaf_n, leaf_s = build_trees(mono, keys, n, s1, s2, floor,
                                      TreeConfig(cfg.tri_leaves, cfg.tree_min_count, cfg.tree_min_gain))
    gmm = DiagGmm.from_stats(leaf_n, leaf_s[:, 0], leaf_s[:, 1], floor, mean, var)
    log.info("triphones: %d tied states from %d seen contexts", tri.num_pdfs, len(keys))
    parts.all("retarget", tri)
    return tri, gmm


def tri_pass(parts: Parts, mono: HmmModel, cfg: AlignConfig, log_path: Path | None = None,
             stage: str = "tri", hook=None) -> tuple[HmmModel, DiagGmm, list[dict]]:
    """Tree-tied triphones from the parts' state alignment of an earlier stage
    (monophones, or the Δ triphones for the LDA+MLLT stage); `mono` gives the phone set and
    topology. `hook`: see `viterbi_em`. -> (model, GMM, log records)."""
    tri, gmm = init_tri(parts, mono, cfg)
    hist = viterbi_em(tri, gmm, parts, cfg, cfg.tri_iters, cfg.tri_realign_iters, cfg.tri_gauss,
                      stage, log_path, hook=hook)
    return tri, gmm, hist


def train_mono(feats: Mapping[str, np.ndarray], texts: Mapping[str, str], lang: Lang,
               cfg: AlignConfig, log_path: Path | None = None
               ) -> tuple[HmmModel, DiagGmm, AlignResult, list[dict]]:
    """`mono_pass` on GMM features (utt -> [T, D]) in this process -> (model, GMMs, final
    alignment incl. failures, per-iteration log records)."""
    with Parts.of(feats, texts, lang) as parts:
        hmm, gmm, hist = mono_pass(parts, lang, cfg, log_path)
        return hmm, gmm, parts.local().res, hist


def train_tri(feats: Mapping[str, np.ndarray], lang: Lang, mono: HmmModel, mono_res: AlignResult,
              cfg: AlignConfig, log_path: Path | None = None, stage: str = "tri"
              ) -> tuple[HmmModel, DiagGmm, AlignResult, list[dict]]:
    """`tri_pass` on `feats` in this process from the state alignment `mono_res` of an earlier
    stage -> (model, GMM, final alignment, log records)."""
    with Parts.of(feats, {}, lang, res=mono_res) as parts:
        tri, gmm, hist = tri_pass(parts, mono, cfg, log_path, stage)
        return tri, gmm, parts.local().res, hist


def lda_mllt_pass(parts: Parts, mono: HmmModel, tri: HmmModel, cfg: AlignConfig,
                  log_path: Path | None = None
                  ) -> tuple[HmmModel, DiagGmm, list[dict], np.ndarray]:
    """The LDA+MLLT stage (tri2) from the Δ-triphone stage's alignment (model `tri`) held by the
    parts, whose features must be the normalised cepstra without deltas.

    LDA classes are `tri`'s tied states, silence frames left out; a new tree is grown on the LDA
    features and MLLT re-estimated on the `cfg.mllt_iters` iterations. Returns (model, GMM, log
    records, transform [lda_dim, C(2·lda_context+1) + 1] of the spliced cepstra)."""
    sil = np.isin(tri.pdf_to_phone, [tri.phone_id[p] for p in tri.context_independent])
    lda, eig = lda_from_stats(parts.sum("lda_stats", sil, cfg.lda_context, tri.num_pdfs),
                              cfg.lda_dim)
    log.info("LDA: %d -> %d dims from %d classes; eigenvalues %.2f ... %.2f (kept), %.3f (first "
             "dropped)", lda.shape[1] - 1, cfg.lda_dim, tri.num_pdfs, eig[0], eig[cfg.lda_dim - 1],
             eig[cfg.lda_dim] if len(eig) > cfg.lda_dim else float("nan"))
    parts.all("splice_transform", lda, cfg.lda_context)
    state = {"transform": lda}

    def mllt(it, gmm):
        if it not in cfg.mllt_iters:
            return {}
        a, gain = estimate_mllt(*parts.sum("mllt_stats", gmm))
        state["transform"] = a @ state["transform"]  # affine: the offset column rotates too
        parts.all("transform", a)
        transform_gmm(gmm, a)
        log.info("tri2 iter %d: MLLT re-estimated, objective gain %.4f per frame", it, gain)
        return {"mllt_gain": round(gain, 5)}

    c2 = replace(cfg, tri_leaves=cfg.tri2_leaves, tri_gauss=cfg.tri2_gauss, tri_iters=cfg.tri2_iters,
                 tri_realign_iters=cfg.tri2_realign_iters)
    model, gmm, hist = tri_pass(parts, mono, c2, log_path, "tri2", mllt)
    return model, gmm, hist, state["transform"]

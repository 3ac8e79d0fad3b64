"""Speaker-adaptive training (SAT) on the LDA+MLLT features: the tri3 stage (the method of Kaldi's
`train_sat.sh`, aligning other sets as `align_fmllr.sh` does).

Training: per-speaker fMLLR transforms (gmm/fmllr.py) are first estimated with the tri2 model on
tri2's final alignment; a new tree is grown and the model trained, by Viterbi EM, on the
transformed features; on the `fmllr_iters` iterations the transforms are re-estimated with the
current model and alignment. Silence frames get weight `fmllr_silence_weight` (0: left out) in the
estimation; every frame is transformed. Another set is aligned in two passes: a speaker-independent
alignment with tri2 (whose graph-state path, re-targeted to tri3's pdfs, gives each frame a tri3
pdf), fMLLR per speaker from it with the tri3 model, then the tri3 alignment of the transformed
features.

Log-likelihoods of transformed features are comparable with tri2's only with the Jacobian: each
tri3 log record holds `avg_logdet`, the frame average of log|det A| of the frames' speakers, to be
added to its `avg_loglike`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Mapping

import numpy as np

from ..hmm import HmmModel
from ..lang.langdir import Lang
from ..utils import atomic_write_json, get_logger, read_table
from .align import AlignResult, align, compile_graphs
from .diag_gmm import DiagGmm
from .fmllr import apply_fmllr, estimate_speakers, identity, logdet, save_transforms
from .train import AlignConfig, init_tri, retarget_graph, viterbi_em

log = get_logger(__name__)

FMLLR_FILE = "trans.npz"   # in a SAT stage's ali_<set>/: the set's fMLLR transform per speaker


def read_utt2spk(data_dir) -> dict[str, str]:
    """utt -> speaker from a data dir's utt2spk ({} when it has none: each utterance its own)."""
    path = Path(data_dir) / "utt2spk"
    return {u: s for u, s, _ in read_table(path)} if path.exists() else {}


def speaker_of(utt2spk: Mapping[str, str], utt: str) -> str:
    return utt2spk.get(utt, utt)


def transform_set(feats: Mapping[str, np.ndarray], utt2spk: Mapping[str, str],
                  trans: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each utterance through its speaker's transform (identity for a speaker without one)."""
    out = {}
    for u, x in feats.items():
        w = trans.get(speaker_of(utt2spk, u))
        out[u] = apply_fmllr(w, x) if w is not None else np.asarray(x, dtype=np.float32)
    return out


def avg_logdet(frames: Mapping[str, int], utt2spk: Mapping[str, str],
               trans: Mapping[str, np.ndarray]) -> float:
    """Frame-weighted mean log|det A| over utterances with `frames[u]` frames each."""
    ld = {s: logdet(w) for s, w in trans.items()}
    tot = sum(frames.values())
    return sum(n * ld.get(speaker_of(utt2spk, u), 0.0) for u, n in frames.items()) / max(tot, 1)


def _frame_weights(hmm: HmmModel, pdf: np.ndarray, silence_weight: float) -> np.ndarray:
    ci = [hmm.phone_id[p] for p in hmm.context_independent]
    sil = np.isin(hmm.pdf_to_phone, ci)
    return np.where(sil[pdf], silence_weight, 1.0)


def estimate_set(gmm: DiagGmm, hmm: HmmModel, feats: Mapping[str, np.ndarray],
                 pdfs: Mapping[str, np.ndarray], utt2spk: Mapping[str, str], cfg: AlignConfig,
                 init: Mapping[str, np.ndarray] | None = None, label: str = "fMLLR"
                 ) -> tuple[dict[str, np.ndarray], dict]:
    """A transform for every speaker of `feats` from the frames aligned in `pdfs` (utt -> pdf of
    `hmm`/`gmm` per frame) -> ({speaker: W}, report)."""
    utts = sorted(u for u in pdfs if u in feats)
    speakers = sorted({speaker_of(utt2spk, u) for u in feats})
    index = {s: i for i, s in enumerate(speakers)}
    dim = next(iter(feats.values())).shape[1] if feats else 0
    if not utts:
        return {s: identity(dim) for s in speakers}, {"speakers": len(speakers),
                                                       "identity": len(speakers)}
    x = np.concatenate([feats[u] for u in utts])
    pdf = np.concatenate([pdfs[u] for u in utts]).astype(np.int64)
    spk = np.concatenate([np.full(len(pdfs[u]), index[speaker_of(utt2spk, u)]) for u in utts])
    return estimate_speakers(gmm, x, pdf, spk, speakers, dict(init or {}),
                             _frame_weights(hmm, pdf, cfg.fmllr_silence_weight), cfg.fmllr_em_iters,
                             cfg.fmllr_passes, cfg.fmllr_min_frames, label)


def sat_config(cfg: AlignConfig) -> AlignConfig:
    """`cfg` with the triphone-training fields set to the tri3 values (tree size and Gaussians
    default to tri2's)."""
    return replace(cfg, tri_leaves=cfg.tri3_leaves or cfg.tri2_leaves,
                   tri_gauss=cfg.tri3_gauss or cfg.tri2_gauss, tri_iters=cfg.tri3_iters,
                   tri_realign_iters=cfg.tri3_realign_iters)


def train_sat(si_feats: dict[str, np.ndarray], utt2spk: Mapping[str, str], lang: Lang,
              mono: HmmModel, si_hmm: HmmModel, si_gmm: DiagGmm, si_res: AlignResult,
              cfg: AlignConfig, log_path: Path | None = None
              ) -> tuple[HmmModel, DiagGmm, AlignResult, list[dict], dict[str, np.ndarray], list[dict]]:
    """The tri3 stage from tri2's model and final state alignment `si_res` on its features
    `si_feats` -> (model, GMM, final alignment, log records, final transforms, one fMLLR report
    per estimate)."""
    trans, first = estimate_set(si_gmm, si_hmm, si_feats, si_res.pdfs(), utt2spk, cfg,
                                label="tri3 fMLLR from tri2")
    reports = [{"iter": "init", **first}]
    c3 = sat_config(cfg)
    hmm, gmm, data, res = init_tri(transform_set(si_feats, utt2spk, trans), mono, si_res, c3)
    names = sorted({speaker_of(utt2spk, u) for u in si_feats})
    index = {s: i for i, s in enumerate(names)}
    # data.x's row layout: each row's speaker and untransformed frame
    spk = np.concatenate([np.full(len(si_feats[u]), index[speaker_of(utt2spk, u)]) for u in data.utts])
    base = np.concatenate([si_feats[u] for u in data.utts])
    state = {"trans": trans}

    def hook(it, gmm, data, rows, pdf):
        rec: dict = {}
        if it in cfg.fmllr_iters:
            state["trans"], rep = estimate_speakers(
                gmm, base[rows], pdf.astype(np.int64), spk[rows], names, state["trans"],
                _frame_weights(hmm, pdf, cfg.fmllr_silence_weight), cfg.fmllr_em_iters,
                cfg.fmllr_passes, cfg.fmllr_min_frames, f"tri3 iter {it} fMLLR")
            reports.append({"iter": it, **rep})
            data.feats.update(transform_set(si_feats, utt2spk, state["trans"]))
            data.x = np.concatenate([data.feats[u] for u in data.utts])
            rec.update(fmllr_gain=rep["aux_gain"], fmllr_loglike_gain=rep["loglike_gain"],
                       fmllr_identity=rep["identity"])
        ld = np.array([logdet(state["trans"][s]) for s in names])
        rec["avg_logdet"] = round(float(ld[spk[rows]].mean()), 5)
        return rec

    res, hist = viterbi_em(hmm, gmm, data, res, c3, c3.tri_iters, c3.tri_realign_iters,
                           c3.tri_gauss, "tri3", log_path, hook=hook)
    return hmm, gmm, res, hist, state["trans"], reports


def align_sat(si_hmm: HmmModel, si_gmm: DiagGmm, hmm: HmmModel, gmm: DiagGmm, lang: Lang,
              si_feats: Mapping[str, np.ndarray], texts: Mapping[str, str],
              utt2spk: Mapping[str, str], cfg: AlignConfig, label: str = "tri3"
              ) -> tuple[dict[str, np.ndarray], dict, dict[str, np.ndarray]]:
    """Speaker-independent first pass with (si_hmm, si_gmm), fMLLR per speaker from it with the
    SAT model -> (transforms, report, transformed features for the SAT alignment)."""
    graphs, _ = compile_graphs(si_hmm, lang, texts, sorted(u for u in si_feats if u in texts))
    res = align(si_hmm, si_gmm, si_feats, graphs, cfg.beam, cfg.retry_beam, cfg.acoustic_scale,
                cfg.batch_size, progress=f"{label} speaker-independent pass",
                boost_silence=cfg.boost_silence, self_loop_scale=cfg.self_loop_scale)
    pdfs = {u: retarget_graph(hmm, graphs[u]).pdf[s] for u, s in res.states.items()}
    trans, rep = estimate_set(gmm, hmm, si_feats, pdfs, utt2spk, cfg, label=f"{label} fMLLR")
    rep["si_aligned"], rep["si_failed"] = len(res.states), len(res.failed)
    rep["si_avg_loglike"] = res.avg_loglike
    return trans, rep, transform_set(si_feats, utt2spk, trans)


def save_sat_alignment(ali_dir: Path, res: AlignResult, trans: Mapping[str, np.ndarray],
                       utt2spk: Mapping[str, str], report) -> dict:
    """Keep a SAT alignment's transforms beside it (FMLLR_FILE); its summary.json gains the fMLLR
    report, the mean log|det A| per aligned frame and the log-likelihood with it (comparable with
    a speaker-independent stage's) -> the summary."""
    ali_dir = Path(ali_dir)
    save_transforms(ali_dir / FMLLR_FILE, dict(trans), {"fmllr": report})
    summary = json.loads((ali_dir / "summary.json").read_text())
    ld = avg_logdet({u: len(p) for u, p in res.states.items()}, utt2spk, trans)
    summary.update(avg_logdet=round(ld, 5), avg_loglike_with_logdet=res.avg_loglike + ld, fmllr=report)
    atomic_write_json(ali_dir / "summary.json", summary)
    return summary

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
from ..utils import atomic_write_json, get_logger
from .diag_gmm import DiagGmm
from .fmllr import (avg_logdet, logdet, read_utt2spk, save_transforms,  # noqa: F401 (interface)
                    speaker_of, speaker_report, transform_set)
from .parallel import Parts
from .part import SetAlignment
from .train import AlignConfig, init_tri, viterbi_em

log = get_logger(__name__)

FMLLR_FILE = "trans.npz"   # in a SAT stage's ali_<set>/: the set's fMLLR transform per speaker


def sat_config(cfg: AlignConfig) -> AlignConfig:
    """`cfg` with the triphone-training fields set to the tri3 values (tree size and Gaussians
    default to tri2's)."""
    return replace(cfg, tri_leaves=cfg.tri3_leaves or cfg.tri2_leaves,
                   tri_gauss=cfg.tri3_gauss or cfg.tri2_gauss, tri_iters=cfg.tri3_iters,
                   tri_realign_iters=cfg.tri3_realign_iters)


def train_sat(parts: Parts, mono: HmmModel, si_hmm: HmmModel, si_gmm: DiagGmm, cfg: AlignConfig,
              log_path: Path | None = None
              ) -> tuple[HmmModel, DiagGmm, list[dict], dict[str, np.ndarray], list[dict]]:
    """The tri3 stage from tri2's model and final state alignment held by the parts, whose features
    must be tri2's -> (model, GMM, log records, final transforms, one fMLLR report per estimate).
    Each part estimates the transforms of its own speakers."""
    per = parts.merged("fmllr", si_gmm, si_hmm, cfg)
    reports = [{"iter": "init", **speaker_report(per, cfg.fmllr_min_frames,
                                                 "tri3 fMLLR from tri2")}]
    c3 = sat_config(cfg)
    hmm, gmm = init_tri(parts, mono, c3)
    state = {"trans": {s: r.w for s, r in per.items()}}

    def hook(it, gmm):
        rec: dict = {}
        if it in cfg.fmllr_iters:
            per = parts.merged("fmllr", gmm, hmm, cfg)
            state["trans"] = {s: r.w for s, r in per.items()}
            rep = speaker_report(per, cfg.fmllr_min_frames, f"tri3 iter {it} fMLLR")
            reports.append({"iter": it, **rep})
            rec.update(fmllr_gain=rep["aux_gain"], fmllr_loglike_gain=rep["loglike_gain"],
                       fmllr_identity=rep["identity"])
        frames = parts.merged("speaker_frames")
        tot = sum(frames.values())
        ld = sum(frames[s] * logdet(state["trans"][s]) for s in sorted(frames)) / max(tot, 1)
        rec["avg_logdet"] = round(float(ld), 5)
        return rec

    hist = viterbi_em(hmm, gmm, parts, c3, c3.tri_iters, c3.tri_realign_iters, c3.tri_gauss,
                      "tri3", log_path, hook=hook)
    return hmm, gmm, hist, state["trans"], reports


def align_sat(parts: Parts, si_hmm: HmmModel, si_gmm: DiagGmm, hmm: HmmModel, gmm: DiagGmm,
              cfg: AlignConfig, label: str = "tri3") -> tuple[dict[str, np.ndarray], dict]:
    """Align the parts (holding speaker-independent features) with a SAT model: a first pass with
    (si_hmm, si_gmm), fMLLR per speaker from it with the SAT model, then the SAT alignment of the
    transformed features (Part.align_sat) -> (transforms, report)."""
    out = parts.all("align_sat", si_hmm, si_gmm, hmm, gmm, cfg, label)
    per = {s: r for p, _ in out for s, r in p.items()}
    first = sum((st for _, st in out[1:]), out[0][1])
    rep = speaker_report(per, cfg.fmllr_min_frames, f"{label} fMLLR")
    rep["si_aligned"], rep["si_failed"] = first.counts[1], first.counts[2]
    rep["si_avg_loglike"] = first.loglike / max(first.frames, 1)
    return {s: r.w for s, r in per.items()}, rep


def save_sat_alignment(ali_dir: Path, res: SetAlignment, trans: Mapping[str, np.ndarray],
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

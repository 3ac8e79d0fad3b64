"""The align stage on disk: train GMM-HMM passes on a data dir, align sets, write exp dirs.

Stages, each trained from the final alignment of the one before: `exp/mono` (flat-start
monophones), `exp/tri` (tree-tied triphones on cepstra + deltas; word-internal or cross-word
context, as `align.context` says) and, when asked for (`--through tri2`), `exp/tri2` (triphones
on LDA+MLLT-transformed spliced cepstra, a new tree) and (`--through tri3`) `exp/tri3`
(speaker-adaptive training: tri2's features through per-speaker fMLLR transforms, a new tree;
gmm/sat.py). Layout of each:

- `final.hmm.json`  HmmModel (phones, context convention, topology, trees, per-pdf transitions)
- `final.gmm.npz`   DiagGmm (means, vars, log_weights, comp_pdf, num_pdfs)
- `final.mat.npy`   (tri2, tri3) the LDA+MLLT transform [dim, C(2k+1) + 1] of the spliced cepstra
- `log.jsonl`       one record per EM iteration (avg log-likelihood per frame, Gaussians, ...)
- `summary.json`    pdfs, Gaussians, failed counts, alignment speed, final log-likelihood
- `info.json`       resolved config, command line, versions, git revision
- `ali_<set>/`      alignment dirs (ali.py format: ali.scp/ark, num_pdfs, priors.txt, failed.txt)
                    plus `words.ctm` (`utt 1 start dur word`) — `<set>` is the data dir's name;
                    for tri3 also `trans.npz`, the set's fMLLR transform per speaker (fmllr.py)
- `final.states.npz` the final graph-state paths the next pass starts from, so a run killed
                    between passes resumes to the same result
- `.done`           marker with the stage signature (acoustic_kd.stage): a re-run skips a stage
                    whose config, inputs and code are unchanged, re-runs it from scratch otherwise
                    (and every stage after it); each `ali_<set>/` of another data set has its own
                    `.done` the same way

With `nj` > 1 (or the Slurm backend) the training set and each other set are split into parts of
whole speakers held by worker jobs (gmm/parallel.py), logging to `exp/log/align_<set>.J.log`; the
files above are written here from the parts' merged results, as with one job. The number of jobs
is not part of a stage's signature: the results are the same up to float summation order.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Mapping

import numpy as np

from ..ali import check_lengths, write_alignments
from ..errors import ConfigError, DataError
from ..hmm import HmmModel
from ..lang.langdir import Lang, load_lang
from ..stage import Stage, feature_inputs
from ..utils import (atomic_path, atomic_write_json, atomic_write_text, c_sorted, get_logger, is_done,
                     write_exp_info)
from .align import AlignResult
from .diag_gmm import DiagGmm
from .feats import load_set
from .fmllr import load_transforms
from .lda_mllt import transform_features
from .parallel import Parts, open_parts
from .part import SetAlignment
from .sat import FMLLR_FILE, align_sat, read_utt2spk, save_sat_alignment, train_sat, transform_set
from .train import AlignConfig, check_context, lda_mllt_pass, mono_pass, tri_pass

log = get_logger(__name__)


# AlignConfig fields that define the GMM features: a finished pass's model only fits features
# made with the values it was trained with (stored in its info.json)
FRONT_END = ("num_ceps", "norm_vars", "cmvn", "delta_order", "delta_window")


def front_end(stage_dir=None, cfg: AlignConfig | None = None) -> dict:
    """The GMM feature options (`load_set` keyword arguments) a pass was trained with: from its
    info.json when `stage_dir` has one, else from `cfg`; fields an older info.json lacks take
    the AlignConfig defaults."""
    info = Path(stage_dir) / "info.json" if stage_dir is not None else None
    if info is not None and info.exists():
        trained = json.loads(info.read_text()).get("config", {}).get("align", {})
        defaults = AlignConfig()
        return {k: trained.get(k, getattr(defaults, k)) for k in FRONT_END}
    return {k: getattr(cfg or AlignConfig(), k) for k in FRONT_END}


def write_result(res: AlignResult | SetAlignment, hmm: HmmModel, num_frames: Mapping[str, int],
                 ali_dir, seconds: float | None = None) -> dict:
    """Write an alignment (checked against the utterances' feature frames) as an alignment dir;
    returns (and logs) its summary."""
    ali_dir = Path(ali_dir)
    ali = res if isinstance(res, SetAlignment) else SetAlignment.of(res)
    pdfs = ali.pdfs
    check_lengths(pdfs, {u: num_frames[u] for u in pdfs}, where=str(ali_dir))
    write_alignments(ali_dir, pdfs, hmm.num_pdfs, failed=ali.failed)
    atomic_write_text(ali_dir / "words.ctm", "".join(ali.ctm[u] for u in c_sorted(pdfs)))
    audio_s = ali.frames * 0.01
    summary = {"aligned": len(pdfs), "failed": len(ali.failed), "frames": ali.frames,
               "avg_loglike": ali.avg_loglike,
               "failed_reasons": _reason_counts(ali.failed)}
    if seconds:
        summary["align_seconds"] = round(seconds, 3)
        summary["x_real_time"] = round(audio_s / max(seconds, 1e-9), 1)
    atomic_write_json(ali_dir / "summary.json", summary)
    log.info("%s: %d aligned, %d failed %s, avg loglike %.3f", ali_dir, len(pdfs), len(ali.failed),
             summary["failed_reasons"], ali.avg_loglike)
    return summary


def _reason_counts(failed: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in failed.values():
        k = r.split("(")[0].split(":")[0]
        out[k] = out.get(k, 0) + 1
    return out


STATES_FILE = "final.states.npz"   # a pass's final graph-state paths: the next pass starts from them


def _save_states(path: Path, res: AlignResult | SetAlignment) -> None:
    """Keep the graph-state paths of `res`, so a resumed tri pass starts exactly where a run that
    was never interrupted would (realigning with the final model gives a slightly different start)."""
    utts = sorted(res.states)
    lens = np.array([len(res.states[u]) for u in utts], dtype=np.int64)
    flat = np.concatenate([res.states[u] for u in utts]) if utts else np.zeros(0)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, utts=np.array(utts, dtype=str), lens=lens, states=flat.astype(np.int32),
                     loglike=np.float64(res.loglike), frames=np.int64(res.frames),
                     failed_utts=np.array(sorted(res.failed), dtype=str),
                     failed_why=np.array([res.failed[u] for u in sorted(res.failed)], dtype=str))


_MODEL_FILES = ("final.hmm.json", "final.gmm.npz")


def pass_stage(d: Path, cfg: AlignConfig, data_dir: Path, lang_dir, after: Path | None = None) -> Stage:
    """The contract of one GMM pass's dir (mono, or a pass built on `after` = the dir of the
    pass before it)."""
    inputs = [*feature_inputs(data_dir, "text", "utt2spk"), Path(lang_dir)]
    if after is not None:
        inputs += [after / n for n in (*_MODEL_FILES, STATES_FILE)]
        if d.name in SI_PASS:
            inputs.append(after / TRANSFORM_FILE)
    return Stage(d.name, d, {"align": vars(cfg)}, inputs=inputs, code=__name__, outputs=[d], marker="")


def ali_stage(d: Path, data_dir: Path, lang_dir, cfg: AlignConfig) -> Stage:
    """The contract of aligning another data set with a finished pass `d`'s model."""
    ali_dir = d / f"ali_{data_dir.name}"
    inputs = [*feature_inputs(data_dir, "text", "utt2spk"), Path(lang_dir), *(d / n for n in _MODEL_FILES)]
    if d.name in SI_PASS:   # the speaker-independent first pass and the features' transform
        inputs += [*(d.parent / SI_PASS[d.name] / n for n in _MODEL_FILES), d / TRANSFORM_FILE]
    return Stage("align", ali_dir, {"align": vars(cfg)}, inputs=inputs, code=__name__,
                 outputs=[ali_dir], marker="")


def _pass_done(d: Path) -> bool:
    return is_done(d) and (d / "final.hmm.json").exists() and (d / "final.gmm.npz").exists()


PASSES = ("mono", "tri", "tri2", "tri3")   # each trains on the alignment of the one before
TRANSFORM_FILE = "final.mat.npy"      # tri2, tri3: the LDA+MLLT transform of the spliced cepstra
SI_PASS = {"tri3": "tri2"}           # speaker-adaptive pass -> its speaker-independent pass


def pass_features(d: Path, data_dir, cfg: AlignConfig | None = None
                   ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The GMM features of a data dir as the (finished or running) pass `d` was trained on:
    cepstra + deltas, for an LDA+MLLT pass the spliced cepstra through its transform, and for a
    SAT pass those through the set's fMLLR transforms (made when the pass aligned the set)."""
    if d.name not in SI_PASS:
        return si_features(d, data_dir, cfg)
    path = d / f"ali_{Path(data_dir).name}" / FMLLR_FILE
    if not path.exists():
        raise DataError(path, "no fMLLR transforms for this data set",
                        f"align it first: acoustic-kd align --through {d.name} --align-sets {data_dir}")
    feats, texts = si_features(d, data_dir, cfg)
    return transform_set(feats, read_utt2spk(data_dir), load_transforms(path)), texts


def si_features(d: Path, data_dir, cfg: AlignConfig | None = None
                ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """`pass_features` without speaker adaptation (a SAT pass's speaker-independent features)."""
    fe = front_end(d, cfg)
    if not (d / TRANSFORM_FILE).exists():
        return load_set(data_dir, **fe)
    ceps, texts = load_set(data_dir, **{**fe, "delta_order": 0})
    return transform_features(ceps, np.load(d / TRANSFORM_FILE), _lda_context(d)), texts


def _check_front_end(prev_dir: Path, cfg: AlignConfig) -> None:
    trained = front_end(prev_dir)
    if trained != front_end(cfg=cfg):
        diff = ", ".join(f"{k}={trained[k]!r} (now {getattr(cfg, k)!r})" for k in FRONT_END
                         if trained[k] != getattr(cfg, k))
        raise ConfigError(f"{prev_dir} was trained on other GMM features: {diff}; run all "
                          "stages with the same options (or --force to retrain from the monophones)")


def _restore(parts: Parts, prev_dir: Path, cfg: AlignConfig) -> None:
    """The parts start from the state alignment a finished pass ended with (kept in its
    STATES_FILE; realigned with its final model for exp dirs from before the paths were kept, or
    when the paths do not fit the parts' graphs), on the features they hold."""
    hmm = HmmModel.load(prev_dir / "final.hmm.json")
    path = prev_dir / STATES_FILE
    ok = path.exists() and set(str(u) for u in np.load(path)["utts"]) <= \
        {u for p in parts.utts for u in p}
    if ok and all(parts.all("restore", hmm, path)):
        return
    parts.all("compile", hmm)
    parts.all("align", hmm, DiagGmm.load(prev_dir / "final.gmm.npz"), cfg,
              f"{prev_dir.name} realign")


def run_align(data_dir, lang_dir, exp_dir, cfg: AlignConfig | None = None, align_sets=(),
              only: str | None = None, force: bool = False, through: str = "tri", nj: int = 1,
              backend: str = "local", slurm_opts: str = "") -> dict:
    """Train the GMM passes mono, tri (Δ triphones) and, with through="tri2" / "tri3", tri2
    (LDA+MLLT) / tri3 (+ SAT), each from the alignment of the one before, on `data_dir`; align it
    and `align_sets`.

    only: None = every pass up to `through`; a name = that pass only (the one before must be
    finished). A pass whose `.done` signature matches (config, data, lang, the pass before it,
    code) is skipped unless `force`; one that differs is redone from scratch, and so is every pass
    after it. The work is split over `nj` jobs of whole speakers (`backend` local or slurm, with
    `slurm_opts`; gmm/parallel.py), the same results as one job up to the order of float sums.
    Returns a summary per pass.
    """
    cfg = cfg or AlignConfig()
    if through not in PASSES or only not in (None, *PASSES):
        raise DataError(None, f"unknown GMM pass {only or through!r}", f"use one of {PASSES}")
    todo = [only] if only else list(PASSES[:PASSES.index(through) + 1])
    exp_dir, data_dir = Path(exp_dir), Path(data_dir)
    lang = load_lang(lang_dir)
    jobs = {"nj": nj, "backend": backend, "slurm_opts": slurm_opts}
    extra = [Path(s) for s in align_sets]
    out: dict = {}
    with contextlib.ExitStack() as stack:
        parts, holds = None, None   # the parts hold the final alignment of pass `holds`
        for name in todo:
            d = exp_dir / name
            prev_dir = exp_dir / PASSES[PASSES.index(name) - 1] if name != "mono" else None
            if prev_dir is not None and not _pass_done(prev_dir):
                raise DataError(prev_dir, f"GMM pass {prev_dir.name} not finished",
                                f"run `acoustic-kd align --pass {prev_dir.name}` first")
            st = pass_stage(d, cfg, data_dir, lang_dir, after=prev_dir)
            if not st.begin(force):
                holds = None
                continue
            if prev_dir is not None:
                _check_front_end(prev_dir, cfg)
            if parts is None:
                parts = stack.enter_context(open_parts(
                    data_dir, lang_dir, front_end(cfg=cfg), log_dir=exp_dir / "log",
                    name=f"align_{data_dir.name}", **jobs))
            d.mkdir(parents=True, exist_ok=True)
            (d / TRANSFORM_FILE).unlink(missing_ok=True)
            write_exp_info(d, {"align": vars(cfg), "data": str(data_dir), "lang": str(lang_dir)})
            (d / "log.jsonl").unlink(missing_ok=True)
            t0 = time.time()
            resume = prev_dir is not None and holds != prev_dir.name
            hmm, gmm, hist, sat = _train(name, d, prev_dir, parts, lang, cfg, resume)
            out[name] = _finish(d, hmm, gmm, hist, parts, data_dir, time.time() - t0, sat)
            st.finish({"num_pdfs": hmm.num_pdfs})
            holds = name
    done = [exp_dir / name for name in todo if _pass_done(exp_dir / name)]
    for s in extra:
        if s.name != data_dir.name:
            _align_extra(s, done, lang_dir, cfg, jobs)
    for d in done:
        out[d.name] = json.loads((d / "summary.json").read_text())
    return out


def _features(parts: Parts, kind: str, d: Path | None = None, cfg: AlignConfig | None = None) -> None:
    """Load the parts' features unless they hold them: "deltas" (cepstra + deltas), "ceps" (no
    deltas) or "lda" (the spliced cepstra through pass `d`'s transform); with the front end stage
    `d` was trained with, else `cfg`'s."""
    fe = front_end(d, cfg)
    if kind == "lda":
        parts.all("load_features", np.load(d / TRANSFORM_FILE), _lda_context(d), None, fe)
    elif parts.kind != (kind, fe):
        parts.all("load_features", None, 0, 0 if kind == "ceps" else None, fe)
    parts.kind = (kind, fe) if kind != "lda" else None


def _lda_context(d: Path) -> int:
    """The splice context pass `d` was trained with (its info.json; else the default)."""
    trained = json.loads((d / "info.json").read_text()).get("config", {}).get("align", {})
    return trained.get("lda_context", AlignConfig().lda_context)


def _train(name: str, d: Path, prev_dir: Path | None, parts: Parts, lang: Lang, cfg: AlignConfig,
           resume: bool) -> tuple:
    """Train pass `name` into `d` on the parts, from the final alignment of `prev_dir` (which the
    parts hold unless `resume`) -> (model, GMM, log records, SAT extras or None)."""
    log_path = d / "log.jsonl"
    if name == "mono":
        _features(parts, "deltas", None, cfg)
        return (*mono_pass(parts, lang, cfg, log_path), None)
    mono = HmmModel.load(d.parent / "mono" / "final.hmm.json")
    prev_hmm = HmmModel.load(prev_dir / "final.hmm.json")
    for where, model in ((d.parent / "mono", mono), (prev_dir, prev_hmm)):
        check_context(model, cfg, where)
    if name == "tri3":   # a SAT pass trains on the features of the one before
        context = _lda_context(prev_dir)
        if context != cfg.lda_context:
            raise ConfigError(f"{prev_dir} spliced +-{context} frames (now lda_context="
                              f"{cfg.lda_context}); train {name} with the options {prev_dir.name} "
                              "was trained with")
        _features(parts, "lda", prev_dir, cfg)
    else:   # mono and tri trained on cepstra + deltas
        _features(parts, "deltas", None, cfg)
    if resume:
        _restore(parts, prev_dir, cfg)
    if name == "tri":
        return (*tri_pass(parts, mono, cfg, log_path), None)
    if name == "tri2":
        _features(parts, "ceps", None, cfg)
        hmm, gmm, hist, mat = lda_mllt_pass(parts, mono, prev_hmm, cfg, log_path)
        parts.kind = None
        _save_npy(d / TRANSFORM_FILE, mat)
        return hmm, gmm, hist, None
    hmm, gmm, hist, trans, reports = train_sat(parts, mono, prev_hmm,
                                               DiagGmm.load(prev_dir / "final.gmm.npz"), cfg, log_path)
    parts.kind = None
    _save_npy(d / TRANSFORM_FILE, np.load(prev_dir / TRANSFORM_FILE))
    return hmm, gmm, hist, {"trans": trans, "fmllr": reports}


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, arr)


def _align_extra(s: Path, dirs: list[Path], lang_dir, cfg: AlignConfig, jobs: dict) -> None:
    """Align the set `s` (e.g. dev, or a speed-perturbed copy of the training set) with the final
    model of each finished stage of `dirs` whose alignment of it is missing or out of date (its own
    stage contract), its parts loaded once (split over jobs as the training set is); each stage's
    summary.json gains the set's summary. A SAT stage first aligns the set with its
    speaker-independent stage and estimates the speakers' fMLLR transforms from that."""
    todo = [(d, st) for d in dirs for st in [ali_stage(d, s, lang_dir, cfg)] if st.begin()]
    if not todo:
        return
    with open_parts(s, lang_dir, front_end(todo[0][0], cfg), log_dir=todo[0][0].parent / "log",
                    name=f"align_{s.name}", **jobs) as parts:
        for d, st in todo:
            t0 = time.time()
            hmm, gmm = HmmModel.load(d / "final.hmm.json"), DiagGmm.load(d / "final.gmm.npz")
            ali_dir, label = d / f"ali_{s.name}", f"{d.name} {s.name}"
            _features(parts, "lda" if (d / TRANSFORM_FILE).exists() else "deltas", d, cfg)
            if d.name not in SI_PASS:
                parts.all("compile", hmm, True)
                parts.all("align", hmm, gmm, cfg, label)
            else:
                si_dir = d.parent / SI_PASS[d.name]
                trans, rep = align_sat(parts, HmmModel.load(si_dir / "final.hmm.json"),
                                       DiagGmm.load(si_dir / "final.gmm.npz"), hmm, gmm, cfg, label)
            ali = parts.gather()
            summary_path = d / "summary.json"
            summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
            summary[ali_dir.name] = write_result(ali, hmm, ali.lengths, ali_dir, time.time() - t0)
            if d.name in SI_PASS:
                summary[ali_dir.name] = save_sat_alignment(ali_dir, ali, trans, read_utt2spk(s), rep)
            atomic_write_json(summary_path, summary)
            st.finish()


def _finish(d: Path, hmm: HmmModel, gmm: DiagGmm, hist: list[dict], parts: Parts, data_dir: Path,
            train_s: float, sat: dict | None = None) -> dict:
    """Save a trained stage: model files, the parts' training-set alignment and summary (the
    caller's stage contract writes the marker; other sets are aligned afterwards by `_align_extra`)."""
    hmm.save(d / "final.hmm.json")
    gmm.save(d / "final.gmm.npz")
    ali = parts.gather()
    _save_states(d / STATES_FILE, ali)
    summary = {"num_pdfs": hmm.num_pdfs, "num_gauss": gmm.num_gauss, "train_seconds": round(train_s, 1),
               "loglike_per_iter": [round(h["avg_loglike"], 4) for h in hist]}
    if parts.nj > 1:
        summary["jobs"] = parts.nj
    ali_dir = d / f"ali_{data_dir.name}"
    summary[ali_dir.name] = write_result(ali, hmm, ali.lengths, ali_dir)
    if sat is not None:
        summary["loglike_with_logdet_per_iter"] = [round(h["avg_loglike"] + h["avg_logdet"], 4)
                                                   for h in hist]
        summary[ali_dir.name] = save_sat_alignment(ali_dir, ali, sat["trans"],
                                                    read_utt2spk(data_dir), sat["fmllr"])
    atomic_write_json(d / "summary.json", summary)
    return summary

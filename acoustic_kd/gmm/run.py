"""The align stage on disk: train GMM-HMM passes on a data dir, align sets, write exp dirs.

Passes, each trained from the final alignment of the one before: `exp/mono` (flat-start
monophones), `exp/tri` (tree-tied triphones on cepstra + deltas) and, when asked for
(`--through tri2`), `exp/tri2` (triphones on LDA+MLLT-transformed spliced cepstra, a new tree)
and (`--through tri3`) `exp/tri3` (speaker-adaptive training: tri2's features through per-speaker
fMLLR transforms, a new tree; gmm/sat.py). Layout of each:

- `final.hmm.json`  HmmModel (phones, topology, trees, per-pdf transitions)
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
- `.done`           marker with the pass's stage signature (acoustic_kd.stage): a re-run skips a
                    pass whose config, inputs and code are unchanged, re-runs it from scratch
                    otherwise (and every pass after it); each `ali_<set>/` of another data set has
                    its own `.done` the same way
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..ali import check_lengths, write_alignments
from ..errors import ConfigError, DataError
from ..hmm import HmmModel
from ..lang.langdir import Lang, load_lang
from ..stage import Stage, feature_inputs
from ..utils import (atomic_path, atomic_write_json, atomic_write_text, c_sorted, get_logger, is_done,
                     read_table, write_exp_info)
from .align import AlignResult, align, compile_graphs
from .diag_gmm import DiagGmm
from .feats import gmm_features
from .fmllr import load_transforms
from .lda_mllt import transform_features
from .sat import (FMLLR_FILE, align_sat, read_utt2spk, save_sat_alignment, train_sat,
                  transform_set)
from .train import AlignConfig, train_lda_mllt, train_mono, train_tri

log = get_logger(__name__)


# AlignConfig fields that define the GMM features: a finished pass's model only fits features
# made with the values it was trained with (stored in its info.json)
FRONT_END = ("num_ceps", "norm_vars", "cmvn", "delta_order", "delta_window")


def load_set(data_dir, num_ceps: int = 13, norm_vars: bool = False, cmvn: str = "speaker",
             delta_order: int = 2, delta_window: int = 2
             ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """GMM features (utt -> [T, num_ceps * (delta_order + 1)]) and transcripts of a data dir with
    computed fbank features.

    cmvn: "speaker" (per utt2spk speaker) or "utterance" normalisation of the cepstra."""
    from ..features.featureset import FeatureSet

    data_dir = Path(data_dir)
    if cmvn not in ("speaker", "utterance"):
        raise ConfigError(f"unknown GMM cmvn mode {cmvn!r}: use 'speaker' or 'utterance'")
    fs = FeatureSet(data_dir, cmvn="none")  # CMVN is applied to the cepstra
    u2s_path = data_dir / "utt2spk"
    utt2spk = None
    if cmvn == "speaker" and u2s_path.exists():
        utt2spk = {k: v for k, v, _ in read_table(u2s_path)}
    feats = gmm_features(fs, fs.utts, utt2spk, num_ceps, delta_order, norm_vars, delta_window)
    texts = {k: v for k, v, _ in read_table(data_dir / "text", min_fields=1)}
    return feats, texts


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


def align_set(hmm: HmmModel, gmm: DiagGmm, lang: Lang, feats: dict[str, np.ndarray],
              texts: dict[str, str], cfg: AlignConfig, ali_dir, label: str = "align"
              ) -> tuple[AlignResult, dict]:
    """Force-align a set with its transcripts and write `ali_dir` (+ words.ctm, failed.txt);
    returns the result and the written summary."""
    utts = c_sorted(set(feats) | set(texts))
    failed = {u: "no_features" for u in utts if u not in feats}
    graphs, gfail = compile_graphs(hmm, lang, texts, [u for u in utts if u in feats])
    t0 = time.time()
    res = align(hmm, gmm, feats, graphs, cfg.beam, cfg.retry_beam, cfg.acoustic_scale,
                cfg.batch_size, progress=label, boost_silence=cfg.boost_silence,
                self_loop_scale=cfg.self_loop_scale)
    res.failed.update(failed)
    res.failed.update(gfail)
    return res, write_result(res, hmm, feats, ali_dir, time.time() - t0)


def write_result(res: AlignResult, hmm: HmmModel, feats: dict[str, np.ndarray], ali_dir,
                 seconds: float | None = None) -> dict:
    """Write an AlignResult as an alignment dir; returns (and logs) its summary."""
    ali_dir = Path(ali_dir)
    pdfs = res.pdfs()
    check_lengths(pdfs, {u: len(feats[u]) for u in pdfs}, where=str(ali_dir))
    write_alignments(ali_dir, pdfs, hmm.num_pdfs, failed=res.failed)
    ctm = []
    for u in c_sorted(pdfs):
        for w, s, e in res.word_times(u):
            ctm.append(f"{u} 1 {s:.2f} {e - s:.2f} {res.graphs[u].words[w]}\n")
    atomic_write_text(ali_dir / "words.ctm", "".join(ctm))
    audio_s = res.frames * 0.01
    summary = {"aligned": len(pdfs), "failed": len(res.failed), "frames": res.frames,
               "avg_loglike": res.avg_loglike,
               "failed_reasons": _reason_counts(res.failed)}
    if seconds:
        summary["align_seconds"] = round(seconds, 3)
        summary["x_real_time"] = round(audio_s / max(seconds, 1e-9), 1)
    atomic_write_json(ali_dir / "summary.json", summary)
    log.info("%s: %d aligned, %d failed %s, avg loglike %.3f", ali_dir, len(pdfs), len(res.failed),
             summary["failed_reasons"], res.avg_loglike)
    return summary


def _reason_counts(failed: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in failed.values():
        k = r.split("(")[0].split(":")[0]
        out[k] = out.get(k, 0) + 1
    return out


STATES_FILE = "final.states.npz"   # a pass's final graph-state paths: the next pass starts from them


def _save_states(path: Path, res: AlignResult) -> None:
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


def _load_states(path: Path, graphs: dict) -> AlignResult | None:
    """The AlignResult saved by `_save_states` over `graphs`, or None when absent or stale."""
    if not path.exists():
        return None
    z = np.load(path)
    utts = [str(u) for u in z["utts"]]
    if not set(utts) <= set(graphs):
        return None
    parts = np.split(z["states"].astype(np.int64), np.cumsum(z["lens"])[:-1]) if utts else []
    failed = {str(u): str(w) for u, w in zip(z["failed_utts"], z["failed_why"])}
    return AlignResult(graphs=graphs, states=dict(zip(utts, parts)), failed=failed,
                       loglike=float(z["loglike"]), frames=int(z["frames"]))


_MODEL_FILES = ("final.hmm.json", "final.gmm.npz")


def pass_stage(d: Path, cfg: AlignConfig, data_dir: Path, lang_dir, after: Path | None = None) -> Stage:
    """The stage contract of one GMM pass's dir (mono, or a pass built on `after` = the dir of the
    pass before it)."""
    inputs = [*feature_inputs(data_dir, "text", "utt2spk"), Path(lang_dir)]
    if after is not None:
        inputs += [after / n for n in (*_MODEL_FILES, STATES_FILE)]
        if d.name in SI_PASS:
            inputs.append(after / TRANSFORM_FILE)
    return Stage(d.name, d, {"align": vars(cfg)}, inputs=inputs, code=__name__, outputs=[d], marker="")


def ali_stage(d: Path, data_dir: Path, lang_dir, cfg: AlignConfig) -> Stage:
    """The stage contract of aligning another data set with a finished pass `d`'s model."""
    ali_dir = d / f"ali_{data_dir.name}"
    inputs = [*feature_inputs(data_dir, "text", "utt2spk"), Path(lang_dir), *(d / n for n in _MODEL_FILES)]
    if d.name in SI_PASS:   # the speaker-independent first pass and the features' transform
        inputs += [*(d.parent / SI_PASS[d.name] / n for n in _MODEL_FILES), d / TRANSFORM_FILE]
    return Stage("align", ali_dir, {"align": vars(cfg)}, inputs=inputs, code=__name__,
                 outputs=[ali_dir], marker="")


def _pass_done(d: Path) -> bool:
    return is_done(d) and (d / "final.hmm.json").exists() and (d / "final.gmm.npz").exists()


PASSES = ("mono", "tri", "tri2", "tri3")   # the GMM passes; each trains on the alignment of the one before
TRANSFORM_FILE = "final.mat.npy"      # tri2, tri3: the LDA+MLLT transform of the spliced cepstra
SI_PASS = {"tri3": "tri2"}            # speaker-adaptive pass -> its speaker-independent pass


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
    trained = json.loads((d / "info.json").read_text()).get("config", {}).get("align", {})
    context = trained.get("lda_context", AlignConfig().lda_context)
    return transform_features(ceps, np.load(d / TRANSFORM_FILE), context), texts


def _check_front_end(prev_dir: Path, cfg: AlignConfig) -> None:
    trained = front_end(prev_dir)
    if trained != front_end(cfg=cfg):
        diff = ", ".join(f"{k}={trained[k]!r} (now {getattr(cfg, k)!r})" for k in FRONT_END
                         if trained[k] != getattr(cfg, k))
        raise ConfigError(f"{prev_dir} was trained on other GMM features: {diff}; run all "
                          "passes with the same options (or --force to retrain from the monophones)")


def _previous_states(prev_dir: Path, lang: Lang, feats, texts, cfg: AlignConfig) -> AlignResult:
    """The state alignment a finished pass ended with (kept in its STATES_FILE; realigned with
    its final model for exp dirs from before the paths were kept)."""
    hmm = HmmModel.load(prev_dir / "final.hmm.json")
    graphs, gfail = compile_graphs(hmm, lang, texts, [u for u in c_sorted(feats) if u in texts])
    res = _load_states(prev_dir / STATES_FILE, graphs)
    if res is None:
        gmm = DiagGmm.load(prev_dir / "final.gmm.npz")
        res = align(hmm, gmm, feats, graphs, cfg.beam, cfg.retry_beam, cfg.acoustic_scale,
                    cfg.batch_size, progress=f"{prev_dir.name} realign",
                    boost_silence=cfg.boost_silence, self_loop_scale=cfg.self_loop_scale)
    res.failed.update(gfail)
    return res


def run_align(data_dir, lang_dir, exp_dir, cfg: AlignConfig | None = None, align_sets=(),
              only: str | None = None, force: bool = False, through: str = "tri") -> dict:
    """Train the GMM passes mono, tri (Δ triphones) and, with through="tri2" / "tri3", tri2
    (LDA+MLLT) / tri3 (+ SAT), each from the alignment of the one before, on `data_dir`; align it
    and `align_sets`.

    only: None = every pass up to `through`; a name = that pass only (the one before must be
    finished). A pass whose `.done` signature matches (config, data, lang, the pass before it,
    code) is skipped unless `force`; one that differs is redone from scratch, and so is every pass
    after it. Returns a summary per pass.
    """
    cfg = cfg or AlignConfig()
    if through not in PASSES or only not in (None, *PASSES):
        raise DataError(None, f"unknown GMM pass {only or through!r}", f"use one of {PASSES}")
    todo = [only] if only else list(PASSES[:PASSES.index(through) + 1])
    exp_dir, data_dir = Path(exp_dir), Path(data_dir)
    lang = load_lang(lang_dir)
    feats, texts = load_set(data_dir, **front_end(cfg=cfg))
    extra = [Path(s) for s in align_sets]
    out: dict = {}
    prev_res = None
    for name in todo:
        d = exp_dir / name
        prev_dir = exp_dir / PASSES[PASSES.index(name) - 1] if name != "mono" else None
        if prev_dir is not None and not _pass_done(prev_dir):
            raise DataError(prev_dir, f"GMM pass {prev_dir.name} not finished",
                            f"run `acoustic-kd align --pass {prev_dir.name}` first")
        st = pass_stage(d, cfg, data_dir, lang_dir, after=prev_dir)
        if not st.begin(force):
            prev_res = None
            continue
        in_feats = feats
        if prev_dir is not None:
            _check_front_end(prev_dir, cfg)
            if name in SI_PASS:   # trained on the features of the pass before
                in_feats = si_features(prev_dir, data_dir, cfg)[0]
            if prev_res is None:  # resuming: the earlier pass's final state alignment
                prev_res = _previous_states(prev_dir, lang, in_feats, texts, cfg)
        d.mkdir(parents=True, exist_ok=True)
        (d / TRANSFORM_FILE).unlink(missing_ok=True)
        write_exp_info(d, {"align": vars(cfg), "data": str(data_dir), "lang": str(lang_dir)})
        (d / "log.jsonl").unlink(missing_ok=True)
        t0 = time.time()
        hmm, gmm, res, hist, pass_feats, sat = _train(name, d, prev_dir, data_dir, lang, in_feats,
                                                       texts, prev_res, cfg)
        out[name] = _finish(d, hmm, gmm, res, hist, pass_feats, data_dir, time.time() - t0, sat)
        st.finish({"num_pdfs": hmm.num_pdfs})
        prev_res = res
    for name in todo:
        d = exp_dir / name
        if _pass_done(d):
            out[name] = _align_extra(d, lang, lang_dir, [s for s in extra if s.name != data_dir.name],
                                     cfg)
    return out


def _train(name: str, d: Path, prev_dir: Path | None, data_dir: Path, lang: Lang, feats, texts,
           prev_res: AlignResult | None, cfg: AlignConfig) -> tuple:
    """Train pass `name` into `d` on `feats` (for tri3: tri2's features) from `prev_res` ->
    (model, GMM, final alignment, log records, the pass's training features, SAT extras or None)."""
    log_path = d / "log.jsonl"
    if name == "mono":
        return (*train_mono(feats, texts, lang, cfg, log_path), feats, None)
    mono = HmmModel.load(d.parent / "mono" / "final.hmm.json")
    if name == "tri":
        return (*train_tri(feats, lang, mono, prev_res, cfg, log_path), feats, None)
    prev_hmm = HmmModel.load(prev_dir / "final.hmm.json")
    if name == "tri2":
        ceps, _ = load_set(data_dir, **{**front_end(cfg=cfg), "delta_order": 0})
        hmm, gmm, res, hist, mat = train_lda_mllt(ceps, lang, mono, prev_hmm, prev_res, cfg, log_path)
        _save_npy(d / TRANSFORM_FILE, mat)
        return hmm, gmm, res, hist, transform_features(ceps, mat, cfg.lda_context), None
    context = json.loads((prev_dir / "info.json").read_text())["config"]["align"].get("lda_context")
    if context not in (None, cfg.lda_context):
        raise ConfigError(f"{prev_dir} spliced +-{context} frames (now lda_context={cfg.lda_context})"
                          f"; train {name} with the options {prev_dir.name} was trained with")
    utt2spk = read_utt2spk(data_dir)
    hmm, gmm, res, hist, trans, reports = train_sat(
        feats, utt2spk, lang, mono, prev_hmm, DiagGmm.load(prev_dir / "final.gmm.npz"), prev_res,
        cfg, log_path)
    _save_npy(d / TRANSFORM_FILE, np.load(prev_dir / TRANSFORM_FILE))
    sat = {"trans": trans, "utt2spk": utt2spk, "fmllr": reports}
    return hmm, gmm, res, hist, transform_set(feats, utt2spk, trans), sat


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, arr)


def _align_extra(d: Path, lang: Lang, lang_dir, extra: list[Path], cfg: AlignConfig) -> dict:
    """Align each set of `extra` whose alignment by a finished pass `d` is missing or out of date
    (its own stage contract) with the pass's final model, e.g. a speed-perturbed copy of the
    training set; updates summary.json and returns it. A SAT pass first aligns the set with its
    speaker-independent pass and estimates the speakers' fMLLR transforms from that."""
    summary_path = d / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    todo = [(s, st) for s in extra for st in [ali_stage(d, s, lang_dir, cfg)] if st.begin()]
    if todo:
        hmm, gmm = HmmModel.load(d / "final.hmm.json"), DiagGmm.load(d / "final.gmm.npz")
        for s, st in todo:
            ali_dir, label = d / f"ali_{s.name}", f"{d.name} {s.name}"
            if d.name not in SI_PASS:
                f, t = pass_features(d, s, cfg)
                _, summary[ali_dir.name] = align_set(hmm, gmm, lang, f, t, cfg, ali_dir, label=label)
            else:
                si_dir = d.parent / SI_PASS[d.name]
                si, t = si_features(d, s, cfg)
                u2s = read_utt2spk(s)
                trans, rep, f = align_sat(HmmModel.load(si_dir / "final.hmm.json"),
                                          DiagGmm.load(si_dir / "final.gmm.npz"), hmm, gmm, lang,
                                          si, t, u2s, cfg, label)
                res, _ = align_set(hmm, gmm, lang, f, t, cfg, ali_dir, label=label)
                summary[ali_dir.name] = save_sat_alignment(ali_dir, res, trans, u2s, rep)
            st.finish()
        atomic_write_json(summary_path, summary)
    return summary


def _finish(d: Path, hmm: HmmModel, gmm: DiagGmm, res: AlignResult, hist: list[dict], feats,
            data_dir: Path, train_s: float, sat: dict | None = None) -> dict:
    """Save a trained pass: model files, training-set alignment and summary (the caller's stage
    contract writes the marker; other sets are aligned afterwards by `_align_extra`)."""
    hmm.save(d / "final.hmm.json")
    gmm.save(d / "final.gmm.npz")
    _save_states(d / STATES_FILE, res)
    summary = {"num_pdfs": hmm.num_pdfs, "num_gauss": gmm.num_gauss, "train_seconds": round(train_s, 1),
               "loglike_per_iter": [round(h["avg_loglike"], 4) for h in hist]}
    ali_dir = d / f"ali_{data_dir.name}"
    summary[ali_dir.name] = write_result(res, hmm, feats, ali_dir)
    if sat is not None:
        summary["loglike_with_logdet_per_iter"] = [round(h["avg_loglike"] + h["avg_logdet"], 4)
                                                   for h in hist]
        summary[ali_dir.name] = save_sat_alignment(ali_dir, res, sat["trans"], sat["utt2spk"],
                                                    sat["fmllr"])
    atomic_write_json(d / "summary.json", summary)
    return summary

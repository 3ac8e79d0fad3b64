"""Hybrid DNN-HMM forced alignment (as Kaldi's align-with-nnet) through the GMM aligner's graphs.

The per-utterance transcript graphs, the batched Viterbi, the beam / retry beam and the failure
reasons are those of `gmm.align` (`compile_graphs`, `align` -> `viterbi_batch`); only the frame
scores differ: pseudo log-likelihoods `log p(s|x) − log p(s)` from one network checkpoint or an
ensemble (posteriors combined by `ensemble.combine`), scaled by `acoustic_scale` inside the aligner
exactly as the GMM log-likelihoods are. Features are read with the checkpoint's CMVN settings and
stored training CMVN stats, so they match what the network was trained on.

With `--nj N` each data dir is split by speaker into N worker jobs (gmm/parallel.py, local or Slurm)
that each load the networks with one thread, score and align their utterances; the parts'
alignments are merged into one alignment dir.

Layout of an output dir (`acoustic-kd align --nnet ... --out OUT`):

- `ali_<set>/`  alignment dir in the GMM aligner's format (`gmm.run.write_result`: ali.scp/ark,
                num_pdfs, priors.txt, failed.txt, words.ctm, summary.json) — `<set>` is the data
                dir's name
- `.ali_<set>.done`  marker holding the set's stage signature (acoustic_kd.stage: settings,
                checkpoints, HMM, lang, features, code), written after the set is complete; a
                re-run with the same signature skips the set unless forced, a changed one redoes it
- `info.json`   checkpoints, HMM, settings, versions
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..errors import DataError
from ..hmm import HmmModel
from ..lang.langdir import Lang, load_lang
from ..model_meta import CheckpointMeta, log_priors, same_features
from ..stage import Stage, feature_inputs
from ..utils import atomic_write_json, c_sorted, get_logger, read_table, write_exp_info
from .align import AlignResult, align, compile_graphs
from .graph import UttGraph
from .parallel import split_set, start_pool
from .part import SetAlignment
from .run import write_result
from .train import AlignConfig

log = get_logger(__name__)


class PdfScoreTable:
    """Stand-in for a DiagGmm in `gmm.align.align` whose "features" are already per-pdf scores
    [T, P]: `loglikes(x, pdfs)` just selects the columns, so the GMM aligner runs unchanged."""

    def loglikes(self, x: np.ndarray, pdfs: np.ndarray) -> np.ndarray:
        return np.asarray(x)[:, pdfs]


def align_log_posteriors(hmm: HmmModel, log_post: Mapping[str, np.ndarray],
                         graphs: dict[str, UttGraph], log_priors: np.ndarray,
                         cfg: AlignConfig | None = None, progress: str | None = None) -> AlignResult:
    """Viterbi-align the utterances of `graphs` with network log-posteriors [T, P] per utterance.

    Frame score of pdf s: `cfg.acoustic_scale · (log p(s|x) − log p(s))` (+ log boost for silence
    pdfs when `cfg.boost_silence` != 1). `AlignResult.loglike` sums the unscaled pseudo
    log-likelihoods on the best paths.
    """
    cfg = cfg or AlignConfig()
    log_priors = np.asarray(log_priors, dtype=np.float64)
    if log_priors.shape != (hmm.num_pdfs,):
        raise ValueError(f"{log_priors.shape[0]} log-priors for an HMM with {hmm.num_pdfs} pdfs")
    scores = {}
    for u in graphs:
        lp = np.asarray(log_post[u])
        if lp.ndim != 2 or lp.shape[1] != hmm.num_pdfs:
            raise ValueError(f"utterance {u}: log-posteriors {lp.shape} but the HMM has "
                             f"{hmm.num_pdfs} pdfs")
        scores[u] = lp.astype(np.float64) - log_priors[None, :]
    return align(hmm, PdfScoreTable(), scores, graphs, cfg.beam, cfg.retry_beam, cfg.acoustic_scale,
                 cfg.batch_size, progress=progress, boost_silence=cfg.boost_silence,
                 self_loop_scale=cfg.self_loop_scale)


def merge_results(parts: Sequence[AlignResult]) -> AlignResult:
    """One AlignResult from the results of disjoint utterance chunks."""
    out = AlignResult(graphs={})
    for r in parts:
        out.graphs.update(r.graphs)
        out.states.update(r.states)
        out.failed.update(r.failed)
        out.loglike += r.loglike
        out.frames += r.frames
    return out


# ------------------------------------------------------------------ checkpoints
def load_models(paths: Sequence[str | Path], num_pdfs: int) -> tuple[list, dict]:
    """Load checkpoints -> ([(model, meta)], meta of the first); every one must score `num_pdfs`
    pdfs and all must share the feature normalisation (one feature stream feeds them all)."""
    from ..nnet.checkpoint import load_checkpoint

    if not paths:
        raise DataError(None, "no checkpoint given", "pass --nnet exp/.../final.pt")
    models = []
    for p in paths:
        model, meta = load_checkpoint(p)
        if int(meta["num_pdfs"]) != int(num_pdfs):
            raise DataError(p, f"the network has {meta['num_pdfs']} pdfs but the HMM has {num_pdfs}",
                            "align with the HMM (--hmm-dir) whose alignments the network was "
                            "trained on")
        models.append((model, meta))
    same_features([CheckpointMeta.from_dict(m) for _, m in models], paths)
    return models, models[0][1]


def log_priors_of(models: list, paths: Sequence[str | Path], num_pdfs: int,
                  priors_file: str | Path | None = None) -> np.ndarray:
    """log p(s) [P] from `priors_file` (priors.txt) or the checkpoints' stored priors (their mean
    when members differ), normalised and floored at 1e-10 as in decoding."""
    if priors_file:
        pri = np.loadtxt(priors_file, dtype=np.float64, ndmin=1)
        where = priors_file
    else:
        missing = [str(p) for p, (_, m) in zip(paths, models) if m.get("priors") is None]
        if missing:
            raise DataError(missing[0], "the checkpoint stores no priors",
                            "pass --priors exp/tri/ali_train/priors.txt")
        each = [np.asarray(m["priors"], np.float64) for _, m in models]
        if any(e.shape != each[0].shape for e in each):
            raise DataError(paths[0], "members store priors of different sizes", "pass --priors")
        pri = np.mean(each, axis=0)
        where = paths[0]
    if pri.shape != (num_pdfs,):
        raise DataError(where, f"{pri.size} priors but the HMM has {num_pdfs} pdfs",
                        "pass the priors.txt of the alignments the network was trained on")
    return log_priors(pri)


# ------------------------------------------------------------------ a data dir
class NnetPart:
    """The utterances `utts` (whole speakers) of a data dir, aligned with the networks: the object
    a worker job holds for `run_nnet_align` over `nj` jobs (gmm/parallel.py)."""

    def __init__(self, hmm: HmmModel, lang: Lang, models: list, meta: dict,
                 log_priors: np.ndarray, data_dir, utts: list[str]):
        self.hmm, self.lang, self.models, self.meta = hmm, lang, models, meta
        self.log_priors, self.data_dir, self.utts = log_priors, Path(data_dir), list(utts)

    @classmethod
    def load(cls, nnet_paths: list[str], hmm_path, lang_dir, priors, data_dir, utts: list[str]
             ) -> "NnetPart":
        hmm = HmmModel.load(hmm_path)
        models, meta = load_models(nnet_paths, hmm.num_pdfs)
        return cls(hmm, load_lang(lang_dir), models, meta,
                   log_priors_of(models, nnet_paths, hmm.num_pdfs, priors), data_dir, utts)

    def align(self, cfg: AlignConfig, combine: str, label: str | None = None
              ) -> tuple[SetAlignment, dict]:
        """`align_data_dir` of the part -> (its alignment, timing)."""
        res, lens, timing = align_data_dir(self.hmm, self.lang, self.models, self.meta,
                                           self.log_priors, self.data_dir, cfg, combine,
                                           label=label, only=self.utts)
        return SetAlignment.of(res, lens), timing



def align_data_dir(hmm: HmmModel, lang: Lang, models: list, meta: dict, log_priors: np.ndarray,
                   data_dir: str | Path, cfg: AlignConfig, combine: str = "arithmetic",
                   chunk_utts: int = 256, label: str = "nnet align", only=None
                   ) -> tuple[AlignResult, dict[str, int], dict]:
    """Align a data dir (its utterances in `only`, when given) with its transcripts -> (result,
    utt -> feature frames, timing).

    Network forwards run on `chunk_utts` utterances at a time (bounded memory, large matmuls).
    Utterances without features or transcript, OOV transcripts, too-short utterances and beam
    failures are listed in `result.failed` with their reason."""
    from ..decode.decoder import nnet_log_posteriors

    data_dir = Path(data_dir)
    feats = CheckpointMeta.from_dict(meta).features(data_dir)
    texts = {k: v for k, v, _ in read_table(data_dir / "text", min_fields=1)}
    have = set(feats.utts)
    utts = c_sorted(have | set(texts))
    if only is not None:
        keep = set(only)
        utts, have = [u for u in utts if u in keep], have & keep
    failed = {u: "no_features" for u in utts if u not in have}
    graphs, gfail = compile_graphs(hmm, lang, texts, [u for u in utts if u in have])
    todo = c_sorted(graphs)
    parts, fwd_s, vit_s = [], 0.0, 0.0
    for i in range(0, len(todo), chunk_utts):
        chunk = todo[i:i + chunk_utts]
        t0 = time.time()
        lp = nnet_log_posteriors(models, feats, chunk, combine)
        t1 = time.time()
        parts.append(align_log_posteriors(hmm, lp, {u: graphs[u] for u in chunk}, log_priors, cfg,
                                          progress=label))
        fwd_s, vit_s = fwd_s + t1 - t0, vit_s + time.time() - t1
    res = merge_results(parts) if parts else AlignResult(graphs={})
    res.failed.update(failed)
    res.failed.update(gfail)
    lens = {u: feats.num_frames(u) for u in res.states}
    return res, lens, {"forward_seconds": round(fwd_s, 3), "viterbi_seconds": round(vit_s, 3)}


def run_nnet_align(nnet_paths: Sequence[str | Path], hmm_dir: str | Path, lang_dir: str | Path,
                   align_sets: Sequence[str | Path], out_dir: str | Path,
                   cfg: AlignConfig | None = None, combine: str = "arithmetic",
                   priors: str | Path | None = None, force: bool = False, nj: int = 1,
                   backend: str = "local", slurm_opts: str = "") -> dict:
    """Align each data dir of `align_sets` into `out_dir/ali_<set>`, split over `nj` jobs of whole
    speakers (`backend` local or slurm, as the GMM passes: gmm/parallel.py); returns {set:
    summary} (sets already done with the same settings are skipped, reported as {"skipped": True})."""
    cfg = cfg or AlignConfig()
    out_dir, hmm_dir = Path(out_dir), Path(hmm_dir)
    hmm_path = hmm_dir / "final.hmm.json"
    if not hmm_path.exists():
        raise DataError(hmm_path, "HMM not found", "pass the exp dir of a finished GMM pass "
                        "(e.g. --hmm-dir exp/tri)")
    if not align_sets:
        raise DataError(None, "no data dir to align", "pass --align-sets data/dev ...")
    names = [Path(s).name for s in align_sets]
    if len(set(names)) != len(names):
        raise DataError(None, f"data dirs with the same name {names}", "ali_<name> would collide")
    hmm = HmmModel.load(hmm_path)
    lang = load_lang(lang_dir)
    paths = [str(p) for p in nnet_paths]
    models, meta = load_models(paths, hmm.num_pdfs)
    log_priors = log_priors_of(models, paths, hmm.num_pdfs, priors)
    settings = {"combine": combine if len(paths) > 1 else None,
                "acoustic_scale": cfg.acoustic_scale, "beam": cfg.beam, "retry_beam": cfg.retry_beam,
                "boost_silence": cfg.boost_silence, "self_loop_scale": cfg.self_loop_scale,
                "batch_size": cfg.batch_size,
                "priors": "file" if priors else "checkpoint"}
    write_exp_info(out_dir, {"nnet_align": {**settings, "nnet": paths, "hmm": str(hmm_path),
                                            "lang": str(lang_dir), "priors": str(priors or "")}})
    out: dict = {}
    for s in align_sets:
        s = Path(s)
        name = f"ali_{s.name}"
        ali_dir = out_dir / name
        # ali.scp points into ali.1.ark by path, so the dir is written in place (each file
        # atomically); the marker, dropped first and left last, says it is complete
        st = Stage(name, out_dir, settings, inputs=[*paths, hmm_path, Path(lang_dir), priors,
                                                    *feature_inputs(s, "text")],
                   code=__name__, outputs=[ali_dir])
        if not st.begin(force):
            out[s.name] = {"skipped": True}
            continue
        t0 = time.time()
        args = [("nnet", paths, str(hmm_path), str(lang_dir), priors, str(s), utts)
                for utts in split_set(s, nj)]
        pool = start_pool(args, lambda *a: NnetPart(hmm, lang, models, meta, log_priors, a[5], a[6]),
                          backend, slurm_opts, out_dir / "log", f"nnet_{s.name}")
        with pool:
            done = pool.all("align", cfg, combine, f"nnet {s.name}")
        ali = SetAlignment.merge([a for a, _ in done])
        timing = {k: round(sum(t[k] for _, t in done), 3) for k in done[0][1]}
        summary = write_result(ali, hmm, ali.lengths, ali_dir, time.time() - t0)
        summary.update(timing, aligner="nnet", models=len(paths))
        if len(done) > 1:
            summary["jobs"] = len(done)
        atomic_write_json(ali_dir / "summary.json", summary)
        st.finish()
        out[s.name] = summary
    return out

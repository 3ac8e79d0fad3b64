"""The decode stage on disk (`acoustic-kd decode`): what it reads, tunes, scores and writes.

Inputs: a graph dir (HCLG.fst, words.txt, graph.json, align_lexicon.json), a data dir's features
(and text, utt2spk), one checkpoint or an ensemble (`DecodeJob.model`), a GMM pass (`DecodeJob.gmm`,
whose log-likelihoods are decoded with log-priors 0: `gmm_source`) or a Kaldi scp of
log-posteriors [T, P], priors (a priors.txt or the checkpoint's), optionally an alignment dir (frame
accuracy), a dev set to tune acwt / word penalty / transition scale on, or a tune.json whose values
are taken as they are.

Outputs in OUT: hyp.txt, hyp.json, wer, cer, errs.txt, cer_errs.txt, frame_acc, decode.json
(`decoder.decode_to_dir`), tune.json and tune_surface.txt (with a dev set), lat.txt.gz, nbest.json,
ctm and rescored/ (with lattices, `lattice.write_lattice_dir`), info.json and the stage marker
(`acoustic_kd.stage`: a finished OUT is reused unless forced or unless its config, graph, models,
priors, features, text or code changed).

    run_decode(DecodeJob(graph="exp/tri/graph", data="data/test", out="exp/decode/m1_test",
                         model=["exp/m1/final.pt"], tune_on_dev="data/dev"))
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import load_config, overrides_from_args, to_dict
from ..errors import ConfigError, DataError
from ..model_meta import CheckpointMeta, log_priors
from ..plan import SEARCH_PLAN, planned_config, search_plan
from ..stage import Stage, ali_inputs, feature_inputs, scp_archives
from ..utils import atomic_write_json, atomic_write_text, c_sorted, get_logger, write_exp_info
from .decoder import ChunkedLogPost, DecodeConfig, Graph, decode_to_dir, nnet_log_posteriors
from .gmm_source import GmmDecodeConfig, check_graph_hmm, check_pass, gmm_source, pass_inputs
from .graph import graph_pdfs, graph_variant
from .lattice import LatticeConfig, write_lattice_dir
from .score import read_text
from .tune import TuneConfig, format_surface, tune_on_dev

log = get_logger(__name__)

Source = tuple[Callable[[str], np.ndarray], list[str], dict]   # (utt -> log_post, utts, meta)


@dataclass
class DecodeJob:
    """One decode: the paths and switches of `acoustic-kd decode` (same names as its options) and
    the command-line overrides of its configs (None = not given; `config` is the recipe YAML)."""

    graph: str
    data: str
    out: str
    model: list[str] = field(default_factory=list)
    gmm: str | None = None
    combine: str = "arithmetic"
    logpost_scp: str | None = None
    priors: str | None = None
    ali: str | None = None
    tune_on_dev: str | None = None
    tuned: str | None = None
    dev_logpost_scp: str | None = None
    config: str | None = None
    force: bool = False
    lattice: bool = False
    decode_options: dict = field(default_factory=dict)
    tune_options: dict = field(default_factory=dict)
    lattice_options: dict = field(default_factory=dict)
    gmm_options: dict = field(default_factory=dict)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "DecodeJob":
        options = {"decode_options": overrides_from_args(args, DecodeConfig),
                   "tune_options": overrides_from_args(args, TuneConfig),
                   "lattice_options": overrides_from_args(args, LatticeConfig),
                   "gmm_options": overrides_from_args(args, GmmDecodeConfig)}
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
                      if f.name not in options}, **options)

    def given(self, *names: str) -> bool:
        """Whether any of these DecodeConfig options was given on the command line."""
        return any(self.decode_options.get(n) is not None for n in names)


def check_tuning_options(job: DecodeJob) -> None:
    """Where acwt and word penalty come from: the options (or defaults and YAML), a tuning on a dev
    set other than the decoded one, or a tune.json; one of them."""
    if job.tune_on_dev and job.given("acwt", "word_penalty"):
        raise ConfigError("give either --acwt/--word-penalty or --tune-on-dev, not both")
    if job.tuned and (job.tune_on_dev or job.given("acwt", "word_penalty")):
        raise ConfigError("give --tuned alone, without --tune-on-dev/--acwt/--word-penalty")
    if job.tune_on_dev and Path(job.tune_on_dev).resolve() == Path(job.data).resolve():
        raise ConfigError("--tune-on-dev must name a dev set, not the set being decoded")


def check_sources(job: DecodeJob) -> None:
    """Where the log-posteriors come from: checkpoints, a GMM pass that fits the graph (alone), or
    scps for the decoded set and the dev set alike (checked before the stage starts, so a bad
    command line leaves a finished OUT alone)."""
    if job.gmm and (job.model or job.logpost_scp or job.dev_logpost_scp or job.priors):
        raise ConfigError("--gmm decodes with the GMM pass's own likelihoods: give it without "
                          "--model, --logpost-scp, --dev-logpost-scp and --priors")
    if job.gmm:
        check_pass(job.gmm)
        check_graph_hmm(job.graph, job.gmm)
    if not job.logpost_scp and not job.model and not job.gmm:
        raise ConfigError("give --model (one or more checkpoints), --gmm (a GMM pass dir, "
                          "e.g. exp/tri2) or --logpost-scp")
    if job.tune_on_dev and job.logpost_scp and not job.dev_logpost_scp:
        raise ConfigError("with --logpost-scp, --tune-on-dev needs --dev-logpost-scp")


def tuned_values(path: str | Path) -> tuple[float, float, float | None]:
    """(acwt, word penalty, transition scale or None when none was tuned) of a decode's tune.json
    or decode.json: the one reader of the values a decode tuned on dev (decode --tuned, export)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no tune.json there; run the decode with --tune-on-dev first")
    d = json.loads(path.read_text())
    d = d.get("tune") or d.get("config") or d  # decode.json nests its settings
    if "acwt" not in d:
        raise ConfigError(f"{path}: no 'acwt' key (expected a tune.json or decode.json)")
    scale = d.get("transition_scale")
    return float(d["acwt"]), float(d.get("word_penalty", 0.0)), None if scale is None else float(scale)


def read_tuned(path: str | Path, cfg: DecodeConfig) -> tuple[DecodeConfig, float | None]:
    """`cfg` with the acwt and word penalty of a tune.json, and the transition scale tuned with
    them (None when none was)."""
    acwt, penalty, scale = tuned_values(path)
    return dataclasses.replace(cfg, acwt=acwt, word_penalty=penalty), scale


def configs(job: DecodeJob) -> tuple[DecodeConfig, TuneConfig, LatticeConfig, float | None]:
    """(decode, tune, lattice configs, tuned transition scale): defaults < YAML < command line,
    acwt and word penalty from `job.tuned` when given; the option rules checked."""
    cfg, plan, chosen = planned_config(DecodeConfig, job.config, "decode", job.decode_options,
                                       lambda: search_plan(graph_pdfs(job.graph)), SEARCH_PLAN)
    for f, v in chosen.items():   # (decode.json records the config the search ran with)
        log.info("decode plan: %s = %s (%s)", f, v, plan.reasons[f])
    tcfg = load_config(TuneConfig, job.config, "tune", job.tune_options)
    check_tuning_options(job)
    tuned_scale = None
    if job.tuned:
        cfg, tuned_scale = read_tuned(job.tuned, cfg)
    lcfg = load_config(LatticeConfig, job.config, "lattice", job.lattice_options)
    if lcfg.rescore_lm and not job.lattice:
        raise ConfigError("--rescore-lm rescores the n-best lists of --lattice: give both")
    check_sources(job)
    return cfg, tcfg, lcfg, tuned_scale


def nnet_source(model_paths: list[str], data_dir: str | Path, rule: str, chunk: int = 32) -> Source:
    """Log-posteriors of a data dir's features from one checkpoint or an ensemble (batched)."""
    from ..nnet.checkpoint import load_checkpoint

    models = [load_checkpoint(p) for p in model_paths]
    meta = models[0][1]
    feats = CheckpointMeta.from_dict(meta).features(data_dir)
    utts = list(feats.utts)
    fn = ChunkedLogPost(lambda us: nnet_log_posteriors(models, feats, us, rule), utts, chunk)
    shift = (feats.config.frame_shift_ms / 1000.0) if feats.config is not None else 0.01
    return fn, utts, {**meta, "frame_shift": shift}


def scp_source(scp: str | Path) -> Source:
    """Log-posteriors read from a Kaldi scp of float matrices [T, P]."""
    import kaldiio

    table = kaldiio.load_scp(str(scp))
    return (lambda u: np.asarray(table[u], np.float32)), c_sorted(table.keys()), {"frame_shift": 0.01}


def gmm_config(job: DecodeJob) -> GmmDecodeConfig:
    """The options of a GMM decode: defaults < command line (no YAML section: sections are
    registered in config.py, and editing it changes the code signature of every stage)."""
    return GmmDecodeConfig(**{k: v for k, v in job.gmm_options.items() if v is not None})


def source(job: DecodeJob, data_dir: str, scp: str | None, graph: Graph,
           cfg: DecodeConfig) -> Source:
    """The log-posteriors of `data_dir`: from `scp` when given, else from the job's models or its
    GMM pass (one of them is there: `check_sources`; a SAT pass adapts on `graph` with `cfg`)."""
    if scp:
        return scp_source(scp)
    if job.gmm:
        return gmm_source(job.gmm, data_dir, graph, cfg, gmm_config(job))
    return nnet_source(job.model, data_dir, job.combine)


def log_priors_from(job: DecodeJob, meta: dict) -> np.ndarray:
    """log p(s) [P] from the job's priors.txt or the checkpoint's stored priors (floored at 1e-10);
    zeros for a GMM, whose scores are likelihoods already."""
    if job.gmm:
        return np.zeros(int(meta["num_pdfs"]))
    if job.priors:
        return log_priors(np.loadtxt(job.priors, dtype=np.float64, ndmin=1))
    if meta.get("priors") is not None:
        return log_priors(meta["priors"])
    raise ConfigError("no priors: pass --priors exp/tri/ali_train/priors.txt")


def check_pdf_counts(graph: Graph, meta: dict, log_priors: np.ndarray, priors: str | None) -> None:
    """Refuse a model (e.g. a checkpoint of another lang) or priors whose pdf count is not the graph's."""
    want, got = graph.info.get("num_pdfs"), meta.get("num_pdfs")
    if want is not None and got is not None and int(got) != int(want):
        raise DataError(graph.path, f"the model has {got} pdfs but the graph was built for {want} "
                        "(a checkpoint of another lang or HMM?)", "decode with the graph of the lang "
                        "and HMM the model was trained on (acoustic-kd mkgraph --model its final.hmm.json)")
    expect = got if got is not None else want
    if expect is not None and len(log_priors) != int(expect):
        raise DataError(priors or "checkpoint priors", f"{len(log_priors)} priors but the model has "
                        f"{expect} pdfs", "pass the priors.txt of the alignments the model was trained on")


def decode_stage(job: DecodeJob, cfg: DecodeConfig, tcfg: TuneConfig, lcfg: LatticeConfig
                 ) -> Stage:
    """The decode stage: graph, models (or log-posteriors), priors, features, text, alignments and
    the dev set (or tune.json) to tune on in; OUT out."""
    graph = Path(job.graph)
    inputs = [graph / n for n in ("HCLG.fst", "words.txt", "graph.json", "align_lexicon.json")]
    inputs += [*job.model, job.priors, job.tuned, lcfg.rescore_lm if job.lattice else None]
    if job.gmm:
        inputs += pass_inputs(job.gmm)
    for data, scp in ((job.data, job.logpost_scp), (job.tune_on_dev, job.dev_logpost_scp)):
        if data:
            inputs += feature_inputs(data, "text", "utt2spk")
        if scp:
            inputs += [Path(scp), *scp_archives(scp)]
    if job.ali:
        inputs += ali_inputs(job.ali)
    config = {"decode": to_dict(cfg), "tune": to_dict(tcfg) if job.tune_on_dev else None,
              "combine": job.combine if len(job.model) > 1 else None,
              "models": len(job.model), "tuned": bool(job.tuned), "ali": bool(job.ali),
              "lattice": to_dict(lcfg) if job.lattice else None}
    if job.gmm:
        config["gmm"] = to_dict(gmm_config(job))
    return Stage("decode", job.out, config, inputs=inputs, outputs=[Path(job.out)], marker="",
                 resumable=False, code=__name__)


def tune(job: DecodeJob, graph: Graph, log_priors: np.ndarray, cfg: DecodeConfig,
         tcfg: TuneConfig) -> tuple[Graph, DecodeConfig, dict]:
    """Tune acwt and word penalty (and with `tcfg.transition_scales` the graph's transition scale)
    on the job's dev set: (graph, config) with the tuned values and the record for decode.json."""
    dfn, dutts, _ = source(job, job.tune_on_dev, job.dev_logpost_scp, graph, cfg)
    drefs = read_text(Path(job.tune_on_dev) / "text")
    dutts = [u for u in dutts if u in drefs]
    graphs = ({ts: Graph.load(graph_variant(job.graph, ts)) for ts in tcfg.transition_scales}
              if tcfg.transition_scales else graph)
    tuned = tune_on_dev(graphs, dutts, drefs, dfn, log_priors, cfg, tcfg)
    cfg = dataclasses.replace(cfg, acwt=tuned.acwt, word_penalty=tuned.word_penalty)
    if isinstance(graphs, dict):
        graph = graphs[tuned.transition_scale]
    return graph, cfg, {"dev": str(job.tune_on_dev), **tuned.to_dict()}


def references(job: DecodeJob) -> tuple[dict | None, dict | None]:
    """(transcripts of the decoded set, None without a text file; its alignments or None)."""
    text = Path(job.data) / "text"
    refs = read_text(text) if text.exists() else None
    alis = None
    if job.ali:
        from ..ali import read_alignments
        alis = read_alignments(job.ali)
    return refs, alis


def print_summary(out: Path, summary: dict, utts: int) -> None:
    """The error rates (or the utterance count without references), the real-time factor with
    forward and search time, and the width of the search (arcs, ≈ states per frame)."""
    scores = [out / k for k in ("wer", "cer") if (out / k).exists()]
    print("".join(p.read_text() for p in scores) if scores else f"decoded {utts} utterances\n",
          end="")
    timing = summary.get("timing", {})
    if summary.get("rtf") is not None:
        print(f"RTF {summary['rtf']:.4f} ({timing['forward_s']:.1f} s forward, "
              f"{timing.get('search_s', 0.0):.1f} s search, {summary['audio_s']:.1f} s audio)")
    probe = timing.get("search") or {}
    if probe.get("arcs_per_frame") is not None:
        print(f"search at acwt {summary['config']['acwt']:g}, beam {probe['beam']:g}: "
              f"{probe['arcs_per_frame']:.0f} arcs, ≈{probe['states_per_frame']:.0f} active states "
              f"per frame ({probe['sample_frames']} frames of {probe['sample_utts']} utterances)")


def write_lattices(job: DecodeJob, graph: Graph, utts: list[str], fn, log_priors: np.ndarray,
                   cfg: DecodeConfig, lcfg: LatticeConfig, refs: dict | None,
                   frame_shift: float) -> None:
    """Lattices, n-best lists and CTM into OUT; the rescored error rates printed."""
    lat = write_lattice_dir(graph, utts, fn, log_priors, cfg, lcfg, job.out, refs, frame_shift)
    for kind in ("wer", "cer"):
        if kind in lat.get("rescored", {}):
            print(f"rescored with {lcfg.rescore_lm}: ", end="")
            print((Path(job.out) / "rescored" / kind).read_text().splitlines()[0])


def source_record(job: DecodeJob, meta: dict) -> dict:
    """What decode.json records of the scores' source: models, GMM pass (and its speakers'
    adaptation), data, priors, the tune.json the scales came from."""
    extra: dict = {"models": job.model, "combine": job.combine if len(job.model) > 1 else None,
                   "data": str(job.data), "priors": job.priors}
    if job.gmm:
        extra.update({"gmm": job.gmm, "fmllr": meta.get("fmllr")})
    if job.tuned:
        extra["tuned_from"] = str(job.tuned)
    return extra


def run_decode(job: DecodeJob) -> int:
    """Decode, tune, score and write OUT (or report a finished OUT that is up to date); 0."""
    cfg, tcfg, lcfg, tuned_scale = configs(job)
    out = Path(job.out)
    st = decode_stage(job, cfg, tcfg, lcfg)
    if not st.begin(job.force):
        summary = json.loads((out / "decode.json").read_text())
        print_summary(out, summary, summary.get("num_utts", 0))
        return 0
    graph = Graph.load(job.graph)
    # (a SAT pass adapts on the graph as built, whatever transition scale was tuned)
    fn, utts, meta = source(job, job.data, job.logpost_scp, graph, cfg)
    if job.tuned and tuned_scale is not None:
        graph = Graph.load(graph_variant(job.graph, float(tuned_scale)))
    log_priors = log_priors_from(job, meta)
    check_pdf_counts(graph, meta, log_priors, job.priors)
    extra = source_record(job, meta)
    if job.tune_on_dev:
        graph, cfg, extra["tune"] = tune(job, graph, log_priors, cfg, tcfg)
    refs, alis = references(job)
    frame_shift = meta.get("frame_shift", 0.01)
    summary = decode_to_dir(graph, utts, fn, log_priors, job.out, cfg, refs, alis, frame_shift,
                            extra, force=True)
    if "tune" in summary:
        atomic_write_json(out / "tune.json", summary["tune"])
        atomic_write_text(out / "tune_surface.txt", format_surface(summary["tune"]))
    if job.lattice:
        write_lattices(job, graph, utts, fn, log_priors, cfg, lcfg, refs, frame_shift)
    write_exp_info(job.out, {"decode": to_dict(cfg), "tune": to_dict(tcfg),
                             **({"lattice": to_dict(lcfg)} if job.lattice else {})})
    st.finish()
    print_summary(out, summary, len(utts))
    return 0

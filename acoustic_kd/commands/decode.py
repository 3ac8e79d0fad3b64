"""Decode a data set with one acoustic model or an ensemble, then score it.

Frame scores are acwt·(log p(s|x) − log p(s)); several --model options form an ensemble whose
posteriors are combined (--combine). The acoustic scale and word penalty are given (--acwt,
--word-penalty) or tuned on a dev set (--tune-on-dev DIR), never on the decoded set itself; with
--transition-scales the HMM transition scale is tuned too (graph variants built in GRAPH/ts<scale>).
Log-posteriors can also come from a Kaldi scp of [T, P] matrices (--logpost-scp), e.g. an export.

Writes OUT/hyp.txt, hyp.json (word times), wer, cer, errs.txt, cer_errs.txt, frame_acc (with
--ali), decode.json, tune.json and tune_surface.txt (with --tune-on-dev: the chosen point and the
whole dev surface; the grid is widened until its best point is interior), info.json and .done; a
finished OUT is reused unless --force or unless its config, graph, models, priors, features, text
or code changed (acoustic_kd.stage). --lattice adds lat.txt.gz, nbest.json, ctm (word times and
confidences) and, with --rescore-lm ARPA, rescored/ (see `acoustic_kd.decode.lattice`).

  acoustic-kd decode --graph exp/tri/graph --data data/test --model exp/m1/final.pt \\
      --priors exp/tri/ali_train/priors.txt --out exp/decode/m1_test --tune-on-dev data/dev
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import add_config_args, load_config, overrides_from_args, to_dict
from ..decode.decoder import (ChunkedLogPost, DecodeConfig, Graph, decode_to_dir,
                              nnet_log_posteriors)
from ..decode.graph import GRAPH_CODE, graph_variant
from ..decode.lattice import LatticeConfig, write_lattice_dir
from ..decode.score import read_text
from ..decode.tune import TuneConfig, format_surface, tune_on_dev
from ..errors import ConfigError, DataError
from ..model_meta import CheckpointMeta, log_priors
from ..stage import Stage, ali_inputs, feature_inputs, scp_archives
from ..utils import atomic_write_json, atomic_write_text, c_sorted, get_logger, write_exp_info

HELP = "decode a data set (one model or an ensemble) and score it"
log = get_logger(__name__)
Source = tuple[Callable[[str], np.ndarray], list[str], dict]   # (utt -> log_post, utts, meta)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--graph", required=True, help="graph dir (acoustic-kd mkgraph)")
    p.add_argument("--data", required=True, help="data dir with features (and text for scoring)")
    p.add_argument("--model", action="append", default=[],
                   help="checkpoint (final.pt); repeat for an ensemble")
    p.add_argument("--combine", default="arithmetic", choices=["arithmetic", "geometric"],
                   help="ensemble combination rule")
    p.add_argument("--logpost-scp", help="scp of log-posteriors [T, P] instead of --model")
    p.add_argument("--priors", help="priors.txt (default: the priors stored in the checkpoint)")
    p.add_argument("--out", required=True, help="output dir (e.g. exp/decode/NAME_test)")
    p.add_argument("--ali", help="alignment dir of --data, for frame accuracy")
    p.add_argument("--tune-on-dev", metavar="DIR", help="dev data dir to tune acwt/word penalty on")
    p.add_argument("--tuned", metavar="TUNE_JSON",
                   help="take acwt and word penalty from a tune.json written by a --tune-on-dev run "
                        "(e.g. to decode the dev set itself with the values tuned on it)")
    p.add_argument("--dev-logpost-scp", help="dev log-posteriors scp (with --logpost-scp)")
    p.add_argument("--config", help="recipe YAML (sections 'decode' and 'tune')")
    p.add_argument("--force", action="store_true", help="redo a finished decode")
    p.add_argument("--lattice", action="store_true",
                   help="also write lattices (lat.txt.gz), n-best lists with word times and "
                        "posteriors (nbest.json) and a CTM with confidences; with --rescore-lm the "
                        "n-best rescored by that LM (OUT/rescored/)")
    add_config_args(p, DecodeConfig)
    add_config_args(p, TuneConfig)
    add_config_args(p, LatticeConfig)


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


def log_priors_from(args: argparse.Namespace, meta: dict) -> np.ndarray:
    """log p(s) [P] from --priors or the checkpoint's stored priors (floored at 1e-10)."""
    if args.priors:
        return log_priors(np.loadtxt(args.priors, dtype=np.float64, ndmin=1))
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


def _source(args: argparse.Namespace, data_dir: str, scp: str | None) -> Source:
    if scp:
        return scp_source(scp)
    if not args.model:
        raise ConfigError("give --model (one or more checkpoints) or --logpost-scp")
    return nnet_source(args.model, data_dir, args.combine)


def stage(args: argparse.Namespace, cfg: DecodeConfig, tcfg: TuneConfig, lcfg: LatticeConfig
          ) -> Stage:
    """The decode stage: graph, models (or log-posteriors), priors, features, text, alignments and
    the dev set (or tune.json) to tune on in; OUT out."""
    graph = Path(args.graph)
    inputs = [graph / n for n in ("HCLG.fst", "words.txt", "graph.json", "align_lexicon.json")]
    inputs += [*args.model, args.priors, args.tuned, lcfg.rescore_lm if args.lattice else None]
    for data, scp in ((args.data, args.logpost_scp), (args.tune_on_dev, args.dev_logpost_scp)):
        if data:
            inputs += feature_inputs(data, "text", "utt2spk")
        if scp:
            inputs += [Path(scp), *scp_archives(scp)]
    if args.ali:
        inputs += ali_inputs(args.ali)
    config = {"decode": to_dict(cfg), "tune": to_dict(tcfg) if args.tune_on_dev else None,
              "combine": args.combine if len(args.model) > 1 else None,
              "models": len(args.model), "tuned": bool(args.tuned), "ali": bool(args.ali),
              "lattice": to_dict(lcfg) if args.lattice else None}
    return Stage("decode", args.out, config, inputs=inputs, outputs=[Path(args.out)], marker="",
                 resumable=False, code=[__name__, "acoustic_kd.decode.decoder", "acoustic_kd.decode.search",
                                        "acoustic_kd.decode.lattice", "acoustic_kd.decode.score",
                                        "acoustic_kd.decode.tune", *GRAPH_CODE,
                                        "acoustic_kd.ensemble.combine", "acoustic_kd.ensemble.runner"])


def _print_summary(out: Path, summary: dict, utts: int) -> None:
    scores = [out / k for k in ("wer", "cer") if (out / k).exists()]
    print("".join(p.read_text() for p in scores) if scores else f"decoded {utts} utterances\n",
          end="")
    if summary.get("rtf") is not None:
        print(f"RTF {summary['rtf']:.4f} ({summary['timing']['forward_s']:.1f} s forward, "
              f"{summary['audio_s']:.1f} s audio)")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(DecodeConfig, args.config, "decode", overrides_from_args(args, DecodeConfig))
    tcfg = load_config(TuneConfig, args.config, "tune", overrides_from_args(args, TuneConfig))
    tuned_scale = None
    if args.tune_on_dev and (args.acwt is not None or args.word_penalty is not None):
        raise ConfigError("give either --acwt/--word-penalty or --tune-on-dev, not both")
    if args.tuned:
        if args.tune_on_dev or args.acwt is not None or args.word_penalty is not None:
            raise ConfigError("give --tuned alone, without --tune-on-dev/--acwt/--word-penalty")
        tuned_path = Path(args.tuned)
        if not tuned_path.exists():
            raise ConfigError(f"{tuned_path}: no tune.json there; run the decode with --tune-on-dev first")
        t = json.loads(tuned_path.read_text())
        cfg = dataclasses.replace(cfg, acwt=float(t["acwt"]), word_penalty=float(t["word_penalty"]))
        tuned_scale = t.get("transition_scale")
    if args.tune_on_dev and Path(args.tune_on_dev).resolve() == Path(args.data).resolve():
        raise ConfigError("--tune-on-dev must name a dev set, not the set being decoded")
    lcfg = load_config(LatticeConfig, args.config, "lattice", overrides_from_args(args, LatticeConfig))
    if lcfg.rescore_lm and not args.lattice:
        raise ConfigError("--rescore-lm rescores the n-best lists of --lattice: give both")
    st = stage(args, cfg, tcfg, lcfg)
    if not st.begin(args.force):
        summary = json.loads((Path(args.out) / "decode.json").read_text())
        _print_summary(Path(args.out), summary, summary.get("num_utts", 0))
        return 0
    graph = Graph.load(args.graph)
    if args.tuned and tuned_scale is not None:
        graph = Graph.load(graph_variant(args.graph, float(tuned_scale)))
    fn, utts, meta = _source(args, args.data, args.logpost_scp)
    log_priors = log_priors_from(args, meta)
    check_pdf_counts(graph, meta, log_priors, args.priors)
    extra: dict = {"models": args.model, "combine": args.combine if len(args.model) > 1 else None,
                   "data": str(args.data), "priors": args.priors}
    if args.tuned:
        extra["tuned_from"] = str(args.tuned)
    if args.tune_on_dev:
        if args.logpost_scp and not args.dev_logpost_scp:
            raise ConfigError("with --logpost-scp, --tune-on-dev needs --dev-logpost-scp")
        dfn, dutts, _ = _source(args, args.tune_on_dev, args.dev_logpost_scp)
        drefs = read_text(Path(args.tune_on_dev) / "text")
        dutts = [u for u in dutts if u in drefs]
        graphs = ({ts: Graph.load(graph_variant(args.graph, ts)) for ts in tcfg.transition_scales}
                  if tcfg.transition_scales else graph)
        tuned = tune_on_dev(graphs, dutts, drefs, dfn, log_priors, cfg, tcfg)
        cfg = dataclasses.replace(cfg, acwt=tuned.acwt, word_penalty=tuned.word_penalty)
        if isinstance(graphs, dict):
            graph = graphs[tuned.transition_scale]
        extra["tune"] = {"dev": str(args.tune_on_dev), **tuned.to_dict()}
    text = Path(args.data) / "text"
    refs = read_text(text) if text.exists() else None
    alis = None
    if args.ali:
        from ..ali import read_alignments
        alis = read_alignments(args.ali)
    summary = decode_to_dir(graph, utts, fn, log_priors, args.out, cfg, refs, alis,
                            meta.get("frame_shift", 0.01), extra, force=True)
    if "tune" in summary:
        atomic_write_json(Path(args.out) / "tune.json", summary["tune"])
        atomic_write_text(Path(args.out) / "tune_surface.txt", format_surface(summary["tune"]))
    if args.lattice:
        lat = write_lattice_dir(graph, utts, fn, log_priors, cfg, lcfg, args.out, refs,
                                meta.get("frame_shift", 0.01))
        for kind in ("wer", "cer"):
            if kind in lat.get("rescored", {}):
                print(f"rescored with {lcfg.rescore_lm}: ", end="")
                print((Path(args.out) / "rescored" / kind).read_text().splitlines()[0])
    write_exp_info(args.out, {"decode": to_dict(cfg), "tune": to_dict(tcfg),
                              **({"lattice": to_dict(lcfg)} if args.lattice else {})})
    st.finish()
    _print_summary(Path(args.out), summary, len(utts))
    return 0

"""Decode a data set with one acoustic model or an ensemble, then score it.

Frame scores are acwt·(log p(s|x) − log p(s)); several --model options form an ensemble whose
posteriors are combined (--combine). --gmm EXP/<pass> decodes with a GMM pass of `acoustic-kd
align` instead (scores acwt·log p(x|s), its features made as the pass made them; a SAT pass, tri3,
adapts each speaker by fMLLR from first-pass best paths: acoustic_kd.decode.gmm_source). The acoustic scale and word penalty are given (--acwt,
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
  acoustic-kd decode --graph exp/tri2/graph --data data/test --gmm exp/tri2 \
      --out exp/decode/gmm_tri2_test --tune-on-dev data/dev
"""

from __future__ import annotations

import argparse

from ..config import add_config_args
from ..decode.decoder import DecodeConfig
from ..decode.gmm_source import GmmDecodeConfig
from ..decode.lattice import LatticeConfig
from ..decode.stage import DecodeJob, run_decode
from ..decode.tune import TuneConfig
from ..plan import SEARCH_PLAN

HELP = "decode a data set (one model or an ensemble) and score it"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--graph", required=True, help="graph dir (acoustic-kd mkgraph)")
    p.add_argument("--data", required=True, help="data dir with features (and text for scoring)")
    p.add_argument("--model", action="append", default=[],
                   help="checkpoint (final.pt); repeat for an ensemble")
    p.add_argument("--gmm", metavar="PASS_DIR",
                   help="decode with a GMM pass instead of --model (e.g. exp/tri2: its final.gmm.npz "
                        "and final.hmm.json; the graph must be built with that HMM)")
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
    add_config_args(p, DecodeConfig, planned=SEARCH_PLAN)   # (the graph's pdf count: plan.search_plan)
    add_config_args(p, TuneConfig)
    add_config_args(p, LatticeConfig)
    add_config_args(p, GmmDecodeConfig)


def run(args: argparse.Namespace) -> int:
    return run_decode(DecodeJob.from_args(args))

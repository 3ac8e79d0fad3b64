"""Export a trained model (normally the distilled student) for deployment.

Writes OUT/model.pt (TorchScript), OUT/model.onnx, OUT/model.int8.onnx, export.json and README.txt.
Each model file carries everything decoding needs (fbank options, global CMVN stats, priors,
pdf->HMM map, acoustic scale, beam, the HCLG graph and the word list), so `acoustic-kd transcribe`
and `acoustic_kd.export.load_exported` need nothing but the directory. --acwt takes a number or
the decode stage's tune.json / decode.json (acwt and word penalty are read from it, and the graph
variant of a transition scale tuned on dev is the one exported).
A finished OUT is skipped unless --force or a changed input, setting or code (acoustic_kd.stage).

  acoustic-kd export --checkpoint exp/student_kd/final.pt --graph exp/tri/graph \\
      --data data/train --out exp/export --acwt exp/decode/student_kd_test/tune.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import job_from_args
from ..config_types import field_arg_type
from ..decode.decoder import DecodeConfig
from ..export.stage import ExportJob

HELP = "export a checkpoint to TorchScript / ONNX / int8 ONNX with all decoding metadata inside"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="model checkpoint (final.pt)")
    p.add_argument("--graph", required=True, help="graph dir (HCLG.fst, words.txt, graph.json)")
    p.add_argument("--out", required=True, help="export directory to write")
    p.add_argument("--data", help="data dir whose features give the global CMVN stats "
                   "(default: the stats stored in the checkpoint)")
    p.add_argument("--hmm", help="HMM json (default: the one GRAPH/graph.json records, else "
                   "GRAPH/../final.hmm.json)")
    p.add_argument("--words", help="words.txt (default: GRAPH/words.txt)")
    p.add_argument("--priors", help="priors.txt (default: the priors stored in the checkpoint)")
    p.add_argument("--acwt", default="0.1",
                   help="acoustic scale, or a tune.json / decode.json to read it from (default 0.1)")
    p.add_argument("--word-penalty", type=field_arg_type(DecodeConfig, "word_penalty"), default=None,
                   help="word insertion penalty baked into the graph (default: from --acwt file, else 0)")
    p.add_argument("--beam", type=field_arg_type(DecodeConfig, "beam"), default=None,
                   help="decoding beam (default: from the graph's pdf count, as decode's: acoustic-kd plan)")
    p.add_argument("--max-active", type=field_arg_type(DecodeConfig, "max_active"), default=None,
                   help="max active tokens (default: from the graph's pdf count, as decode's)")
    p.add_argument("--force", action="store_true", help="re-export a finished OUT")


def run(args: argparse.Namespace) -> int:
    if not job_from_args(ExportJob, args).run():
        print(f"{args.out}: already exported (use --force to redo)")
        return 0
    print(Path(args.out, "README.txt").read_text().split("\nProvenance")[0].rstrip())
    return 0

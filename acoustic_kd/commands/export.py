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
import json
from pathlib import Path

import numpy as np

from ..config_types import convert_scalar, field_arg_type
from ..decode.decoder import DecodeConfig
from ..decode.graph import graph_variant
from ..errors import ConfigError
from ..stage import Stage, feature_inputs

_DECODE = DecodeConfig()
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
    p.add_argument("--beam", type=field_arg_type(DecodeConfig, "beam"), default=_DECODE.beam,
                   help=f"decoding beam (default {_DECODE.beam:g}, as decode's)")
    p.add_argument("--max-active", type=field_arg_type(DecodeConfig, "max_active"),
                   default=_DECODE.max_active, help=f"max active tokens (default {_DECODE.max_active})")
    p.add_argument("--force", action="store_true", help="re-export a finished OUT")


def decoding_settings(acwt: str, word_penalty: float | None) -> tuple[float, float, float | None]:
    """(acwt, word penalty, transition scale or None) from a number or a decode-stage JSON
    (tune.json or decode.json); the transition scale is there when it was tuned on dev."""
    try:
        float(acwt)
    except ValueError:
        pass
    else:
        try:
            value = convert_scalar(float, acwt, DecodeConfig.__dataclass_fields__["acwt"].metadata)
        except ValueError as e:
            raise ConfigError(f"--acwt {acwt}: expected {e} (or a tune.json / decode.json)") from None
        return value, (word_penalty or 0.0), None
    path = Path(acwt)
    if not path.is_file():
        raise ConfigError(f"--acwt {acwt!r} is neither a number nor a file")
    d = json.loads(path.read_text())
    d = d.get("tune") or d.get("config") or d  # decode.json nests its settings
    if "acwt" not in d:
        raise ConfigError(f"{path}: no 'acwt' key (expected a tune.json or decode.json)")
    pen = d.get("word_penalty", 0.0) if word_penalty is None else word_penalty
    scale = d.get("transition_scale")
    return float(d["acwt"]), float(pen), None if scale is None else float(scale)


def stage(args: argparse.Namespace, graph: str, settings: dict) -> Stage:
    """The export stage: checkpoint, graph, HMM, words, priors, CMVN data and the tuned decoding
    settings in; OUT out."""
    g = Path(graph)
    info = json.loads((g / "graph.json").read_text()) if (g / "graph.json").exists() else {}
    acwt_file = args.acwt if Path(args.acwt).is_file() else None   # a tune.json / decode.json
    inputs = [args.checkpoint, *(g / n for n in ("HCLG.fst", "words.txt", "graph.json")),
              args.hmm, args.words, args.priors, acwt_file]
    inputs = [p for p in inputs if p is not None and Path(p).exists()]
    if not args.hmm and info.get("hmm"):   # the HMM the graph records (by the path written there)
        inputs.append((g / "graph.json", "hmm", Path(info["hmm"])))
    if args.data:
        inputs += feature_inputs(args.data, "utt2spk")
    return Stage("export", args.out, {**settings, "beam": args.beam, "max_active": args.max_active,
                                      "cmvn_data": bool(args.data), "priors": bool(args.priors)},
                 inputs=inputs,
                 code=["acoustic_kd.export.writer", "acoustic_kd.export.frontend",
                       "acoustic_kd.export.runtime", "acoustic_kd.decode.search",
                       "acoustic_kd.export.metadata", "acoustic_kd.export.readme", __name__],
                 outputs=[Path(args.out)], marker="", resumable=False)


def run(args: argparse.Namespace) -> int:
    from ..export.writer import export

    acwt, penalty, scale = decoding_settings(args.acwt, args.word_penalty)
    graph = args.graph if scale is None else str(graph_variant(args.graph, scale))
    st = stage(args, graph, {"acwt": acwt, "word_penalty": penalty, "transition_scale": scale})
    if not st.begin(args.force):
        print(f"{args.out}: already exported (use --force to redo)")
        return 0
    stats = check = None
    if args.data:
        from ..features.featureset import FeatureSet

        feats = FeatureSet(args.data, cmvn="global")
        stats = feats.global_cmvn_stats()
        check = np.concatenate([feats[u] for u in feats.utts[:5]])  # compare on real features
    priors = np.loadtxt(args.priors, dtype=np.float64, ndmin=1) if args.priors else None
    summary = export(args.checkpoint, args.out, graph, args.words, stats, acwt, args.beam,
                     args.hmm, {"cmvn_data": args.data, "priors_file": args.priors},
                     word_penalty=penalty, max_active=args.max_active, priors=priors,
                     check_feats=check)
    st.finish()
    print(Path(args.out, "README.txt").read_text().split("\nProvenance")[0].rstrip())
    return 0

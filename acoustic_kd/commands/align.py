"""Train GMM-HMMs (flat-start monophones, then tree-tied triphones) and force-align data sets.

Writes exp/mono and exp/tri (final.hmm.json, final.gmm.npz, log.jsonl, ali_<set>/ ...).
Example: acoustic-kd align --data data/train --lang data/lang --exp exp --align-sets data/dev data/test
Import Kaldi alignments instead: acoustic-kd align --import-kaldi ali.txt --num-pdfs N --out exp/ali_ext
"""

from __future__ import annotations

import argparse
import json

from ..ali import import_kaldi_alignments, write_alignments
from ..config import add_config_args, load_config, overrides_from_args
from ..errors import ConfigError
from ..gmm.run import run_align
from ..gmm.train import AlignConfig

HELP = "GMM-HMM training and forced alignment (or import Kaldi ali-to-pdf output)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="training data dir (with features)")
    p.add_argument("--lang", help="lang dir from `acoustic-kd lang`")
    p.add_argument("--exp", help="experiment dir (gets mono/ and tri/)")
    p.add_argument("--align-sets", nargs="*", default=[], help="more data dirs to align (dev, test)")
    p.add_argument("--stage", choices=["mono", "tri"], help="run only this stage")
    p.add_argument("--config", help="recipe YAML (section 'align')")
    p.add_argument("--force", action="store_true", help="redo finished stages")
    p.add_argument("--import-kaldi", metavar="FILE", help="Kaldi ali-to-pdf output (ark/scp/text)")
    p.add_argument("--num-pdfs", type=int, help="pdf count of the imported alignments")
    p.add_argument("--out", help="alignment dir for --import-kaldi")
    add_config_args(p, AlignConfig)


def run(args: argparse.Namespace) -> int:
    if args.import_kaldi:
        if not (args.num_pdfs and args.out):
            raise ConfigError("--import-kaldi needs --num-pdfs and --out")
        alis = import_kaldi_alignments(args.import_kaldi, args.num_pdfs)
        write_alignments(args.out, alis, args.num_pdfs)
        print(f"{args.out}: imported {len(alis)} alignments ({args.num_pdfs} pdfs)")
        return 0
    if not (args.data and args.lang and args.exp):
        raise ConfigError("align needs --data, --lang and --exp (or --import-kaldi)")
    cfg = load_config(AlignConfig, args.config, "align", overrides_from_args(args, AlignConfig))
    summary = run_align(args.data, args.lang, args.exp, cfg, args.align_sets, args.stage, args.force)
    for stage, s in summary.items():
        print(f"{stage}: {s['num_pdfs']} pdfs, {s['num_gauss']} Gaussians, "
              f"loglike/frame {s['loglike_per_iter'][0]:.2f} -> {s['loglike_per_iter'][-1]:.2f}")
        for k, v in s.items():
            if k.startswith("ali_"):
                print(f"  {k}: {json.dumps({a: v[a] for a in ('aligned', 'failed', 'avg_loglike')})}")
    if not summary:
        print("nothing to do (stages done; use --force to redo)")
    return 0

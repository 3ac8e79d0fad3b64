"""Train GMM-HMMs (flat-start monophones, then tree-tied triphones) and force-align data sets.

Writes exp/mono, exp/tri and with `--through tri2` exp/tri2 (final.hmm.json, final.gmm.npz,
log.jsonl, ali_<set>/ ...).
Example: acoustic-kd align --data data/train --lang data/lang --exp exp --align-sets data/dev data/test
Import Kaldi alignments instead: acoustic-kd align --import-kaldi ali.txt --num-pdfs N --out exp/ali_ext
Realign with a network (hybrid DNN-HMM, one checkpoint or an ensemble) through a GMM stage's HMM:
  acoustic-kd align --nnet exp/m1/final.pt [--nnet exp/m2/final.pt ...] --hmm-dir exp/tri \\
      --lang data/lang --align-sets data/train data/dev --out exp/nnet_ali [--acoustic-scale 0.1]
"""

from __future__ import annotations

import argparse
import json

from ..ali import import_kaldi_alignments, write_alignments
from ..config import add_config_args, load_config, overrides_from_args
from ..errors import ConfigError
from ..gmm.run import STAGES, run_align
from ..gmm.train import AlignConfig

HELP = "GMM-HMM training and forced alignment (or DNN realignment, or import Kaldi ali-to-pdf output)"
# the AlignConfig options that mean something to a network realignment (the rest train GMMs)
NNET_ALIGN_OPTIONS = ("beam", "retry_beam", "acoustic_scale", "self_loop_scale", "boost_silence",
                      "batch_size")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="training data dir (with features)")
    p.add_argument("--lang", help="lang dir from `acoustic-kd lang`")
    p.add_argument("--exp", help="experiment dir (gets mono/, tri/ and with --through tri2, tri2/)")
    p.add_argument("--align-sets", nargs="*", default=[], help="more data dirs to align (dev, test)")
    p.add_argument("--stage", choices=list(STAGES), help="run only this stage")
    p.add_argument("--through", choices=list(STAGES), default="tri",
                   help="last GMM stage to train: tri (Δ triphones, default) or tri2 (LDA+MLLT)")
    p.add_argument("--config", help="recipe YAML (section 'align')")
    p.add_argument("--force", action="store_true", help="redo finished stages")
    p.add_argument("--import-kaldi", metavar="FILE", help="Kaldi ali-to-pdf output (ark/scp/text)")
    p.add_argument("--num-pdfs", type=int, help="pdf count of the imported alignments")
    p.add_argument("--out", help="output dir for --import-kaldi (alignment dir) or --nnet "
                   "(gets ali_<set>/ per --align-sets dir)")
    p.add_argument("--nnet", action="append", default=[], metavar="CKPT",
                   help="align with this network checkpoint (final.pt) instead of training GMMs; "
                        "repeat for an ensemble")
    p.add_argument("--hmm-dir", help="with --nnet: GMM stage dir whose final.hmm.json gives the "
                   "HMM the network was trained on (e.g. exp/tri)")
    p.add_argument("--combine", default="arithmetic", choices=["arithmetic", "geometric"],
                   help="with several --nnet: ensemble combination rule")
    p.add_argument("--priors", help="with --nnet: priors.txt (default: the checkpoint's priors)")
    add_config_args(p, AlignConfig)


def run_nnet(args: argparse.Namespace) -> int:
    """`--nnet`: realign --align-sets with network pseudo log-likelihoods through --hmm-dir's HMM."""
    from ..gmm.nnet_align import run_nnet_align

    clash = [o for o, v in (("--data", args.data), ("--exp", args.exp), ("--stage", args.stage),
                            ("--import-kaldi", args.import_kaldi), ("--num-pdfs", args.num_pdfs))
             if v is not None]
    clash += ["--" + k.replace("_", "-") for k, v in overrides_from_args(args, AlignConfig).items()
              if v is not None and k not in NNET_ALIGN_OPTIONS]
    if clash:
        raise ConfigError(f"--nnet realigns with a trained network; {', '.join(clash)} belong to GMM "
                          "training or import and cannot be combined with it (DNN alignment takes "
                          "--hmm-dir, --lang, --align-sets, --out and "
                          + ", ".join("--" + o.replace("_", "-") for o in NNET_ALIGN_OPTIONS) + ")")
    if not (args.hmm_dir and args.lang and args.align_sets and args.out):
        raise ConfigError("--nnet needs --hmm-dir, --lang, --align-sets and --out")
    over = {k: v for k, v in overrides_from_args(args, AlignConfig).items() if k in NNET_ALIGN_OPTIONS}
    cfg = load_config(AlignConfig, args.config, "align", over)
    summary = run_nnet_align(args.nnet, args.hmm_dir, args.lang, args.align_sets, args.out, cfg,
                             args.combine, args.priors, args.force)
    for name, s in summary.items():
        if s.get("skipped"):
            print(f"ali_{name}: done already (use --force to redo)")
            continue
        print(f"ali_{name}: {s['aligned']} aligned, {s['failed']} failed {s['failed_reasons']}, "
              f"avg pseudo-loglike/frame {s['avg_loglike']:.3f}, "
              f"{s.get('x_real_time', 0):g}x real time")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.nnet:
        return run_nnet(args)
    for opt, v in (("--hmm-dir", args.hmm_dir), ("--priors", args.priors)):
        if v is not None:
            raise ConfigError(f"{opt} only applies to DNN realignment (--nnet CKPT)")
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
    summary = run_align(args.data, args.lang, args.exp, cfg, args.align_sets, args.stage, args.force,
                        args.through)
    for stage, s in summary.items():
        print(f"{stage}: {s['num_pdfs']} pdfs, {s['num_gauss']} Gaussians, "
              f"loglike/frame {s['loglike_per_iter'][0]:.2f} -> {s['loglike_per_iter'][-1]:.2f}")
        for k, v in s.items():
            if k.startswith("ali_"):
                print(f"  {k}: {json.dumps({a: v[a] for a in ('aligned', 'failed', 'avg_loglike')})}")
    if not summary:
        print("nothing to do (stages done; use --force to redo)")
    return 0

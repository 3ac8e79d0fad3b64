"""Run the ensemble members at temperature T over a transfer set and store top-k soft targets.

The transfer set is any data dir with features (labelled or not). Members are combined by the
arithmetic mean of their tempered probabilities or the normalised geometric mean (softmax of the
mean logits / T); the k largest probabilities per frame are stored as uint16 ids + float16 probs
(k·4 bytes per frame vs 4·P dense), in resumable shards, with metadata (T, k, rule, members).

--nj N splits the shards still to do into N jobs (--backend local: processes; slurm: sbatch
jobs; logs in OUT/log/soft_targets.J.log); the store equals --nj 1's byte for byte.

Example:  acoustic-kd soft-targets --members exp/members/m*/final.pt --data data/train \\
              --T 2 --k 20 --rule arithmetic --out exp/ensemble/soft --nj 2
"""

from __future__ import annotations

import argparse

from ..config import add_config_args, job_from_args, overrides_from_args
from ..config_types import positive_int
from ..distill.soft_targets import SoftTargetConfig, SoftTargetsJob

HELP = "store the ensemble's temperature-T soft targets (top-k shards) for distillation"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--members", nargs="+", required=True, help="member checkpoints (final.pt)")
    parser.add_argument("--data", required=True, help="transfer-set data dir (with feats.scp)")
    parser.add_argument("--out", required=True, help="output dir, e.g. exp/ensemble/soft")
    parser.add_argument("--config", default=None, help="recipe YAML (`soft_targets:` section; "
                        "T defaults to the `distill:` section's)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--force", action="store_true", help="recompute finished shards")
    parser.add_argument("--nj", type=positive_int, default=1,
                        help="jobs that compute the shards (contiguous parts, the cores split "
                             "between them; default: 1, in this process)")
    parser.add_argument("--backend", choices=("local", "slurm"), default="local",
                        help="run the --nj jobs as local processes or submit them with sbatch")
    parser.add_argument("--slurm-opts", default="", help="extra sbatch options, e.g. '-p cpu'")
    add_config_args(parser, SoftTargetConfig)


def run(args: argparse.Namespace) -> int:
    job = job_from_args(SoftTargetsJob, args, options=overrides_from_args(args, SoftTargetConfig))
    meta = job.run()
    print(f"{args.out}: {meta['num_frames']} frames, T={meta['T']}, k={meta['k']}, {meta['rule']}, "
          f"{len(meta['members'])} members: {meta['bytes_per_frame']} bytes/frame vs "
          f"{meta['dense_bytes_per_frame']} dense ({100 * meta['ratio']:.1f}%)")
    return 0

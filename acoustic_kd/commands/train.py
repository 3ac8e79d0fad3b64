"""Train one frame-level DNN acoustic model (an ensemble member) on hard alignment targets.

Reads features (CMVN on the fly) and tied-state alignments, trains with early stopping on dev
frame accuracy, and writes OUT/final.pt (best dev weights + everything needed to rebuild and use
the model), epoch-N.pt, train_log.jsonl and info.json. An interrupted run resumes where it
stopped; a finished one is skipped unless --force. Options: defaults < the `model:` / `train:` /
`augment:` sections of --config < the command-line options below. Runs DDP unchanged under torchrun.

Example:  acoustic-kd train --train-data data/train --train-ali exp/tri/ali_train \\
              --dev-data data/dev --dev-ali exp/tri/ali_dev --out exp/members/m1 --seed 1
"""

from __future__ import annotations

import argparse

from ..config import add_config_args, job_from_args
from ..nnet.stage import SECTIONS, TrainJob, section_options
from ..plan import MEMBER_PLAN

HELP = "train a frame-level DNN (MLP/TDNN) on alignments; resumable, DDP under torchrun"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train-data", required=True, help="training data dir (with feats.scp)")
    parser.add_argument("--train-ali", required=True, help="training alignment dir (ali.scp)")
    parser.add_argument("--dev-data", default=None, help="dev data dir (model selection)")
    parser.add_argument("--dev-ali", default=None, help="dev alignment dir")
    parser.add_argument("--out", required=True, help="output dir, e.g. exp/members/m1")
    parser.add_argument("--config", default=None, help="recipe YAML (`model:` and `train:` sections)")
    parser.add_argument("--force", action="store_true", help="retrain from scratch")
    for section, cls in SECTIONS.items():
        add_config_args(parser, cls, planned=MEMBER_PLAN if section == "train" else ())


def run(args: argparse.Namespace) -> int:
    job = job_from_args(TrainJob, args, options=section_options(args))
    print(job.summary(job.run()))
    return 0

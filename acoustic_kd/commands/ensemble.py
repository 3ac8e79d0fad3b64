"""Train K ensemble members in parallel and evaluate them and their combinations.

Each member is an `acoustic-kd train` job in OUT/mK (seed base+K-1; optionally cycling
architectures, or one data order for all) run by the job runner, --nj at a time, with the cores
split between them (or as Slurm jobs). Then every member and both combinations (arithmetic mean of
probabilities, normalised geometric mean) are scored by frame accuracy and cross-entropy on the
dev (and test) set against the alignments: OUT/eval.json and OUT/eval.txt. Finished members are
skipped, interrupted ones resume; the evaluation is redone when a member or a data set changed.
--eval-only only evaluates existing members.

Example:  acoustic-kd ensemble --num-members 5 --nj 2 --train-data data/train \\
              --train-ali exp/tri/ali_train --dev-data data/dev --dev-ali exp/tri/ali_dev \\
              --test-data data/test --test-ali exp/tri/ali_test --config conf/fsdd.yaml --out exp/members
"""

from __future__ import annotations

import argparse

from ..config import add_config_args, job_from_args
from ..config_types import nonnegative_int, positive_int
from ..ensemble.combine import RULES
from ..ensemble.evaluate import format_table
from ..ensemble.stage import EnsembleJob
from ..errors import ConfigError
from ..nnet.stage import SECTIONS, section_options
from ..plan import MEMBER_PLAN

HELP = "train K DNN members as parallel jobs, combine and evaluate them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num-members", type=positive_int, default=5, help="K (default: 5)")
    parser.add_argument("--nj", type=positive_int, default=1, help="members trained at once (default: 1)")
    parser.add_argument("--out", required=True, help="ensemble dir, e.g. exp/members")
    parser.add_argument("--train-data", help="training data dir")
    parser.add_argument("--train-ali", help="training alignment dir")
    parser.add_argument("--dev-data", required=True, help="dev data dir")
    parser.add_argument("--dev-ali", required=True, help="dev alignment dir")
    parser.add_argument("--test-data", default=None, help="test data dir (evaluation only)")
    parser.add_argument("--test-ali", default=None, help="test alignment dir")
    parser.add_argument("--config", default=None, help="recipe YAML passed to every member")
    parser.add_argument("--seed", type=nonnegative_int, default=1, help="seed of member 1 (default: 1)")
    parser.add_argument("--archs", nargs="+", default=None,
                        help="architectures cycled over members, e.g. mlp tdnn (default: config)")
    parser.add_argument("--data-order", choices=("seed", "fixed"), default="seed",
                        help="'fixed': one frame order for all (members differ by init only)")
    parser.add_argument("--rules", nargs="+", choices=RULES, default=list(RULES))
    parser.add_argument("--eval-only", action="store_true", help="only evaluate existing members")
    parser.add_argument("--force", action="store_true",
                        help="retrain every member and re-evaluate, even when nothing changed")
    parser.add_argument("--backend", choices=("local", "slurm"), default="local")
    parser.add_argument("--slurm-opts", default="", help="extra sbatch options")
    parser.add_argument("train_options", nargs=argparse.REMAINDER,
                        help="after `--`: model/train/augment options of every member (as "
                             "`acoustic-kd train` takes them)")


def member_options(argv: list[str]) -> dict:
    """The members' model/train/augment options given after `--`, as `TrainJob.options`."""
    p = argparse.ArgumentParser(prog="acoustic-kd ensemble ... --", add_help=False)
    for section, cls in SECTIONS.items():
        add_config_args(p, cls, planned=MEMBER_PLAN if section == "train" else ())
    ns, rest = p.parse_known_args([a for a in argv if a != "--"])
    if rest:
        raise ConfigError(f"after `--`: {' '.join(rest)} are not model/train/augment options")
    return section_options(ns)


def run(args: argparse.Namespace) -> int:
    job = job_from_args(EnsembleJob, args, train_options=member_options(args.train_options))
    print(format_table(job.run()), end="")
    print(f"-> {args.out}/eval.json")
    return 0

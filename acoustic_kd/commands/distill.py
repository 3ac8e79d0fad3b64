"""Train a student on the ensemble's soft targets (or, with --alpha 1, its hard-target control).

Loss α·CE(hard) + (1−α)·T²·KL(p_teacher,T ‖ p_student,T). The teacher is either a cached store
(--soft, from `acoustic-kd soft-targets`) or the members themselves (--online --members ...), which
run on exactly the augmented batch the student sees. The hard control is this same command with
--alpha 1: same data, augmentation, epochs, optimiser and seed. Options: defaults (epochs and batch
size from the corpus: acoustic-kd plan) < the `student:`, `train:`, `distill:`, `augment:` sections
of --student-config < the command line.

Examples:
  acoustic-kd distill --soft exp/ensemble/soft --train-data data/train \\
      --train-ali exp/tri/ali_train --dev-data data/dev --dev-ali exp/tri/ali_dev \\
      --student-config conf/student.yaml --out exp/student_kd
  acoustic-kd distill --online --members exp/members/m*/final.pt ... --out exp/student_kd
  acoustic-kd distill --alpha 1 --members exp/members/m*/final.pt ... --out exp/control
"""

from __future__ import annotations

import argparse

from ..config import add_config_args, job_from_args
from ..distill.stage import SECTIONS, DistillJob, section_options
from ..plan import STUDENT_PLAN

HELP = "distill the ensemble into a student (cached or online teacher); --alpha 1 = hard control"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--soft", default=None, help="soft-target dir (cached teacher)")
    parser.add_argument("--members", nargs="+", default=[], help="member checkpoints (--online)")
    parser.add_argument("--train-data", required=True, help="training / transfer data dir")
    parser.add_argument("--train-ali", default=None,
                        help="training alignments (omit for a transfer set without transcripts)")
    parser.add_argument("--transfer-data", default=None,
                        help="extra untranscribed data dir (online mode; KD term only)")
    parser.add_argument("--dev-data", default=None, help="dev data dir (model selection)")
    parser.add_argument("--dev-ali", default=None, help="dev alignment dir")
    parser.add_argument("--test-data", default=None, help="test data dir (frame accuracy report)")
    parser.add_argument("--test-ali", default=None, help="test alignment dir")
    parser.add_argument("--student-config", default=None,
                        help="YAML with `student:`, `train:`, `distill:`, `augment:` sections")
    parser.add_argument("--out", required=True, help="output dir, e.g. exp/student_kd")
    parser.add_argument("--force", action="store_true", help="retrain from scratch")
    parser.add_argument("--online", dest="teacher", action="store_const", const="online",
                        help="shorthand for --teacher online")
    for section in ("distill", "augment", "train", "student"):
        cls, prefix = SECTIONS[section]
        add_config_args(parser, cls, prefix=prefix, planned=STUDENT_PLAN if section == "train" else ())


def run(args: argparse.Namespace) -> int:
    job = job_from_args(DistillJob, args, options=section_options(args))
    print(job.summary(job.run()))
    return 0

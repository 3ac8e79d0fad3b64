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
  acoustic-kd distill --alpha 1 ... --out exp/student_hard
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import add_config_args, load_config, overrides_from_args, to_dict
from ..nnet.augment import AugmentConfig
from ..distill.stage import distill_stage
from ..distill.train import DistillConfig
from ..errors import ConfigError
from ..nnet.models import ModelConfig
from ..nnet.stage import TRAIN_CODE, output_paths
from ..nnet.trainer import TrainConfig
from ..plan import STUDENT_PLAN, record_plan, train_plan
from ..stage import Stage, ali_inputs, feature_inputs

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
    add_config_args(parser, DistillConfig)
    add_config_args(parser, AugmentConfig)
    add_config_args(parser, TrainConfig, planned=STUDENT_PLAN)
    add_config_args(parser, ModelConfig, prefix="student-")


def configs(args: argparse.Namespace):
    """(student ModelConfig, TrainConfig, DistillConfig, AugmentConfig): defaults < YAML < CLI."""
    y = args.student_config
    return (load_config(ModelConfig, y, "student", overrides_from_args(args, ModelConfig, "student-")),
            _train_plan(args)[0],
            load_config(DistillConfig, y, "distill", overrides_from_args(args, DistillConfig)),
            load_config(AugmentConfig, y, "augment", overrides_from_args(args, AugmentConfig)))


def _train_plan(args: argparse.Namespace):
    """TrainConfig with epochs and batch size planned from the student's --train-data where the
    config leaves them out -> (config, plan, chosen, fields)."""
    return train_plan(TrainConfig, args.student_config, "train",
                      overrides_from_args(args, TrainConfig), args.train_data, student=True)


DISTILL_CODE = [*TRAIN_CODE, "acoustic_kd.distill.train", "acoustic_kd.distill.loss",
                "acoustic_kd.distill.objective", "acoustic_kd.nnet.augment",
                "acoustic_kd.distill.stage", "acoustic_kd.ensemble.runner", "acoustic_kd.distill.store",
                "acoustic_kd.nnet.infer", "acoustic_kd.ensemble.combine", "acoustic_kd.distill.targets"]


def stage(args: argparse.Namespace) -> Stage:
    """The distill stage: the teacher (soft-target store or members), features and alignments in;
    OUT's checkpoints, log, distill.json and `.train.done` out."""
    student, train_cfg, kd, aug = configs(args)
    inputs = [args.soft, *args.members, kd.init_from or None]
    for data, ali in ((args.train_data, args.train_ali), (args.transfer_data, None),
                      (args.dev_data, args.dev_ali), (args.test_data, args.test_ali)):
        if data:
            inputs += feature_inputs(data, "utt2spk")
        if ali:
            inputs += ali_inputs(ali)
    config = {"student": to_dict(student), "train": to_dict(train_cfg), "distill": to_dict(kd),
              "augment": to_dict(aug),
              "sets": [bool(x) for x in (args.train_ali, args.transfer_data, args.dev_data,
                                         args.test_data and args.test_ali)]}
    return Stage("train", args.out, config, inputs=inputs, code=DISTILL_CODE,
                 outputs=output_paths(args.out), owner="distill")


def run(args: argparse.Namespace) -> int:
    student, train_cfg, kd, aug = configs(args)
    if bool(args.dev_data) != bool(args.dev_ali):
        raise ConfigError("--dev-data and --dev-ali go together")
    hard_only = kd.schedule(train_cfg.epochs).hard_only
    if kd.teacher == "online" and not args.members and not hard_only:
        raise ConfigError("--online needs --members exp/members/m*/final.pt")
    st = stage(args)
    record = Path(args.out) / "distill.json"
    if st.begin(args.force) or not record.exists():
        record_plan(args.out, *_train_plan(args)[1:], "student")
        res = distill_stage(student, train_cfg, kd, aug, args.train_data, args.train_ali,
                            args.dev_data, args.dev_ali, args.out, soft=args.soft,
                            members=args.members, transfer_data=args.transfer_data,
                            test_data=args.test_data, test_ali=args.test_ali, force=st.fresh)
        st.finish()
    else:
        res = json.loads(record.read_text())
    best = res["best"]
    acc = f", dev frame acc {100 * best['dev_acc']:.2f}%" if best.get("dev_acc") is not None else ""
    test = f", test {100 * res['test']['acc']:.2f}%" if "test" in res else ""
    kind = "hard-target control" if kd.alpha >= 1 and kd.alpha_final in (None, 1.0) else "student"
    print(f"{args.out}: {kind}, {res['params']} params, best epoch {best['epoch']}{acc}{test}, "
          f"{res['seconds']:.0f} s -> {res['final']}")
    return 0

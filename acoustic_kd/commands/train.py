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

from ..config import add_config_args, load_config, overrides_from_args, to_dict
from ..errors import ConfigError
from ..nnet.augment import AugmentConfig
from ..nnet.models import ModelConfig
from ..nnet.stage import TRAIN_CODE, output_paths, run_train_stage
from ..nnet.trainer import TrainConfig
from ..plan import MEMBER_PLAN, record_plan, train_plan
from ..stage import Stage, ali_inputs, feature_inputs

HELP = "train a frame-level DNN (MLP/TDNN) on alignments; resumable, DDP under torchrun"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train-data", required=True, help="training data dir (with feats.scp)")
    parser.add_argument("--train-ali", required=True, help="training alignment dir (ali.scp)")
    parser.add_argument("--dev-data", default=None, help="dev data dir (model selection)")
    parser.add_argument("--dev-ali", default=None, help="dev alignment dir")
    parser.add_argument("--out", required=True, help="output dir, e.g. exp/members/m1")
    parser.add_argument("--config", default=None, help="recipe YAML (`model:` and `train:` sections)")
    parser.add_argument("--force", action="store_true", help="retrain from scratch")
    add_config_args(parser, ModelConfig)
    add_config_args(parser, TrainConfig, planned=MEMBER_PLAN)
    add_config_args(parser, AugmentConfig)


def configs(args: argparse.Namespace) -> tuple[ModelConfig, TrainConfig, AugmentConfig]:
    """Resolved (ModelConfig, TrainConfig, AugmentConfig): defaults < YAML < command line."""
    return (load_config(ModelConfig, args.config, "model", overrides_from_args(args, ModelConfig)),
            _train_plan(args)[0],
            load_config(AugmentConfig, args.config, "augment",
                        overrides_from_args(args, AugmentConfig)))


def _train_plan(args: argparse.Namespace):
    """TrainConfig with epochs and batch size planned from --train-data where the config leaves
    them out -> (config, plan, chosen, fields)."""
    return train_plan(TrainConfig, args.config, "train", overrides_from_args(args, TrainConfig),
                      args.train_data)


def stage(args: argparse.Namespace) -> Stage:
    """The train stage: features + alignments of the training (and dev) set in, OUT's
    checkpoints, log and `.train.done` out."""
    model_cfg, train_cfg, aug_cfg = configs(args)
    inputs = [*feature_inputs(args.train_data, "utt2spk"), *ali_inputs(args.train_ali)]
    if args.dev_data:
        inputs += [*feature_inputs(args.dev_data, "utt2spk"), *ali_inputs(args.dev_ali)]
    cfg = {"model": to_dict(model_cfg), "train": to_dict(train_cfg), "dev": bool(args.dev_data)}
    if aug_cfg.enabled:  # (absent when off: signatures of runs without augmentation unchanged)
        cfg["augment"] = to_dict(aug_cfg)
    return Stage("train", args.out, cfg,
                 inputs=inputs, code=TRAIN_CODE, outputs=output_paths(args.out))


def run(args: argparse.Namespace) -> int:
    model_cfg, train_cfg, aug_cfg = configs(args)
    if bool(args.dev_data) != bool(args.dev_ali):
        raise ConfigError("--dev-data and --dev-ali go together")
    st = stage(args)
    ran = st.begin(args.force)
    if ran:
        record_plan(args.out, *_train_plan(args)[1:], "member")
    res = run_train_stage(args.train_data, args.train_ali, args.dev_data, args.dev_ali, args.out,
                          model_cfg, train_cfg, force=st.fresh, aug_cfg=aug_cfg)
    if ran:
        st.finish()
    best = res["best"]
    acc = f", dev frame acc {100 * best['dev_acc']:.2f}%" if best.get("dev_acc") is not None else ""
    print(f"{args.out}: {res['params']} params, {res['macs_per_frame']} MACs/frame, "
          f"best epoch {best['epoch']}{acc} -> {res['final']}")
    return 0

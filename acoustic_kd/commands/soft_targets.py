"""Run the ensemble members at temperature T over a transfer set and store top-k soft targets.

The transfer set is any data dir with features (labelled or not). Members are combined by the
arithmetic mean of their tempered probabilities or the normalised geometric mean (softmax of the
mean logits / T); the k largest probabilities per frame are stored as uint16 ids + float16 probs
(k·4 bytes per frame vs 4·P dense), in resumable shards, with metadata (T, k, rule, members).

Example:  acoustic-kd soft-targets --members exp/members/m*/final.pt --data data/train \\
              --T 2 --k 20 --rule arithmetic --out exp/ensemble/soft
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import add_config_args, load_config, overrides_from_args, to_dict
from ..distill.soft_targets import SoftTargetConfig
from ..distill.stage import soft_targets_stage
from ..distill.train import DistillConfig
from ..stage import Stage, feature_inputs

HELP = "store the ensemble's temperature-T soft targets (top-k shards) for distillation"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--members", nargs="+", required=True, help="member checkpoints (final.pt)")
    parser.add_argument("--data", required=True, help="transfer-set data dir (with feats.scp)")
    parser.add_argument("--out", required=True, help="output dir, e.g. exp/ensemble/soft")
    parser.add_argument("--config", default=None, help="recipe YAML (`soft_targets:` section; "
                        "T defaults to the `distill:` section's)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--force", action="store_true", help="recompute finished shards")
    add_config_args(parser, SoftTargetConfig)


def run(args: argparse.Namespace) -> int:
    # one recipe YAML serves both stages: without `soft_targets: {T: ..}` the `distill:` T is used,
    # so the cached targets are made at the temperature the student will train with
    distill_T = load_config(DistillConfig, args.config, "distill").T
    base = {"T": distill_T} if distill_T is not None else {}
    cfg = load_config(SoftTargetConfig, args.config, "soft_targets",
                      overrides_from_args(args, SoftTargetConfig), base=base)
    out = Path(args.out)
    st = Stage("soft-targets", out, {"soft_targets": to_dict(cfg)},
               inputs=[*args.members, *feature_inputs(args.data, "utt2spk")],
               code=["acoustic_kd.distill.soft_targets", "acoustic_kd.ensemble.runner",
                     "acoustic_kd.distill.store", "acoustic_kd.distill.stage", "acoustic_kd.ensemble.combine",
                     "acoustic_kd.distill.targets"],
               outputs=[out], marker="")
    if st.begin(args.force):
        meta = soft_targets_stage(args.members, args.data, args.out, cfg, device=args.device,
                                  force=st.fresh)
        st.finish()
    else:
        meta = json.loads((out / "meta.json").read_text())
    print(f"{args.out}: {meta['num_frames']} frames, T={meta['T']}, k={meta['k']}, {meta['rule']}, "
          f"{len(meta['members'])} members: {meta['bytes_per_frame']} bytes/frame vs "
          f"{meta['dense_bytes_per_frame']} dense ({100 * meta['ratio']:.1f}%)")
    return 0

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
import json
from pathlib import Path

from ..config_types import nonnegative_int, positive_int
from ..ensemble.combine import RULES
from ..ensemble.evaluate import evaluate, format_table
from ..ensemble.members import member_dirs, train_members
from ..errors import ConfigError
from ..stage import Stage, ali_inputs, feature_inputs

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
                        help="after `--`: options passed to every `acoustic-kd train` job")


def run(args: argparse.Namespace) -> int:
    if not args.eval_only:
        if not (args.train_data and args.train_ali):
            raise ConfigError("--train-data and --train-ali are needed unless --eval-only")
        shared = ["--train-data", args.train_data, "--train-ali", args.train_ali,
                  "--dev-data", args.dev_data, "--dev-ali", args.dev_ali]
        if args.config:
            shared += ["--config", args.config]
        shared += [a for a in args.train_options if a != "--"]
        if args.force:
            shared.append("--force")
        train_members(args.out, args.num_members, shared, nj=args.nj, base_seed=args.seed,
                      archs=args.archs, data_order=args.data_order, backend=args.backend,
                      slurm_opts=args.slurm_opts)
    ckpts = [d / "final.pt" for d in member_dirs(args.out, args.num_members)]
    missing = [str(c) for c in ckpts if not c.exists()]
    if missing:
        raise ConfigError(f"members not trained: {', '.join(missing)} (run without --eval-only)")
    sets = {"dev": (args.dev_data, args.dev_ali)}
    if args.test_data and args.test_ali:
        sets["test"] = (args.test_data, args.test_ali)
    out = Path(args.out)
    st = Stage("ensemble", out, {"rules": list(args.rules), "sets": list(sets)},
               inputs=[*ckpts, *(p for d, a in sets.values()
                                 for p in [*feature_inputs(d, "utt2spk"), *ali_inputs(a)])],
               code=["acoustic_kd.ensemble.evaluate", "acoustic_kd.ensemble.combine",
                     "acoustic_kd.ensemble.runner"], outputs=[out / "eval.json", out / "eval.txt"])
    if st.begin(args.force):
        res = evaluate(ckpts, sets, args.out, rules=args.rules)
        st.finish()
    else:
        res = json.loads((out / "eval.json").read_text())
    print(format_table(res), end="")
    print(f"-> {args.out}/eval.json")
    return 0

"""Print the sizes the recipe takes from a corpus, with their reasons, without training anything.

The rule (acoustic_kd/plan.py) reads the training set's hours (utt2num_frames, utt2dur, segments or
the audio headers), utterances and speakers (utt2spk), the speech phones of --lang and the words of
--dev. A stage applies the same rule to every planned option its config leaves out (or sets to
null / auto), prints what it chose and writes it to its exp dir's plan.json; a number in the config
or on the command line always wins.

  acoustic-kd plan --data data/train --lang data/lang --dev data/dev
  acoustic-kd plan --data data/train --get gmm_stage batch_size    # values only, one a line
"""

from __future__ import annotations

import argparse
import json

from ..config_types import positive_float
from ..errors import ConfigError
from ..plan import plan_for

HELP = "print the sizes (tree, Gaussians, epochs, batch, beam) the recipe derives from a corpus"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="the training data dir")
    p.add_argument("--lang", help="its lang dir (phone count: caps the tree of tiny corpora)")
    p.add_argument("--dev", help="the dev data dir (the decode-tuning subset)")
    p.add_argument("--student-hours", type=positive_float,
                   help="hours the students train on (default: 3 x the training set's: two speed copies)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument("--get", nargs="+", metavar="NAME", help="print only these values, one a line")


def format_plan(plan) -> str:
    """The plan as aligned `name  value  reason` lines, its inputs first."""
    ins = ", ".join(f"{k} {v}" for k, v in plan.inputs.items() if v is not None)
    lines = [f"corpus: {ins}"]
    for k, v in plan.choices().items():
        if v is not None:
            lines.append(f"  {k:<15} {v!s:<8} {plan.reasons.get(k, '')}")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    plan = plan_for(args.data, args.lang, args.dev, args.student_hours)
    if args.get:
        values = {k: v for k, v in plan.choices().items() if v is not None}
        bad = [k for k in args.get if k not in values]
        if bad:
            raise ConfigError(f"--get {' '.join(bad)}: not a value of this plan; choose from "
                              f"{sorted(values)}")
        print("\n".join(str(values[k]) for k in args.get))
    elif args.json:
        print(json.dumps({"inputs": plan.inputs, "choices": plan.choices(), "reasons": plan.reasons},
                         indent=2, ensure_ascii=False))
    else:
        print(format_plan(plan), end="")
    return 0

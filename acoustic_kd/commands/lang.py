"""Build a lang dir (phones, lexicon, HMM topology, OOV report, G.arpa) from training transcripts.

Example: acoustic-kd lang --data data/train --vocab-data data/dev data/test --lexicon cmudict --out data/lang
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import add_config_args, job_from_args, overrides_from_args
from ..config_types import arg_type
from ..lang.langdir import LangConfig
from ..lang.lexicon import MAX_OOV_RATE
from ..lang.stage import LangJob

HELP = "phones, lexicon, HMM topology and grammar (G.arpa) -> data/lang"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="training data dir (its text also trains G.arpa)")
    p.add_argument("--vocab-data", nargs="*", default=[],
                   help="more data dirs whose words join the vocabulary (not the grammar counts)")
    p.add_argument("--lexicon", required=True, help="lexicon file (word phone...) or 'cmudict'")
    p.add_argument("--out", required=True, help="output lang dir")
    p.add_argument("--arpa", help="use this ARPA LM as G.arpa instead of estimating one from --data "
                                  "(its words must be in the lexicon)")
    p.add_argument("--max-oov-rate", type=arg_type(float, "[0, 1]", name="fraction"),
                   default=MAX_OOV_RATE, metavar="FRACTION",
                   help="stop when more than this share of the running transcript words is not in "
                        f"the lexicon (default {MAX_OOV_RATE:g})")
    p.add_argument("--config", help="recipe YAML (section 'lang')")
    p.add_argument("--force", action="store_true", help="rebuild even if done")
    add_config_args(p, LangConfig)


def run(args: argparse.Namespace) -> int:
    job = job_from_args(LangJob, args, options=overrides_from_args(args, LangConfig))
    lang = job.run()
    if lang is None:
        print(f"{args.out}: already done (use --force to rebuild)")
        return 0
    oov = (Path(args.out) / "oov.txt").read_text().splitlines()
    cfg = job.configs()
    print(f"{args.out}: {len(lang.phones) - 1} phones, {len(lang.words) - 1} words, "
          f"{sum(len(p) for p in lang.lexicon.values())} pronunciations, {len(oov)} OOV word types "
          f"(policy {cfg.oov_policy}), G.arpa order {cfg.lm_order}")
    return 0

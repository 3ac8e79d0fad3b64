"""Write exp/RESULTS.md: frame accuracy, WER, size and speed of every system, plus PNG plots.

Rows: hard-target control, each ensemble member, the ensemble, the distilled student and its int8
export; columns: frame accuracy (dev/test), WER (dev/test), parameters, MACs per frame, real-time
factor. The table is also printed; RESULTS.md is rewritten when a result it shows changed.

  acoustic-kd report --exp exp --num-members 5
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import job_from_args
from ..config_types import positive_int
from ..report import ReportJob

HELP = "write exp/RESULTS.md (comparison table + plots) and print the table"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exp", required=True, help="experiment dir of a recipe")
    p.add_argument("--num-members", type=positive_int, default=5, help="ensemble size K (default: 5)")
    p.add_argument("--sets", nargs="+", default=["dev", "test"], help="evaluation sets")
    p.add_argument("--title", default="acoustic_kd results", help="title of RESULTS.md")
    p.add_argument("--notes", default="", help="text added under the table (e.g. the command)")
    p.add_argument("--force", action="store_true", help="rewrite even when no result changed")


def run(args: argparse.Namespace) -> int:
    print(job_from_args(ReportJob, args).run(), end="")
    print(f"(written to {Path(args.exp) / 'RESULTS.md'})")
    return 0

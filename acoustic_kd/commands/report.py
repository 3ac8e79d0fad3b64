"""Write exp/RESULTS.md: frame accuracy, WER, size and speed of every system, plus PNG plots.

Rows: hard-target control, each ensemble member, the ensemble, the distilled student and its int8
export; columns: frame accuracy (dev/test), WER (dev/test), parameters, MACs per frame, real-time
factor. The table is also printed.

  acoustic-kd report --exp exp --num-members 5
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "write exp/RESULTS.md (comparison table + plots) and print the table"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exp", required=True, help="experiment dir of a recipe")
    p.add_argument("--num-members", type=int, default=5, help="ensemble size K (default: 5)")
    p.add_argument("--sets", nargs="+", default=["dev", "test"], help="evaluation sets")
    p.add_argument("--title", default="acoustic_kd results", help="title of RESULTS.md")
    p.add_argument("--notes", default="", help="text added under the table (e.g. the command)")


def run(args: argparse.Namespace) -> int:
    from ..report import collect_rows, training_curves, write_results
    from ..errors import DataError

    exp = Path(args.exp)
    rows = collect_rows(exp, args.num_members, args.sets)
    if not rows:
        raise DataError(exp, "no trained or decoded systems found",
                        "run the recipe's training and decoding stages first")
    table = write_results(rows, args.sets, exp, args.title, args.notes,
                          training_curves(exp, args.num_members))
    print(table, end="")
    print(f"(written to {exp / 'RESULTS.md'})")
    return 0

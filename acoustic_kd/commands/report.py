"""Write exp/RESULTS.md: frame accuracy, WER, size and speed of every system, plus PNG plots.

Rows: hard-target control, each ensemble member, the ensemble, the distilled student and its int8
export; columns: frame accuracy (dev/test), WER (dev/test), parameters, MACs per frame, real-time
factor. The table is also printed; RESULTS.md is rewritten when a result it shows changed.

  acoustic-kd report --exp exp --num-members 5
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config_types import positive_int
from ..stage import Stage

HELP = "write exp/RESULTS.md (comparison table + plots) and print the table"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exp", required=True, help="experiment dir of a recipe")
    p.add_argument("--num-members", type=positive_int, default=5, help="ensemble size K (default: 5)")
    p.add_argument("--sets", nargs="+", default=["dev", "test"], help="evaluation sets")
    p.add_argument("--title", default="acoustic_kd results", help="title of RESULTS.md")
    p.add_argument("--notes", default="", help="text added under the table (e.g. the command)")
    p.add_argument("--force", action="store_true", help="rewrite even when no result changed")


def stage(args: argparse.Namespace) -> Stage:
    """The report stage: every system's checkpoint, training log and decode results in;
    RESULTS.md and plots/ out."""
    exp = Path(args.exp)
    models = [exp / "members" / f"m{i}" for i in range(1, args.num_members + 1)]
    models += [exp / "student_hard", exp / "student_kd"]
    inputs = [d / n for d in models for n in ("final.pt", "train_log.jsonl")]
    inputs += [d / n for d in sorted((exp / "decode").glob("*_*")) if d.is_dir()
               for n in ("wer", "cer", "frame_acc", "decode.json")]
    inputs += sorted(exp.glob("*/SEEDS.md"))
    return Stage("report", exp, {"num_members": args.num_members, "sets": list(args.sets),
                                 "title": args.title, "notes": args.notes},
                 inputs=[p for p in inputs if p.exists()], code=["acoustic_kd.report"],
                 outputs=[exp / "RESULTS.md", exp / "plots"], resumable=False)


def run(args: argparse.Namespace) -> int:
    from ..report import collect_rows, format_table, kept_share, training_curves, write_results
    from ..errors import DataError

    exp = Path(args.exp)
    rows = collect_rows(exp, args.num_members, args.sets)
    if not rows:
        raise DataError(exp, "no trained or decoded systems found",
                        "run the recipe's training and decoding stages first")
    st = stage(args)
    if st.begin(args.force):
        table = write_results(rows, args.sets, exp, args.title, args.notes,
                              training_curves(exp, args.num_members))
        st.finish()
    else:
        table = format_table(rows, args.sets)
        share = kept_share(rows, args.sets)
        table += f"\n{share}\n" if share else ""
    print(table, end="")
    print(f"(written to {exp / 'RESULTS.md'})")
    return 0

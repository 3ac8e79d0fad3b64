"""Measure synth_digits generation speed (x real time) and print the corpus figures.

Usage: python bench/bench_synth.py [--out DIR] [--nj N] [--num-train N --num-dev N --num-test N]
[--seed S] [--check-determinism]. Prints counts, hours and speakers per split, wall time and audio
seconds per wall second; with --check-determinism regenerates into a second directory and compares
every wav and data-dir file byte for byte (the `.done` markers hold a timestamp and are skipped).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import tempfile
import time
from pathlib import Path

from acoustic_kd.corpora.synth_digits import SPLITS, prepare_synth_digits
from acoustic_kd.utils import read_table


def _summary(out: dict[str, Path]) -> tuple[float, list[str]]:
    total, lines = 0.0, []
    for split in SPLITS:
        durs = [float(v) for _, v, _ in read_table(out[split] / "utt2dur")]
        spks = {v for _, v, _ in read_table(out[split] / "utt2spk")}
        total += sum(durs)
        lines.append(f"{split:5s}: {len(durs):5d} utts  {sum(durs) / 3600:.3f} h  {len(spks):4d} speakers  "
                     f"mean {sum(durs) / max(1, len(durs)):.2f} s")
    return total, lines


def _same_tree(a: Path, b: Path) -> list[str]:
    """Relative paths of files that differ (or exist on one side only), ignoring `.done` markers."""
    files = lambda root: {p.relative_to(root) for p in root.rglob("*") if p.is_file() and p.name != ".done"}
    fa, fb = files(a), files(b)
    diff = [str(p) for p in sorted(fa ^ fb)]
    diff += [str(p) for p in sorted(fa & fb) if not filecmp.cmp(a / p, b / p, shallow=False)]
    return diff


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="output dir (default: a temporary dir)")
    ap.add_argument("--nj", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num-train", type=int, default=1500)
    ap.add_argument("--num-dev", type=int, default=200)
    ap.add_argument("--num-test", type=int, default=200)
    ap.add_argument("--check-determinism", action="store_true")
    args = ap.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="bench_synth."))
    sizes = dict(num_train=args.num_train, num_dev=args.num_dev, num_test=args.num_test)
    t0 = time.perf_counter()
    out = prepare_synth_digits(root / "a", seed=args.seed, nj=args.nj, force=True, **sizes)
    wall = time.perf_counter() - t0
    audio_s, lines = _summary(out)
    print("\n".join(lines))
    print(f"generated {audio_s / 3600:.3f} h in {wall:.1f} s with nj={args.nj}: {audio_s / wall:.0f}x real time")
    if args.check_determinism:
        # regenerate in the same place (wav.scp holds absolute paths) after moving the first run aside
        shutil.rmtree(root / "first", ignore_errors=True)
        shutil.move(str(root / "a"), str(root / "first"))
        prepare_synth_digits(root / "a", seed=args.seed, nj=max(1, 3 - args.nj), force=True, **sizes)
        diff = _same_tree(root / "first", root / "a")
        print(f"determinism (seed {args.seed}, nj {args.nj} vs {max(1, 3 - args.nj)}): "
              + ("identical" if not diff else f"{len(diff)} files differ, e.g. {diff[:3]}"))
    if args.out is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python
"""Run every benchmark in this folder, one after another, and write bench/RESULTS.md.

Each bench script measures its figures as ratios against a reference measured in the same run
(timings on a shared machine vary up to ~2x between runs; ratios are stable) and writes
bench/results/<name>.json. This runner collects those files into one Markdown summary with the
machine description.

    python bench/run_all.py [--only features train ...] [--skip scaling]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
#: name -> (script, extra args). Order: cheap first.
BENCHES = {
    "features": ("bench_features.py", []),
    "soft_targets": ("bench_soft_targets.py", []),
    "train": ("bench_train.py", []),
    "decode": ("bench_decode.py", []),
    "deploy": ("bench_deploy.py", []),
    "memory": ("bench_memory.py", []),
    "scaling": ("bench_scaling.py", []),
}


def machine() -> dict:
    """What the numbers were measured on."""
    import torch

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform()}


def _flatten(d, prefix="") -> list[tuple[str, object]]:
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out += _flatten(v, key + ".")
        elif isinstance(v, (int, float, str, bool)) or v is None:
            out.append((key, v))
    return out


def summary(names: list[str], status: dict[str, str]) -> str:
    m = machine()
    lines = ["# Benchmark results", "",
             f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, torch {m['torch']}.",
             f"Regenerate with `make bench` (= `python bench/run_all.py`); written {time.strftime('%Y-%m-%d %H:%M')}.",
             ""]
    for name in names:
        lines.append(f"## {name} ({status.get(name, 'not run')})")
        path = RESULTS / f"{name}.json"
        if not path.exists():
            lines += ["", "no results file", ""]
            continue
        data = json.loads(path.read_text())
        if isinstance(data.get("summary"), str):
            lines += ["", data["summary"], ""]
        lines += ["", "| key | value |", "|---|---|"]
        for k, v in _flatten(data):
            if k in ("summary",) or k.startswith("machine"):
                continue
            lines.append(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="run only these benches")
    ap.add_argument("--skip", nargs="*", default=[], help="skip these benches")
    args = ap.parse_args()
    names = [n for n in BENCHES if (not args.only or n in args.only) and n not in args.skip]
    RESULTS.mkdir(exist_ok=True)
    status = {}
    for name in names:
        script, extra = BENCHES[name]
        if not (HERE / script).exists():
            status[name] = "script missing"
            continue
        print(f"== {name}: {script}", flush=True)
        t0 = time.time()
        rc = subprocess.call([sys.executable, str(HERE / script), *extra], cwd=HERE.parent)
        status[name] = f"exit {rc}, {time.time() - t0:.0f} s"
    text = summary(list(BENCHES), status)
    (HERE / "RESULTS.md").write_text(text + "\n")
    print(f"wrote {HERE / 'RESULTS.md'}")
    return 0 if all(s.startswith("exit 0") for n, s in status.items() if n in names) else 1


if __name__ == "__main__":
    sys.exit(main())

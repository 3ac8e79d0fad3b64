#!/usr/bin/env python
"""`acoustic-kd align --nj 1` against `--nj N` on one data dir, same machine, one after the other:
wall and CPU time (the jobs' included) and their ratio, and whether the results agree: per GMM
stage, trees identical, Gaussians identical in number and close in value (max relative
difference), alignments of every aligned set identical (utterances and frames that differ),
LDA+MLLT and fMLLR transforms (max absolute difference).

    python bench/bench_align_nj.py --data data/train --lang data/lang --config conf/mboshi.yaml \\
        --through tri2 --out exp_nj [--nj 2] [--backend slurm --slurm-opts '-p local'] \\
        [--align-sets data/dev data/test] [--align-opts '--tri2-leaves 1000']

Runs `align` into OUT/nj1 and OUT/njN (refused when they exist: a finished stage would be skipped,
not timed), prints one line per stage and the wall-time ratio, writes OUT/bench_align_nj.json.
On a busy machine the wall ratio says little: the CPU split (the driver's own CPU, each worker's
from its log) gives an idle-machine estimate, (driver + busiest worker per pool) / nj=1's CPU.
With --backend slurm only the --nj N run uses Slurm; --nj 1 runs in this machine's process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from acoustic_kd.ali import read_alignments  # noqa: E402
from acoustic_kd.gmm.fmllr import load_transforms  # noqa: E402
from acoustic_kd.gmm.run import PASSES  # noqa: E402


def run_align(args, nj: int, exp: Path) -> dict:
    """One `acoustic-kd align` run (log in exp.log) -> wall and CPU seconds."""
    cmd = [sys.executable, "-c", "import sys; from acoustic_kd.cli import main; sys.exit(main())",
           "align", "--data", args.data, "--lang", args.lang, "--exp", str(exp), "--through",
           args.through, "--nj", str(nj), *(["--config", args.config] if args.config else []),
           *(["--align-sets", *args.align_sets] if args.align_sets else []),
           *shlex.split(args.align_opts)]
    if nj > 1 and args.backend != "local":
        cmd += ["--backend", args.backend, "--slurm-opts", args.slurm_opts]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                                      os.environ.get("PYTHONPATH")]))}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    with open(f"{exp}.log", "w") as log:
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    wall = time.time() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if rc != 0:
        sys.exit(f"align --nj {nj} failed (exit {rc}); see {exp}.log")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-6))) if a.size else 0.0


def compare_stage(d1: Path, d2: Path) -> dict:
    """How stage dir d2 differs from d1."""
    h1, h2 = (json.loads((d / "final.hmm.json").read_text()) for d in (d1, d2))
    g1, g2 = np.load(d1 / "final.gmm.npz"), np.load(d2 / "final.gmm.npz")
    out: dict = {"tree_identical": h1["trees"] == h2["trees"],
                 "gaussians": [int(len(g1["comp_pdf"])), int(len(g2["comp_pdf"]))]}
    if np.array_equal(g1["comp_pdf"], g2["comp_pdf"]):
        out["gmm_max_rel_diff"] = max(_rel(g1[k], g2[k]) for k in ("means", "vars", "log_weights"))
    for ali in sorted(p.name for p in d1.glob("ali_*") if (d2 / p.name).exists()):
        a1, a2 = read_alignments(d1 / ali), read_alignments(d2 / ali)
        common = sorted(set(a1) & set(a2))
        diff = [u for u in common if not np.array_equal(a1[u], a2[u])]
        frames = sum(len(a1[u]) for u in common)
        bad = sum(int((a1[u] != a2[u]).sum()) if len(a1[u]) == len(a2[u]) else len(a1[u])
                  for u in diff)
        out[ali] = {"utts": len(common), "only_one": len(set(a1) ^ set(a2)),
                    "utts_differ": len(diff), "frames_differ": bad, "frames": frames}
        if (d1 / ali / "trans.npz").exists():
            t1, t2 = load_transforms(d1 / ali / "trans.npz"), load_transforms(d2 / ali / "trans.npz")
            out[ali]["fmllr_max_abs_diff"] = max(float(np.abs(t1[s] - t2[s]).max()) for s in t1)
    if (d1 / "final.mat.npy").exists():
        out["mat_max_abs_diff"] = float(np.abs(np.load(d1 / "final.mat.npy")
                                               - np.load(d2 / "final.mat.npy")).max())
    for d, k in ((d1, "train_s_nj1"), (d2, "train_s_njN")):
        out[k] = json.loads((d / "summary.json").read_text()).get("train_seconds")
    return out


def worker_cpu(exp: Path) -> dict:
    """CPU seconds (user + system) of each pool's worker jobs, from their logs -> {pool: [s, ...]}."""
    out: dict[str, list[float]] = {}
    for log in sorted(exp.glob("**/log/*.log")):
        m = re.search(r"# worker CPU: ([\d.]+) s user, ([\d.]+) s system", log.read_text())
        if m:
            out.setdefault(log.name.rsplit(".", 2)[0], []).append(float(m[1]) + float(m[2]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--lang", required=True)
    ap.add_argument("--config")
    ap.add_argument("--through", default="tri", choices=PASSES)
    ap.add_argument("--align-sets", nargs="*", default=[])
    ap.add_argument("--nj", type=int, default=2)
    ap.add_argument("--backend", default="local", choices=("local", "slurm"))
    ap.add_argument("--slurm-opts", default="")
    ap.add_argument("--align-opts", default="", help="more `align` options, e.g. '--mono-iters 10'")
    ap.add_argument("--out", required=True, help="gets nj1/ and nj<N>/ (must not exist)")
    args = ap.parse_args()
    out = Path(args.out)
    exps = {1: out / "nj1", args.nj: out / f"nj{args.nj}"}
    taken = [str(e) for e in exps.values() if e.exists()]
    if taken:
        sys.exit(f"{', '.join(taken)} exist(s): give another --out (finished stages would be "
                 "skipped, not timed)")
    out.mkdir(parents=True, exist_ok=True)
    times = {nj: run_align(args, nj, e) for nj, e in exps.items()}
    stages = {s: compare_stage(exps[1] / s, exps[args.nj] / s)
              for s in PASSES[:PASSES.index(args.through) + 1]}
    ratio = times[args.nj]["wall_s"] / max(times[1]["wall_s"], 1e-9)
    pools = worker_cpu(exps[args.nj])
    busiest = sum(max(v) for v in pools.values())
    parent = times[args.nj]["cpu_s"] - sum(sum(v) for v in pools.values())
    for s, r in stages.items():
        alis = {k: v for k, v in r.items() if k.startswith("ali_")}
        print(f"{s}: tree {'identical' if r['tree_identical'] else 'DIFFERS'}, Gaussians "
              f"{r['gaussians']}, max rel diff {r.get('gmm_max_rel_diff', float('nan')):.1e}, "
              f"train {r['train_s_nj1']} s -> {r['train_s_njN']} s; " + "; ".join(
                  f"{k}: {v['utts_differ']}/{v['utts']} utts, {v['frames_differ']}/{v['frames']} "
                  "frames differ" for k, v in alis.items()))
    print(f"nj=1: {times[1]['wall_s']} s wall, {times[1]['cpu_s']} s CPU; nj={args.nj} "
          f"({args.backend}): {times[args.nj]['wall_s']} s wall, {times[args.nj]['cpu_s']} s CPU; "
          f"wall-time ratio {ratio:.3f}")
    if pools:
        # on idle cores the run takes about its own CPU time plus each pool's busiest worker
        print(f"nj={args.nj} CPU: {parent:.1f} s in the driver, workers " + ", ".join(
              f"{k} {'+'.join(f'{x:.1f}' for x in v)} s" for k, v in pools.items())
              + f"; idle-machine estimate {(parent + busiest) / max(times[1]['cpu_s'], 1e-9):.3f} "
              "of nj=1 (driver CPU + busiest worker of each pool, over nj=1's CPU)")
    result = {"args": vars(args), "worker_cpu_s": pools, "times": {str(k): v for k, v in times.items()},
              "wall_ratio": round(ratio, 4), "stages": stages, "cpus": os.cpu_count(),
              "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    (out / "bench_align_nj.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

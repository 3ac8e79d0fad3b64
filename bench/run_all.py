#!/usr/bin/env python
"""Run every benchmark in this folder, one after another, and write bench/RESULTS.md.

Each bench script measures its figures as ratios against a reference measured in the same run
(timings on a shared machine vary up to ~2x between runs; ratios are stable) and writes
bench/results/<name>.json. This runner collects those files into one Markdown summary with the
machine description.

    python bench/run_all.py [--only features train ...] [--skip scaling] [--timeout 900]
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
    "arch": ("bench_arch.py", []),
    "optim": ("bench_optim.py", []),
    "recipe_speed": ("bench_recipe_speed.py", []),
    "decode": ("bench_decode.py", []),
    "graph": ("bench_graph.py", []),
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
            "torch": torch.__version__, "platform": platform.platform(),
            "load": ", ".join(f"{x:.1f}" for x in os.getloadavg())}


def _flatten(d, prefix="") -> list[tuple[str, object]]:
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out += _flatten(v, key + ".")
        elif isinstance(v, (int, float, str, bool)) or v is None:
            out.append((key, v))
        elif isinstance(v, list) and len(v) <= 8 and all(isinstance(x, (int, float)) for x in v):
            out.append((key, ", ".join(f"{x:.4g}" if isinstance(x, float) else str(x) for x in v)))
    return out


def _goal(value: float, goal: float, at_least: bool = True) -> str:
    ok = value >= goal if at_least else value <= goal
    return f"{'>=' if at_least else '<='} {goal:g}: {'met' if ok else 'NOT met'}"


# Each bench's headline: (ratio figures in one line, goal check or "") from its results JSON.
def _h_features(d: dict) -> tuple[str, str]:
    return (f"stage / raw kaldi-native-fbank speed {d['ratio_cpu']:.2f} (CPU), {d['ratio_wall']:.2f} "
            f"(wall); stage {d['stage_xrt_per_core_cpu']:.0f}x real time per core",
            _goal(d["ratio_cpu"], d.get("goal_ratio", 0.6)))


def _h_soft_targets(d: dict) -> tuple[str, str]:
    parts = [f"P={r['P']} k={r['k']}: {r['bytes_per_frame']} vs {r['dense_bytes_per_frame']} B/frame "
             f"({100 * r['ratio']:.1f}%)" for r in d["rows"] if r["k"] == d.get("headline_k", 20) and r["P"] >= 1000]
    if "accuracy" in d:
        a = d["accuracy"]
        parts.append(f"frame acc top-{a['k']} - dense {100 * a['difference']:+.2f} points")
    return "; ".join(parts), ""


def _h_train(d: dict) -> tuple[str, str]:
    parts = []
    for t, r in d["by_threads"].items():
        runs = r["runs"]
        parts.append(f"{t} thr: member {runs['member_fp32']['fraction_of_fp32_peak']:.2f} / student "
                     f"{runs['student_quarter_fp32']['fraction_of_fp32_peak']:.2f} of fp32 matmul peak, "
                     f"bf16 x{r['bf16_speedup']['member']['per_cpu_s']:.2f}")
    return "; ".join(parts), ""


def _h_arch(d: dict) -> tuple[str, str]:
    parts = []
    for t, r in d["by_threads"].items():
        q, f, m = r["tdnnf_over_mlp"], r["runs"]["tdnnf"], r["runs"]["mlp"]
        parts.append(f"{t} thr: TDNN-F {f['hidden']}x{f['layers']} / MLP {m['hidden']}x{m['layers']} "
                     f"training frames/s x{q['frames_per_s']:.3f}, forward x{q['forward_frames_per_s']:.3f} "
                     f"(MACs x{q['macs_per_frame']:.1f})")
    return "; ".join(parts), ""


def _h_recipe_speed(d: dict) -> tuple[str, str]:
    parts, worst = [], []
    for t, r in d["by_threads"].items():
        parts.append(f"{t} thr: " + ", ".join(f"{n.replace('_', ' ')} {r[n]['ratio']:.2f}" for n in
                                             ("member", "student", "control", "soft_targets")))
        worst += [r[n]["ratio"] for n in ("student", "control", "soft_targets")]
    return (f"recipe / kernel frames/s at {d['num_pdfs']} pdfs: " + "; ".join(parts),
            _goal(min(worst), 0.7) + " (student, control, soft targets)")


def _d_recipe_speed(d: dict) -> list[str]:
    rows = [[t, n, round(r[n]["frames_per_s"]), round(r[n]["kernel"]["frames_per_s"]),
             round(r[n]["ratio"], 3), round(r[n]["ratio_cpu"], 3)]
            for t, r in d["by_threads"].items() for n in r]
    return _table(["threads", "path", "frames/s", "kernel frames/s", "ratio", "ratio (CPU time)"],
                  rows) + [f"`{d['command']}`, {d['frames']} frames, {d['utts']} utterances.", ""]


def _h_optim(d: dict) -> tuple[str, str]:
    fb, st = d["forward_backward_ms"], d["adamw_step_ms"]
    return (f"{d['num_pdfs']} pdfs: AdamW step / forward+backward per tensor {st['per_tensor'] / fb:.2f}, "
            f"foreach {st['foreach'] / fb:.2f}, fused {st['fused'] / fb:.2f}; step x"
            f"{(fb + st['per_tensor']) / (fb + st['fused']):.2f} fused vs per tensor"), ""


def _h_decode(d: dict) -> tuple[str, str]:
    return (f"RTF {d['rtf']:.4f} wall (forward {d['rtf_forward']:.4f}, search {d['rtf_search']:.4f}), "
            f"{d['rtf_cpu']:.4f} CPU", _goal(d["rtf"], d.get("goal_rtf", 0.05), at_least=False))


def _h_graph(d: dict) -> tuple[str, str]:
    parts = []
    for order in sorted({r["lm_order"] for r in d["rows"]}):
        by = {r.get("variant", "det" if r["determinized"] else "plain"): r
              for r in d["rows"] if r["lm_order"] == order}
        a, b = by["plain"], by["det"]
        parts.append(f"order {order}, {b['words']} words: det/plain states "
                     f"{b['num_states'] / a['num_states']:.2f}, arcs {b['num_arcs'] / a['num_arcs']:.2f}, "
                     f"search CPU {b['search_cpu_s'] / a['search_cpu_s']:.2f}")
    return "; ".join(parts), ""


def _h_deploy(d: dict) -> tuple[str, str]:
    s = d["speedup"]
    worst = min(s["int8_student_vs_ensemble_onnx_fp32"], s["int8_student_vs_ensemble_torch_fp32"])
    return (f"int8 student vs fp32 ensemble (K={d['members']['k']}): "
            f"x{s['int8_student_vs_ensemble_onnx_fp32']:.1f} (onnx), "
            f"x{s['int8_student_vs_ensemble_torch_fp32']:.1f} (torch); int8 vs fp32 student "
            f"x{s['int8_vs_fp32_student_onnx']:.2f}", _goal(worst, d.get("goal_int8_vs_ensemble", 10)))


def _h_memory(d: dict) -> tuple[str, str]:
    parts = []
    for st in d["sets"]:
        g = {r["kind"]: r["growth_over_data"] for r in st["runs"]}
        parts.append(f"{st['data_bytes'] / 1e6:.0f} MB: RSS growth / data streaming "
                     f"{g.get('streaming', float('nan')):.2f} vs in-memory "
                     f"{g.get('memory', float('nan')):.2f}")
    return "; ".join(parts), ""


def _h_scaling(d: dict) -> tuple[str, str]:
    e = d["exponent_cpu"]
    return (f"size^b, b: features {e['features']:.2f}, train epoch {e['train']:.2f}, decode "
            f"{e['decode']:.2f} ({d['factors'][-1]}x utterances = {d['size_ratio_largest']:.2f}x frames)", "")


def _table(header: list[str], rows: list[list]) -> list[str]:
    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows] + [""])


# Compact tables of the figures behind a headline (benches whose JSON nests runs).
def _d_soft_targets(d: dict) -> list[str]:
    out = _table(["P", "k", "bytes/frame", "dense bytes/frame", "ratio", "t(top-k)/t(ref)",
                  "t(dense)/t(ref)"],
                 [[r["P"], r["k"], r["bytes_per_frame"], r["dense_bytes_per_frame"], r["ratio"],
                   r["t_topk_over_ref"], r["t_dense_over_ref"]] for r in d["rows"]])
    if "accuracy" in d:
        a = d["accuracy"]
        out += _table(["student trained on", "held-out frame accuracy"],
                      [["dense teacher targets", a["dense"]],
                       [f"top-{a['k']} teacher targets", a["topk"]],
                       ["difference (top-k - dense)", a["difference"]], ["(teacher)", a["teacher"]]])
    return out


def _d_train(d: dict) -> list[str]:
    rows = []
    for t, r in d["by_threads"].items():
        for name, run in r["runs"].items():
            rows.append([t, name, f"{run['hidden']}x{run['layers']}", run["params"],
                         round(run["frames_per_s"]), run["fraction_of_fp32_peak"],
                         run["fraction_of_fp32_peak_wall"]])
    peaks = [f"{t} threads: fp32 peak {r['fp32_matmul_peak']['per_cpu_s'] / 1e9:.0f} GFLOP per CPU-s, "
             f"bf16 {r['bf16_matmul_peak']['per_cpu_s'] / 1e9:.0f}" for t, r in d["by_threads"].items()]
    return _table(["threads", "run", "size", "params", "frames/s", "of fp32 peak (CPU)",
                   "of fp32 peak (wall)"], rows) + ["; ".join(peaks) + ".", ""]


def _d_graph(d: dict) -> list[str]:
    return _table(["LM order", "graph", "pdfs", "states", "arcs", "L∘G states/arcs", "det", "min",
                   "build s", "peak RSS MB", "search CPU s"],
                  [[r["lm_order"], r.get("variant", r["determinized"]), r["num_pdfs"], r["num_states"],
                    r["num_arcs"]]
                   + (["/".join(map(str, r["sizes"][k])) for k in ("LG", "LG_det", "LG_min")]
                      if r.get("sizes") else ["–", "–", "–"])
                   + [round(r["build_s"], 1), round(r["max_rss_mb"]), round(r["search_cpu_s"], 2)]
                   for r in d["rows"]])


def _d_deploy(d: dict) -> list[str]:
    base = d["frames_per_s"]["ensemble_torch_fp32"]
    return _table(["system", "frames/s", "vs torch fp32 ensemble"],
                  [[k, round(v), round(v / base, 2)] for k, v in d["frames_per_s"].items()])


def _d_memory(d: dict) -> list[str]:
    return _table(["data", "dataset", "peak RSS growth", "growth / data", "seconds"],
                  [[f"{st['data_bytes'] / 1e6:.0f} MB", r["kind"],
                    f"{r['rss_growth_bytes'] / 1e6:.1f} MB", r["growth_over_data"], r["seconds"]]
                   for st in d["sets"] for r in st["runs"]])


def _d_scaling(d: dict) -> list[str]:
    head = (["stage (CPU s)"] + [f"{u} utts, {f} frames" for u, f in zip(d["utts"], d["frames"])]
            + ["b (CPU)", "b (wall)"])
    return _table(head, [[s] + [f"{t:.2f}" for t in d["cpu_s"][s]]
                         + [d["exponent_cpu"][s], d["exponent_wall"][s]] for s in d["cpu_s"]])


DETAILS = {"soft_targets": _d_soft_targets, "train": _d_train, "recipe_speed": _d_recipe_speed, "deploy": _d_deploy,
           "graph": _d_graph, "memory": _d_memory, "scaling": _d_scaling}


HEADLINES = {"features": _h_features, "soft_targets": _h_soft_targets, "train": _h_train, "arch": _h_arch,
             "recipe_speed": _h_recipe_speed,
             "optim": _h_optim, "decode": _h_decode, "graph": _h_graph, "deploy": _h_deploy,
             "memory": _h_memory, "scaling": _h_scaling}


def _headline(name: str, data: dict) -> tuple[str, str]:
    try:
        return HEADLINES[name](data)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return "(see below)", ""


def summary(names: list[str], status: dict[str, str]) -> str:
    m = machine()
    lines = ["# Benchmark results", "",
             f"Machine: {m['cpu']}, {m['cores']} cores ({m['platform']}); Python {m['python']}, "
             f"torch {m['torch']}. Load average when written: {m['load']}.",
             "",
             f"Regenerate with `make bench` (= `python bench/run_all.py`); written "
             f"{time.strftime('%Y-%m-%d %H:%M %Z')}. Every figure is a ratio of two things measured in "
             "the same run (absolute times on a shared machine vary up to ~2x); each bench's JSON is in "
             "`bench/results/`, its method in the script's docstring.",
             "", "| bench | measured ratios | goal | run |", "|---|---|---|---|"]
    datas = {}
    for name in names:
        path = RESULTS / f"{name}.json"
        datas[name] = json.loads(path.read_text()) if path.exists() else None
        head, goal = _headline(name, datas[name]) if datas[name] else ("no results file", "")
        when = (time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
                if path.exists() else "")
        run = status.get(name, "not run now")
        if not run.startswith("exit 0") and when:   # the figures shown are from an earlier run
            run += f"; results of {when}"
        lines.append(f"| {name} | {head} | {goal} | {run} |")
    lines.append("")
    for name in names:
        data = datas[name]
        lines += [f"## {name}", "", f"`bench/{BENCHES[name][0]}` — {_doc_line(name)}", ""]
        if data is None:
            lines += ["no results file", ""]
            continue
        if isinstance(data.get("summary"), str):
            lines += [data["summary"], ""]
        if name in DETAILS:
            try:
                lines += DETAILS[name](data)
                continue
            except (KeyError, TypeError, ValueError, ZeroDivisionError):
                pass
        lines += ["<details><summary>all figures</summary>", "", "| key | value |", "|---|---|"]
        for k, v in _flatten(data):
            if k == "summary" or k.startswith(("machine", "versions")):
                continue
            lines.append(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |")
        lines += ["", "</details>", ""]
    return "\n".join(lines)


def _doc_line(name: str) -> str:
    """First line of a bench script's docstring."""
    import ast

    try:
        doc = ast.get_docstring(ast.parse((HERE / BENCHES[name][0]).read_text()))
    except (OSError, SyntaxError):
        doc = None
    return (doc or "").strip().splitlines()[0] if doc else ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="run only these benches")
    ap.add_argument("--skip", nargs="*", default=[], help="skip these benches")
    ap.add_argument("--timeout", type=float, default=900, help="seconds allowed per bench")
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
        try:
            rc = subprocess.call([sys.executable, str(HERE / script), *extra], cwd=HERE.parent,
                                 timeout=args.timeout)
            status[name] = f"exit {rc}, {time.time() - t0:.0f} s"
        except subprocess.TimeoutExpired:
            status[name] = f"timed out after {args.timeout:.0f} s"
    text = summary(list(BENCHES), status)
    (HERE / "RESULTS.md").write_text(text + "\n")
    print(f"wrote {HERE / 'RESULTS.md'}")
    return 0 if all(s.startswith("exit 0") for n, s in status.items() if n in names) else 1


if __name__ == "__main__":
    sys.exit(main())

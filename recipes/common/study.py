#!/usr/bin/env python3
"""The study tools' Python: summaries and helpers of recipes/common/*.sh and a recipe's local/
studies, on any corpus, by its directories (run from a recipe dir, or give paths).

  study.py seeds-summary --exp exp --name seeds [--opts S] [--recipe-seed S] [--ensemble NAME]
                         [--tune-once] SEED...      -> EXP/NAME/SEEDS.md (student_seeds.sh)
  study.py sweep-summary DIR --variants "name:opts|..."   -> DIR/SWEEP.md (member_sweep.sh)
  study.py ali-summary DIR --fraction F --labels "L ..." SEED...
                                                     -> DIR/COMPARE_f<F>.md (ali_compare.sh)
  study.py fraction-list --data D --ali A --fraction F --seed S --out LIST
                         the utterances `distill --train-fraction F --fraction-seed S` trains on
  study.py curves --exp exp --out PNG [--title T] [--num-members K] [--recipe-seed S]
                  [--seeds-dir DIR]                 dev frame accuracy per epoch of every model
Each summary is printed and written (atomically); the kept share comes from acoustic_kd.report.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics as st
import sys
from pathlib import Path

from acoustic_kd.decode.score import read_wer_file
from acoustic_kd.errors import AcousticKDError
from acoustic_kd.report import control_name, kept_fraction, plot_curves, read_train_log
from acoustic_kd.utils import atomic_write_text


def mean_std(xs: list[float], bare_single: bool = False) -> str:
    """'mean ± std' at 2 decimals (one value: '± 0.00', or the value alone with bare_single);
    'nan ± nan' when a value is nan (a missing run)."""
    if len(xs) == 1 and bare_single:
        return f"{xs[0]:.2f}"
    if any(math.isnan(x) for x in xs):
        return "nan ± nan"
    return f"{st.mean(xs):.2f} ± {st.stdev(xs) if len(xs) > 1 else 0:.2f}"


def _scores(d: Path) -> tuple[float, float, float]:
    """(frame accuracy, WER, CER) of a decode dir."""
    return (float((d / "frame_acc").read_text()), read_wer_file(d / "wer").rate,
            read_wer_file(d / "cer").rate)


def _seed_dirs(exp: Path, name: str, system: str, seed: str, recipe_seed: str) -> tuple[Path, Path]:
    """(training dir, test decode dir) of one system (student_kd | control) and seed of
    student_seeds.sh."""
    if seed == recipe_seed:
        r = control_name(exp) if system == "control" else system
        return exp / r, exp / "decode" / f"{r}_test"
    return exp / name / f"s{seed}" / system, exp / "decode" / name / f"{system}_s{seed}_test"


def seeds_summary(exp: Path, name: str, seeds: list[str], opts: str = "", recipe_seed: str = "",
                  ensemble: str = "ensemble", tune_once: bool = False) -> str:
    """SEEDS.md: test scores of the distilled students and their controls over `seeds` (mean ±
    std), the ensemble's, the kept share per seed and the training time; written to EXP/NAME."""
    ens = _scores(exp / "decode" / f"{ensemble}_test")
    rows: dict[str, list] = {}
    kept, kept_wer = [], []
    for s in seeds:
        kd = _scores(_seed_dirs(exp, name, "student_kd", s, recipe_seed)[1])
        hard = _scores(_seed_dirs(exp, name, "control", s, recipe_seed)[1])
        rows.setdefault("distilled student", []).append(kd)
        rows.setdefault("hard-target control", []).append(hard)
        kept.append(kept_fraction(hard[0], kd[0], ens[0]))
        kept_wer.append(kept_fraction(hard[1], kd[1], ens[1]))
    secs = {sys_: [json.loads((_seed_dirs(exp, name, sys_, s, recipe_seed)[0] / "distill.json")
                              .read_text())["seconds"] for s in seeds]
            for sys_ in ("student_kd", "control")}
    extra = f" (extra options `{opts}`)" if opts else ""
    lines = [f"Seeds {' '.join(seeds)} (students; ensemble fixed){extra}: test set, mean ± std", "",
             "| system | frame acc test % | WER test % | CER test % |", "|---|---|---|---|"]
    for system, v in rows.items():
        lines.append(f"| {system} | {mean_std([a for a, _, _ in v])} | {mean_std([w for _, w, _ in v])}"
                     f" | {mean_std([c for _, _, c in v])} |")
    lines.append(f"| ensemble (one run) | {ens[0]:.2f} | {ens[1]:.2f} | {ens[2]:.2f} |")
    lines += ["", "kept share of the ensemble's gain over the control, per seed "
              f"({' '.join(seeds)}): frame accuracy (kd − hard)/(ensemble − hard) "
              f"{' '.join(f'{k:.2f}' for k in kept)} → {mean_std(kept)}; WER (hard − kd)/(hard − "
              f"ensemble) {' '.join(f'{k:.2f}' for k in kept_wer)} → {mean_std(kept_wer)}",
              f"training wall time per student (s): distilled {mean_std(secs['student_kd'])}, "
              f"hard control {mean_std(secs['control'])}"]
    if tune_once and len(seeds) > 1:
        lines.append(f"decode scales tuned on dev for seed {seeds[0]} and reused for the other seeds")
    text = "\n".join(lines) + "\n"
    atomic_write_text(exp / name / "SEEDS.md", text)
    return text


def parse_variants(spec: str) -> list[tuple[str, str]]:
    """'name:options|name:options' -> [(name, options)] (member_sweep.sh's --variants)."""
    return [tuple(s.split(":", 1)) for s in spec.split("|")]


def sweep_summary(name: Path, variants: list[tuple[str, str]]) -> str:
    """SWEEP.md: each variant's dev frame accuracy per epoch, best epoch, and the training
    accuracy there (from <name>/<variant>/train_log.jsonl)."""
    lines = ["| variant | options | dev frame acc per epoch (%) | best epoch | best dev (%) | "
             "train acc there (%) |", "|---|---|---|---|---|---|"]
    for v, opts in variants:
        ep = [r for r in read_train_log(name / v / "train_log.jsonl")
              if r.get("type") == "epoch" and r.get("dev_acc") is not None]
        if not ep:
            raise AcousticKDError(f"{name / v / 'train_log.jsonl'}: no epoch with a dev accuracy "
                                  "(fix: let the variant's training finish, see its .log)")
        best = max(ep, key=lambda r: r["dev_acc"])
        curve = " ".join(f"{100 * r['dev_acc']:.1f}" for r in ep)
        lines.append(f"| {v} | `{opts.strip() or '-'}` | {curve} | {best['epoch']} | "
                     f"{100 * best['dev_acc']:.2f} | {100 * best['train_acc']:.2f} |")
    text = "\n".join(lines) + "\n"
    atomic_write_text(name / "SWEEP.md", text)
    return text


def ali_summary(out: Path, fraction: str, labels: list[str], seeds: list[str]) -> str:
    """COMPARE_f<fraction>.md: test WER / CER per alignment source and seed, mean ± std
    (a missing decode is nan)."""
    def rate(a: str, s: str, kind: str) -> float:
        res = read_wer_file(out / f"f{fraction}_{a}_s{s}" / "decode" / kind)
        return res.rate if res is not None else float("nan")

    lines = [f"# The same DNN on each stage's alignments (train fraction {fraction}, seeds "
             f"{' '.join(seeds)})", "",
             "| alignments | " + " | ".join(f"seed {s} WER / CER" for s in seeds)
             + " | WER mean ± std | CER mean ± std |", "|---|" + "---|" * (len(seeds) + 2)]
    for a in labels:
        w, c = [rate(a, s, "wer") for s in seeds], [rate(a, s, "cer") for s in seeds]
        lines.append(f"| {a} | " + " | ".join(f"{x:.2f} / {y:.2f}" for x, y in zip(w, c))
                     + f" | {mean_std(w, True)} | {mean_std(c, True)} |")
    lines += ["", "Test WER / CER (%), scales tuned on dev."]
    text = "\n".join(lines) + "\n"
    atomic_write_text(out / f"COMPARE_f{fraction}.md", text)
    return text


def fraction_list(data: Path, ali: Path, fraction: float, seed: int, out: Path) -> list[str]:
    """Write the utterance list `distill --train-fraction F --fraction-seed S` trains on."""
    from acoustic_kd.ali import read_alignments
    from acoustic_kd.distill.train import fraction_utts
    from acoustic_kd.features.featureset import FeatureSet

    fs, alis = FeatureSet(data, cmvn="none"), read_alignments(ali)
    utts = [u for u in fs.utts if u in alis]
    utts = fraction_utts(utts, [fs.num_frames(u) for u in utts], fraction, seed)
    atomic_write_text(out, "".join(u + "\n" for u in utts))
    return utts


KINDS = {"member": dict(color="0.55", lw=1), "student": dict(color="C0"),
         "control": dict(color="C1", ls="--")}


def curves(exp: Path, out: Path, title: str, num_members: int = 5, recipe_seed: str = "1001",
           seeds_dir: Path | None = None) -> str:
    """A PNG of dev frame accuracy per epoch: the members (grey), every distilled student and
    control (the recipe's own, seed `recipe_seed`, and those of `seeds_dir`/s<seed>/), one marker
    per seed, and the ensemble's dev accuracy (members/eval.json) as a level."""
    dirs = {f"member m{i}": exp / "members" / f"m{i}" for i in range(1, num_members + 1)}
    dirs.update({f"student (seed {recipe_seed})": exp / "student_kd",
                 f"control (seed {recipe_seed})": exp / control_name(exp)})
    for d in sorted((seeds_dir or exp / "seeds").glob("s*")):
        dirs.update({f"student (seed {d.name[1:]})": d / "student_kd",
                     f"control (seed {d.name[1:]})": d / control_name(d)})
    found = {n: [r for r in read_train_log(d / "train_log.jsonl") if r.get("type") == "epoch"]
             for n, d in dirs.items()}
    found = {n: c for n, c in found.items() if c}
    markers: dict[str, str] = {}
    styles = {n: {**KINDS[n.split()[0]], "marker": markers.setdefault(n.split("seed")[-1],
                                                                      "o^sv"[len(markers) % 4])}
              if n.split()[0] != "member" else KINDS["member"] for n in found}
    ev = exp / "members" / "eval.json"
    ens = json.loads(ev.read_text())["sets"]["dev"]["ensemble"]["arithmetic"]["acc"] if ev.exists() else None
    levels = {f"ensemble ({num_members} members)": ens} if ens is not None else {}
    return f"{plot_curves(found, out, title, styles, levels)} - {', '.join(found)}"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="study.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="tool", required=True)
    s = sub.add_parser("seeds-summary", help="SEEDS.md of student_seeds.sh")
    s.add_argument("--exp", type=Path, default=Path("exp"))
    s.add_argument("--name", default="seeds")
    s.add_argument("--opts", default="", help="the extra distill options, named in the title")
    s.add_argument("--recipe-seed", default="", help="this seed's runs are EXP/student_kd, control")
    s.add_argument("--ensemble", default="ensemble", help="the ensemble's decode: EXP/decode/<this>_test")
    s.add_argument("--tune-once", action="store_true", help="the scales were tuned for the first seed")
    s.add_argument("seeds", nargs="+")
    s = sub.add_parser("sweep-summary", help="SWEEP.md of member_sweep.sh")
    s.add_argument("dir", type=Path)
    s.add_argument("--variants", required=True, help='"name:options|name:options|..."')
    s = sub.add_parser("ali-summary", help="COMPARE_f<fraction>.md of ali_compare.sh")
    s.add_argument("dir", type=Path)
    s.add_argument("--fraction", required=True, help="as in the run dirs' names f<fraction>_...")
    s.add_argument("--labels", required=True, help="the alignment sources, space-separated")
    s.add_argument("seeds", nargs="+")
    s = sub.add_parser("fraction-list", help="utterances of a --train-fraction subset")
    s.add_argument("--data", type=Path, required=True)
    s.add_argument("--ali", type=Path, required=True)
    s.add_argument("--fraction", type=float, required=True)
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("curves", help="dev frame accuracy per epoch of members and students")
    s.add_argument("--exp", type=Path, default=Path("exp"))
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--title", default="dev frame accuracy per epoch")
    s.add_argument("--num-members", type=int, default=5)
    s.add_argument("--recipe-seed", default="1001")
    s.add_argument("--seeds-dir", type=Path, help="dirs s<seed>/ of more students (default: EXP/seeds)")
    return p


def main(argv=None) -> int:
    a = _parser().parse_args(argv)
    try:
        if a.tool == "seeds-summary":
            print(seeds_summary(a.exp, a.name, a.seeds, a.opts.strip(), a.recipe_seed, a.ensemble,
                                a.tune_once))
        elif a.tool == "sweep-summary":
            print(sweep_summary(a.dir, parse_variants(a.variants)), end="")
        elif a.tool == "ali-summary":
            print(ali_summary(a.dir, a.fraction, a.labels.split(), a.seeds))
        elif a.tool == "fraction-list":
            fraction_list(a.data, a.ali, a.fraction, a.seed, a.out)
        else:
            print(curves(a.exp, a.out, a.title, a.num_members, a.recipe_seed, a.seeds_dir))
    except (AcousticKDError, OSError) as e:
        print(f"study.py {a.tool}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

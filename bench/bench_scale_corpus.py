#!/usr/bin/env python
"""What every stage costs per hour of audio: wall, CPU, peak RSS and disk at several corpus sizes.

Each --size NAME=DIR names a recipe data dir (DIR/train, DIR/dev, DIR/test, DIR/local/lexicon.txt,
e.g. recipes/mboshi_scale/data_10h). Per size, in WORK/NAME/ (the tables are copied there, so the
given dirs stay as they are), these stages run as `acoustic-kd` commands, each forced to redo its
work, and are measured:
  features       fbank + CMVN of the training set (--nj jobs)
  gmm_<pass>     each GMM pass up to --through, as its own `align --pass P` command (it loads the
                 features and compiles the training graphs again; the last one also aligns dev)
  member_epoch   one member, one epoch (the config's model and threads), with its dev check
  soft_targets   the store of that member over the training set (--nj jobs)
  student_epoch  one student epoch from that store
  decode_test    the student on the test set (--nj processes; the config's acwt, no tuning)
Helpers (lang, dev/test features, the graph) run unmeasured. A command's wall time, CPU time
(user + system) and peak RSS come from wait4(2) on it, as /usr/bin/time -v gets them: CPU
includes its jobs and workers, peak RSS is the largest single process of its tree (not a sum).
Disk: the training set's feature archives, the soft-target store. Hours are the training set's
feature frames x frame shift. Per stage the exponent b of cost ~ hours^b is the least-squares
slope in log-log space, for wall and CPU; the RSS spread is max/min peak RSS over the sizes.
A stage measured before (WORK/NAME/measured.json) is kept unless --remeasure, so a long run can
go on in another session.

Runner `spawn` (default) starts each command in a fresh interpreter; `fork` forks it from this
process (torch already imported: no start-up cost, but every RSS includes this process' pages).
--smoke makes a tiny synthetic corpus (synth_digits, 8 kHz) at two sizes (the second by
`data-dir augment`) with tiny configs, runs everything through the fork runner and writes into
WORK (a temporary dir by default), not bench/results: the whole path in well under a minute.

    python bench/bench_scale_corpus.py --size 2.4h=recipes/mboshi_scale/data_real \\
        --size 10h=recipes/mboshi_scale/data_10h --size 30h=recipes/mboshi_scale/data_30h \\
        --config recipes/mboshi/conf/mboshi.yaml --student-config recipes/mboshi/conf/student.yaml \\
        --work bench/scale_work --nj 2 --through tri2
    python bench/bench_scale_corpus.py --smoke
Writes OUT (default bench/results/scale_corpus.json) and OUT with .md (the table).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("ACOUSTIC_KD_LOGLEVEL", "WARNING")

from acoustic_kd.data.datadir import DataDir  # noqa: E402
from acoustic_kd.gmm.run import PASSES  # noqa: E402
from acoustic_kd.utils import atomic_write_json, atomic_write_text, read_table  # noqa: E402

RESULTS = REPO / "bench" / "results"
SMOKE_CONFIG = """features: {sample_rate: 8000}
lang: {lm_order: 1}
align: {mono_iters: 2, tri_iters: 1, mono_gauss: 20, tri_gauss: 40, tri_leaves: 20,
        tree_min_count: 5}
model: {hidden: 16, layers: 1, context: [2, 2]}
train: {epochs: 1, batch_size: 128, num_threads: 1}
"""
SMOKE_STUDENT = """student: {hidden: 16, layers: 1, context: [2, 2]}
train: {epochs: 1, batch_size: 128, num_threads: 1}
soft_targets: {k: 4}
"""


# ------------------------------------------------------------------ running one command
def _usage(pid: int, t0: float) -> tuple[int, dict]:
    _, status, ru = os.wait4(pid, 0)
    return os.waitstatus_to_exitcode(status), {
        "wall_s": round(time.perf_counter() - t0, 3), "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
        "peak_rss_mb": round(ru.ru_maxrss / 1024, 1)}


def run_spawn(argv: list[str], log: Path) -> tuple[int, dict]:
    """`python -m acoustic_kd.cli ARGV` in a fresh interpreter, output to `log`."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    t0 = time.perf_counter()
    pid = os.posix_spawn(sys.executable, [sys.executable, "-m", "acoustic_kd.cli", *argv], env,
                         file_actions=[(os.POSIX_SPAWN_OPEN, 1, str(log),
                                        os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
                                       (os.POSIX_SPAWN_DUP2, 1, 2)])
    return _usage(pid, t0)


def run_fork(argv: list[str], log: Path) -> tuple[int, dict]:
    """`acoustic_kd.cli.main(ARGV)` in a child forked from this process, output to `log`."""
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:   # the child: never returns
        code = 1
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            from acoustic_kd.cli import main
            code = main(argv)
        except BaseException:  # noqa: BLE001 - the child reports into its log and exits
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return _usage(pid, t0)


class Runner:
    """Runs a size's commands with logs in WORK/NAME/logs; measured stages go to measured.json."""

    def __init__(self, root: Path, how: str, remeasure: bool):
        self.root, self.run = root, run_fork if how == "fork" else run_spawn
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.path = root / "measured.json"
        self.measured = {} if remeasure or not self.path.exists() else \
            json.loads(self.path.read_text())

    def helper(self, name: str, argv: list[str]) -> None:
        code, _ = self.run(argv, self.logs / f"{name}.log")
        if code != 0:
            raise SystemExit(f"{name} failed (exit {code}); see {self.logs / name}.log")

    def stage(self, name: str, argv: list[str], disk: Path | None = None) -> dict:
        if name in self.measured:
            return self.measured[name]
        code, use = self.run([*argv, "--force"], self.logs / f"{name}.log")
        if code != 0:
            raise SystemExit(f"{name} failed (exit {code}); see {self.logs / name}.log")
        if disk is not None:
            use["disk_mb"] = round(disk_bytes(disk) / 2 ** 20, 4)
        self.measured[name] = use
        atomic_write_json(self.path, self.measured)
        print(f"  {self.root.name} {name}: {use}", flush=True)
        return use


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# ------------------------------------------------------------------ one size
def copy_data(src: Path, dst: Path) -> None:
    """DST/{train,dev,test} = the tables of SRC's (audio paths made absolute), DST/local/lexicon."""
    for s in ("train", "dev", "test"):
        if not (dst / s / "utt2spk").exists():
            DataDir.load(src / s).absolute_paths().save(dst / s)
    (dst / "local").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "local" / "lexicon.txt", dst / "local" / "lexicon.txt")


def hours_of(data: Path) -> tuple[float, int]:
    """(hours, frames) of a data dir's features."""
    frames = sum(int(v) for _, v, _ in read_table(data / "utt2num_frames"))
    shift = json.loads((data / "fbank.json").read_text()).get("frame_shift_ms", 10.0)
    return frames * shift / 1000 / 3600, frames


def measure_size(name: str, src: Path, args) -> dict:
    """Every stage of one size (module docstring): {name, data, hours, frames, stages}."""
    root = args.work / name
    data, exp = root / "data", root / "exp"
    copy_data(src, data)
    r = Runner(root, args.runner, args.remeasure)
    cfg, scfg, nj = ["--config", str(args.config)], ["--student-config", str(args.student_config)], \
        ["--nj", str(args.nj)]
    tr, dev, test = str(data / "train"), str(data / "dev"), str(data / "test")
    r.helper("lang", ["lang", "--data", tr, "--lexicon", str(data / "local" / "lexicon.txt"),
                      "--out", str(data / "lang"), *cfg])
    st = {"features": r.stage("features", ["features", "--data", tr, *cfg, *nj],
                              disk=data / "train" / "data")}
    for s in (dev, test):
        r.helper(f"features_{Path(s).name}", ["features", "--data", s, *cfg, *nj])
    passes = PASSES[:PASSES.index(args.through) + 1]
    align = ["align", "--data", tr, "--lang", str(data / "lang"), "--exp", str(exp), *cfg, *nj]
    for p in passes:
        more = ["--align-sets", dev] if p == passes[-1] else []
        st[f"gmm_{p}"] = r.stage(f"gmm_{p}", [*align, "--pass", p, *more])
    g = exp / passes[-1]
    ali = ["--train-data", tr, "--train-ali", str(g / "ali_train"), "--dev-data", dev,
           "--dev-ali", str(g / "ali_dev")]
    member = str(exp / "m1" / "final.pt")
    st["member_epoch"] = r.stage("member_epoch", ["train", *ali, *cfg, "--epochs", "1",
                                                  "--out", str(exp / "m1")])
    st["soft_targets"] = r.stage("soft_targets", ["soft-targets", "--members", member, "--data", tr,
                                                  "--out", str(exp / "soft"), "--config",
                                                  str(args.student_config), *nj],
                                 disk=exp / "soft")
    st["student_epoch"] = r.stage("student_epoch", ["distill", "--soft", str(exp / "soft"), *ali,
                                                    *scfg, "--epochs", "1",
                                                    "--out", str(exp / "student")])
    r.helper("mkgraph", ["mkgraph", "--lang", str(data / "lang"), "--model",
                         str(g / "final.hmm.json"), "--out", str(g / "graph"), *cfg])
    st["decode_test"] = r.stage("decode_test", ["decode", "--graph", str(g / "graph"), "--data",
                                                test, "--model", str(exp / "student" / "final.pt"),
                                                "--out", str(exp / "decode_test"), *cfg, *nj])
    hours, frames = hours_of(data / "train")
    pdfs = (g / "ali_train" / "num_pdfs")
    return {"name": name, "data": str(src), "hours": round(hours, 4), "frames": frames,
            "num_pdfs": int(pdfs.read_text().split()[0]) if pdfs.exists() else None, "stages": st}


# ------------------------------------------------------------------ across sizes
def fit_exponent(hours: list[float], cost: list[float]) -> float | None:
    """Slope of log(cost) against log(hours); None with fewer than two sizes."""
    if len(hours) < 2:
        return None
    return round(float(np.polyfit(np.log(hours), np.log(np.maximum(cost, 1e-6)), 1)[0]), 3)


def summarise(sizes: list[dict]) -> dict:
    """Per stage: wall and CPU exponents, peak RSS max/min, disk MB per hour (largest size)."""
    sizes = sorted(sizes, key=lambda s: s["hours"])
    hours = [s["hours"] for s in sizes]
    out = {}
    for stage in sizes[0]["stages"]:
        rows = [s["stages"][stage] for s in sizes]
        rss = [r["peak_rss_mb"] for r in rows]
        out[stage] = {"exponent_wall": fit_exponent(hours, [r["wall_s"] for r in rows]),
                      "exponent_cpu": fit_exponent(hours, [r["cpu_s"] for r in rows]),
                      "rss_max_over_min": round(max(rss) / max(min(rss), 1e-9), 3),
                      "cpu_s_per_hour": round(rows[-1]["cpu_s"] / max(hours[-1], 1e-9), 1)}
        if "disk_mb" in rows[-1]:
            out[stage]["disk_mb_per_hour"] = round(rows[-1]["disk_mb"] / max(hours[-1], 1e-9), 1)
    return out


def markdown(res: dict) -> str:
    sizes = sorted(res["sizes"], key=lambda s: s["hours"])
    head = ["stage"] + [f"{s['name']} ({s['hours']:.3g} h): wall / CPU s, RSS MB" for s in sizes] + \
        ["b wall", "b CPU", "RSS max/min", "disk MB/h"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for stage, fit in res["exponents"].items():
        cells = [stage] + [f"{s['stages'][stage]['wall_s']:.1f} / {s['stages'][stage]['cpu_s']:.1f}, "
                           f"{s['stages'][stage]['peak_rss_mb']:.0f}" for s in sizes]
        cells += [str(fit["exponent_wall"]), str(fit["exponent_cpu"]), str(fit["rss_max_over_min"]),
                  str(fit.get("disk_mb_per_hour", ""))]
        lines.append("| " + " | ".join(cells) + " |")
    return (f"# Cost per stage against hours of training audio\n\n`{res['command']}` "
            f"(runner {res['runner']}, --nj {res['nj']}, GMM through {res['through']}; "
            f"load {res['load']}).\n\n" + "\n".join(lines) + "\n")


def make_smoke(work: Path) -> list[tuple[str, Path]]:
    """A tiny synth_digits corpus (work/corpus) and a second size twice as long (work/corpus_x2)."""
    from acoustic_kd.corpora.synth_digits import prepare_synth_digits
    from acoustic_kd.data.augment import DataAugmentConfig, augment_data_dir

    small, big = work / "corpus", work / "corpus_x2"
    if not (small / "train" / "utt2spk").exists():
        prepare_synth_digits(small, seed=0, num_train=12, num_dev=3, num_test=3, sample_rate=8000,
                             min_words=3, babble_pool=4)
    hours = 2 * sum(float(v) for _, v, _ in read_table(small / "train" / "utt2dur")) / 3600
    augment_data_dir(small / "train", big / "train", DataAugmentConfig(hours=hours), 8000)
    for s in ("dev", "test", "local"):
        if not (big / s).exists():
            shutil.copytree(small / s, big / s)
    (work / "smoke.yaml").write_text(SMOKE_CONFIG)
    (work / "smoke_student.yaml").write_text(SMOKE_STUDENT)
    return [("x1", small), ("x2", big)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", action="append", default=[], metavar="NAME=DIR",
                    help="a recipe data dir (train, dev, test, local/lexicon.txt); repeat")
    ap.add_argument("--config", type=Path, default=REPO / "recipes/mboshi/conf/mboshi.yaml")
    ap.add_argument("--student-config", type=Path,
                    default=REPO / "recipes/mboshi/conf/student.yaml")
    ap.add_argument("--work", type=Path, help="work dir (default: bench/scale_work; smoke: a "
                    "temporary dir)")
    ap.add_argument("--out", type=Path, help="results JSON (default: bench/results/"
                    "scale_corpus.json; smoke: WORK/scale_corpus.json)")
    ap.add_argument("--nj", type=int, help="jobs of features, GMM, soft targets and decode "
                    "(default: 2; smoke: 1)")
    ap.add_argument("--through", choices=PASSES, default="tri2", help="last GMM pass")
    ap.add_argument("--runner", choices=("spawn", "fork"), default="spawn")
    ap.add_argument("--remeasure", action="store_true", help="measure stages measured before")
    ap.add_argument("--smoke", action="store_true", help="tiny synthetic sizes (module docstring)")
    args = ap.parse_args()
    t0 = time.time()
    if args.smoke:
        args.work = args.work or Path(tempfile.mkdtemp(prefix="scale_smoke_"))
        sizes = make_smoke(args.work)
        args.config, args.student_config = args.work / "smoke.yaml", args.work / "smoke_student.yaml"
        args.runner, args.through, args.nj = "fork", "tri", args.nj or 1
        import torch  # noqa: F401 - imported once here, before any fork
    else:
        if not args.size:
            ap.error("give --size NAME=DIR at least twice (or --smoke)")
        sizes = [(s.split("=", 1)[0], Path(s.split("=", 1)[1])) for s in args.size]
        args.work, args.nj = args.work or REPO / "bench" / "scale_work", args.nj or 2
    out = args.out or (args.work / "scale_corpus.json" if args.smoke else
                       RESULTS / "scale_corpus.json")
    measured = [measure_size(name, src.resolve(), args) for name, src in sizes]
    res = {"command": "python bench/bench_scale_corpus.py " + " ".join(sys.argv[1:]),
           "runner": args.runner, "nj": args.nj, "through": args.through,
           "load": ", ".join(f"{x:.1f}" for x in os.getloadavg()), "cores": os.cpu_count(),
           "seconds": round(time.time() - t0, 1), "sizes": measured,
           "exponents": summarise(measured)}
    worst = max((f["exponent_cpu"] or 0) for f in res["exponents"].values())
    res["summary"] = (f"{len(measured)} sizes, {min(s['hours'] for s in measured):.3g}-"
                      f"{max(s['hours'] for s in measured):.3g} h: largest CPU exponent {worst}")
    atomic_write_json(out, res)
    atomic_write_text(out.with_suffix(".md"), markdown(res))
    print(markdown(res))
    print(f"{res['summary']}; {out} ({res['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

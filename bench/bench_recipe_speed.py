"""The recipe's training paths against their kernels at the recipe's size, as ratios from one run.

On synthetic data at Mboshi's size (--num-pdfs 2500, 40-dim features, ±10 frames of context,
--frames over ~700 utterances), for each thread count of --threads, in one process:
  * soft-target pass: `distill.soft_targets.compute_soft_targets` of --members random-init 3x512
    members (a real top-k store, k = --k, T = --T) against the members' forward passes alone on
    one pre-gathered batch (`bench_train.forward_kernel`, same batch size and precision);
  * member: one epoch of `nnet.trainer.train` on a FrameDataset (cross-entropy);
  * student: one epoch of `distill.train.train_student` with that store (cached teacher, α = 0.5);
  * control: the same with α = 1 (hard targets only);
each training path against the kernel: forward + CE + backward + AdamW step of the same model on
one pre-gathered batch (`bench_train.train_kernel`), measured just before and just after each path
(their mean is the reference). Every path is a member-size 3x512 MLP under bf16 autocast (where the
CPU has it natively), batch 512, as conf/student.yaml.
A path's steps are timed where its dataset hands out batches (`StepClock`: one interval = one whole
step: data, targets, loss, backward, optimiser, bookkeeping). `ratio`: the median step against the
kernel's median step (robust to a shared machine's bursts); `ratio_mean`: all steps' mean (the
trainer's epoch frames/s) against the kernel's mean; `ratio_cpu`: CPU-seconds per frame of the
kernel over the path's (the same steps). A ratio of 1: the path costs no more than its arithmetic.
Writes bench/results/recipe_speed.json.

Usage: python bench/bench_recipe_speed.py [--frames 200000] [--threads 1 2] [--num-pdfs 2500]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import forward_kernel, train_kernel  # noqa: E402

from acoustic_kd.distill import SoftTargetConfig, SoftTargetStore, compute_soft_targets  # noqa: E402
from acoustic_kd.distill.train import DistillConfig, train_student  # noqa: E402
from acoustic_kd.ensemble.runner import TeacherEnsemble  # noqa: E402
from acoustic_kd.nnet import FrameDataset, ModelConfig, TrainConfig, build_model, train  # noqa: E402
from acoustic_kd.nnet.augment import AugmentConfig  # noqa: E402
from acoustic_kd.nnet.data import make_synthetic  # noqa: E402
from acoustic_kd.utils import atomic_write_json, get_logger, resolve_bf16  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "recipe_speed.json"
PATHS = ("member", "student", "control")


def synthetic_set(frames: int, num_pdfs: int, context: tuple[int, int]) -> FrameDataset:
    """~`frames` frames of 40-dim features in utterances of 200-370 frames (labels: a projection)."""
    utts = max(1, round(frames / 285))
    feats, alis = make_synthetic(utts, num_pdfs, 40, 200, 370, seed=0)
    return FrameDataset.from_arrays(feats, alis, context)


class StepClock:
    """A dataset that stamps the time whenever it hands out a batch (`batch` or `iter_batches`), so
    the interval between two stamps is one whole step of whatever consumes it."""

    def __init__(self, ds):
        self.ds, self.stamps = ds, []   # (wall s, CPU s, frames of the batch handed out)

    def __getattr__(self, name):
        return getattr(self.ds, name)

    def __len__(self) -> int:
        return len(self.ds)

    def _stamp(self, frames: int) -> None:
        self.stamps.append((time.perf_counter(), time.process_time(), frames))

    def batch(self, idx):
        self._stamp(len(idx))
        return self.ds.batch(idx)

    def iter_batches(self, *args, **kwargs):
        for b in self.ds.iter_batches(*args, **kwargs):
            self._stamp(len(b["idx"]))
            yield b
        self._stamp(0)

    def rates(self, skip: int = 2) -> dict:
        """frames/s of the median and of the mean step, and CPU-s per frame, after `skip` steps."""
        st = self.stamps[skip:]
        steps = [(b[0] - a[0], a[2]) for a, b in zip(st, st[1:])]
        frames = sum(n for _, n in steps)
        return {"frames_per_s": statistics.median(n / t for t, n in steps),
                "frames_per_s_mean": frames / (st[-1][0] - st[0][0]),
                "cpu_s_per_frame": (st[-1][1] - st[0][1]) / frames, "steps": len(steps)}


def soft_pass(cfg: ModelConfig, ds: FrameDataset, args, out: Path) -> dict:
    """The soft-target pass of `args.members` random members into `out`, and its kernel."""
    torch.manual_seed(0)
    members = [build_model(cfg, ds.dim, args.num_pdfs).eval() for _ in range(args.members)]
    teacher = TeacherEnsemble(members, bf16=args.teacher_bf16)
    scfg = SoftTargetConfig(T=args.T, k=args.k, batch_size=args.soft_batch)
    bf16 = resolve_bf16(args.teacher_bf16, "cpu", "teacher")
    kern = [forward_kernel(members, scfg.batch_size, bf16)]
    clock = StepClock(ds)
    compute_soft_targets(teacher, clock, scfg, out, force=True)
    kern.append(forward_kernel(members, scfg.batch_size, bf16))
    return _ratios(clock.rates(skip=1), kern)


def _ratios(path: dict, kern: list[dict]) -> dict:
    k = {key: sum(r[key] for r in kern) / len(kern) for key in kern[0]}
    return {**path, "kernel": k, "ratio": path["frames_per_s"] / k["frames_per_s"],
            "ratio_mean": path["frames_per_s_mean"] / k["frames_per_s_mean"],
            "ratio_cpu": k["cpu_s_per_frame"] / path["cpu_s_per_frame"]}


def train_path(name: str, cfg: ModelConfig, tcfg: TrainConfig, ds: FrameDataset, store,
               args, out: Path) -> dict:
    """One epoch of the member / student / control path -> its epoch frames/s and CPU-s/frame."""
    torch.manual_seed(tcfg.seed)
    model = build_model(cfg, ds.dim, args.num_pdfs)
    clock = StepClock(ds)
    if name == "member":
        res = train(model, clock, None, tcfg, out)
    else:
        kd = DistillConfig(T=args.T, alpha=0.5 if name == "student" else 1.0)
        res = train_student(model, clock, None, tcfg, kd, AugmentConfig(), out, store=store)
    return {**clock.rates(), "trainer_frames_per_s": res["history"][0]["frames_per_s"]}


def measure(threads: int, cfg: ModelConfig, ds: FrameDataset, args, tmp: Path) -> dict:
    """Every path and its kernel at one thread count."""
    torch.set_num_threads(threads)
    tcfg = TrainConfig(epochs=1, batch_size=512, lr=0.002, bf16=True, patience=0, keep_epochs=1,
                       device="cpu", num_threads=threads, seed=1001)
    bf16 = resolve_bf16(True, "cpu")
    res = {"soft_targets": soft_pass(cfg, ds, args, tmp / f"soft{threads}")}
    store = SoftTargetStore(tmp / f"soft{threads}")

    def kernel() -> dict:   # the same fresh model each time: every reading, the same computation
        torch.manual_seed(0)
        return train_kernel(build_model(cfg, ds.dim, args.num_pdfs), tcfg.batch_size, bf16)

    kern = kernel()
    for n in PATHS:   # each path against the kernel measured just before and just after it
        path = train_path(n, cfg, tcfg, ds, store, args, tmp / f"{n}{threads}")
        after = kernel()
        res[n], kern = _ratios(path, [kern, after]), after
    return res


def report(threads: int, res: dict) -> None:
    for name, r in res.items():
        k = r["kernel"]
        print(f"{threads} thr {name:<12} {r['frames_per_s']:>8.0f} frames/s vs kernel "
              f"{k['frames_per_s']:>8.0f}: ratio {r['ratio']:.2f} (mean step {r['ratio_mean']:.2f}, "
              f"CPU time {r['ratio_cpu']:.2f})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=200_000, help="synthetic frames (one epoch)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--num-pdfs", type=int, default=2500)
    ap.add_argument("--members", type=int, default=5, help="members of the soft-target pass")
    ap.add_argument("--k", type=int, default=50, help="top-k of the store")
    ap.add_argument("--T", type=float, default=5.0)
    ap.add_argument("--soft-batch", type=int, default=SoftTargetConfig.batch_size,
                    help="frames per teacher forward pass")
    ap.add_argument("--teacher-bf16", action="store_true", help="members under bf16 autocast")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    for name in ("nnet.trainer", "distill.train", "distill.soft_targets"):
        get_logger(name).setLevel("WARNING")
    cfg = ModelConfig(hidden=512, layers=3, context=(10, 10))
    ds = synthetic_set(args.frames, args.num_pdfs, cfg.context)
    print(f"{ds.num_frames} frames, {len(ds.utts)} utterances, {args.num_pdfs} pdfs, "
          f"top-{args.k} at T={args.T:g}")
    res = {"frames": ds.num_frames, "utts": len(ds.utts), "num_pdfs": args.num_pdfs, "k": args.k,
           "T": args.T, "members": args.members, "teacher_bf16": args.teacher_bf16,
           "command": "python bench/bench_recipe_speed.py " + " ".join(argv or sys.argv[1:]),
           "time": time.strftime("%Y-%m-%d %H:%M:%S"), "by_threads": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for threads in args.threads:
            res["by_threads"][str(threads)] = r = measure(threads, cfg, ds, args, Path(tmp))
            report(threads, r)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, res)
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Training throughput of the frame DNNs vs this machine's fp32 matmul peak, and the bf16 speed-up.

Runs the real trainer (data gathering, AdamW, schedule) for one epoch on synthetic 40-dim features
and reports frames/s, achieved training FLOPs (2 per MAC; backward = 2x forward except the first
layer's input gradient, which is not computed) and their fraction of the fp32 peak of a large
torch.mm measured in the same process. The fraction is taken per CPU-second of this process (a
shared machine's other load does not distort it) and also by wall clock (best stretches).
Writes bench/results/train.json.

Usage: python bench/bench_train.py [--frames 60000] [--threads N] [--num-pdfs 512]
On a CPU without native bf16 the trainer runs its bf16 runs in fp32 (`utils.resolve_bf16`):
`ACOUSTIC_KD_BF16=on` measures the emulated bf16 instead.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from acoustic_kd.nnet import FrameDataset, ModelConfig, TrainConfig, build_model, train
from acoustic_kd.nnet.data import make_synthetic
from acoustic_kd.nnet.models import count_params, macs_per_frame
from acoustic_kd.utils import get_logger, native_bf16

RESULTS = Path(__file__).resolve().parent / "results" / "train.json"


def matmul_peak(dtype: torch.dtype = torch.float32, n: int = 2048, reps: int = 10) -> dict:
    """Peak of an n x n x n torch.mm in this process: best wall FLOP/s and FLOPs per CPU-second."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    best, cpu0 = float("inf"), time.process_time()
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    flops = 2 * n ** 3
    return {"wall": flops / best, "per_cpu_s": flops * reps / (time.process_time() - cpu0)}


def train_flops_per_frame(model: torch.nn.Module) -> int:
    """Forward + backward FLOPs per frame of one training step."""
    first = next(m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d)))
    macs = macs_per_frame(model)
    first_macs = (first.in_features * first.out_features if isinstance(first, torch.nn.Linear)
                  else macs)  # conv: count conservatively as if the input gradient were computed
    return 2 * (3 * macs - (first_macs if isinstance(first, torch.nn.Linear) else 0))


def train_kernel(model: torch.nn.Module, batch_size: int, bf16: bool, steps: int = 30,
                 warmup: int = 3) -> dict:
    """The training kernel alone: forward + CE + backward + the trainer's AdamW step of `model` on
    one pre-gathered batch (no data path, no trainer). -> frames/s (median step) and CPU-s/frame."""
    from acoustic_kd.nnet.trainer import make_optimizer

    x = torch.randn(batch_size, model.config.window, model.input_dim)
    y = torch.randint(0, model.num_pdfs, (batch_size,))
    opt = make_optimizer(model.parameters(), TrainConfig())

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return time_steps(step, batch_size, steps, warmup)


def forward_kernel(models: list, batch_size: int, bf16: bool, steps: int = 10,
                   warmup: int = 2) -> dict:
    """Inference kernel: every model's forward pass on one pre-gathered batch (no grad), as an
    ensemble runs them. -> frames/s (median pass over all models) and CPU-s/frame."""
    m0 = models[0]
    x = torch.randn(batch_size, m0.config.window, m0.input_dim)

    @torch.no_grad()
    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for m in models:
                m(x)

    return time_steps(step, batch_size, steps, warmup)


def time_steps(step, frames: int, steps: int, warmup: int) -> dict:
    """Run `step` (which processes `frames` frames) warmup + steps times: frames/s of the median
    step (wall) and CPU-seconds per frame over the timed steps."""
    for _ in range(warmup):
        step()
    times, cpu0 = [], time.process_time()
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    cpu = time.process_time() - cpu0
    return {"frames_per_s": frames / sorted(times)[len(times) // 2],
            "frames_per_s_mean": frames * steps / sum(times),
            "cpu_s_per_frame": cpu / (frames * steps)}


def run_one(cfg: ModelConfig, tcfg: TrainConfig, ds: FrameDataset, num_pdfs: int,
            window: int = 5, skip: int = 3) -> dict:
    """Throughput of the real training loop (after `skip` warm-up steps: allocator, kernel choice).

    frames_per_s: best `window`-step stretch (wall clock; comparable to the best-of-N matmul);
    train_flops_per_cpu_s: training FLOPs per CPU-second of this process over all steps, which a
    shared machine does not distort (compared with the matmul's FLOPs per CPU-second).
    """
    torch.manual_seed(0)
    model = build_model(cfg, ds.dim, num_pdfs)
    stamps: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as d:
        hist = train(model, ds, None, tcfg, d, step_hook=lambda step, info: stamps.append(
            (time.perf_counter(), time.process_time())))["history"]
    per_epoch = ds.num_batches(tcfg.batch_size)
    spans = [stamps[i + window][0] - stamps[i][0] for i in range(skip, len(stamps) - window)
             if (i // per_epoch) == ((i + window) // per_epoch)]   # not across an epoch end
    fps = window * tcfg.batch_size / min(spans)
    flops = train_flops_per_frame(model)
    cpu = stamps[-1][1] - stamps[skip][1]
    return {"arch": cfg.arch, "hidden": cfg.hidden, "layers": cfg.layers, "context": cfg.context,
            "params": count_params(model), "macs_per_frame": macs_per_frame(model),
            "train_flops_per_frame": flops, "batch_size": tcfg.batch_size, "bf16": tcfg.bf16,
            "frames_per_s": fps, "frames_per_s_epoch_average": max(h["frames_per_s"] for h in hist),
            "train_flops_per_s": fps * flops,
            "train_flops_per_cpu_s": (len(stamps) - 1 - skip) * tcfg.batch_size * flops / cpu}


def quarter_width(cfg: ModelConfig, dim: int, num_pdfs: int) -> int:
    """The widest hidden size whose model has <= 1/4 of cfg's parameters."""
    full = count_params(build_model(cfg, dim, num_pdfs))
    h = cfg.hidden
    while h > 8 and count_params(build_model(replace(cfg, hidden=h), dim, num_pdfs)) > full / 4:
        h -= 8
    return h


def measure(member: ModelConfig, tcfg: TrainConfig, ds: FrameDataset, num_pdfs: int) -> dict:
    """Peaks, the four training runs (member / quarter student x fp32 / bf16) and ratios."""
    peaks = [matmul_peak()]
    peak_bf16 = matmul_peak(torch.bfloat16)
    student = replace(member, hidden=quarter_width(member, 40, num_pdfs))
    runs = {"member_fp32": run_one(member, tcfg, ds, num_pdfs),
            "member_bf16": run_one(member, replace(tcfg, bf16=True), ds, num_pdfs),
            "student_quarter_fp32": run_one(student, tcfg, ds, num_pdfs),
            "student_quarter_bf16": run_one(student, replace(tcfg, bf16=True), ds, num_pdfs)}
    peaks.append(matmul_peak())   # a shared machine: bracket the runs with two peak readings
    peak = {k: max(p[k] for p in peaks) for k in ("wall", "per_cpu_s")}
    for r in runs.values():
        r["fraction_of_fp32_peak"] = r["train_flops_per_cpu_s"] / peak["per_cpu_s"]
        r["fraction_of_fp32_peak_wall"] = r["train_flops_per_s"] / peak["wall"]

    def speedup(name: str, key: str) -> float:
        return runs[f"{name}_bf16"][key] / runs[f"{name}_fp32"][key]

    res = {"threads": torch.get_num_threads(), "bf16_native": native_bf16("cpu"),
           "cpu_capability": torch.backends.cpu.get_cpu_capability(), "fp32_matmul_peak": peak,
           "bf16_matmul_peak": peak_bf16, "num_pdfs": num_pdfs, "runs": runs,
           "bf16_speedup": {n: {"per_cpu_s": speedup(n, "train_flops_per_cpu_s"),
                                "wall": speedup(n, "frames_per_s")}
                            for n in ("member", "student_quarter")}}
    return res


def report(res: dict) -> None:
    """Print one thread setting's results."""
    peak, peak_bf16 = res["fp32_matmul_peak"], res["bf16_matmul_peak"]
    print(f"fp32 matmul peak {peak['wall'] / 1e9:.1f} GFLOP/s wall, {peak['per_cpu_s'] / 1e9:.1f} "
          f"GFLOP per CPU-s; bf16 {peak_bf16['wall'] / 1e9:.1f} GFLOP/s ({res['threads']} threads; "
          f"{res['cpu_capability']}, native bf16: {res['bf16_native']})")
    for name, r in res["runs"].items():
        print(f"{name:<22} {r['params']:>8} params {r['frames_per_s']:>8.0f} frames/s "
              f"{r['train_flops_per_cpu_s'] / 1e9:6.1f} GFLOP/CPU-s = {r['fraction_of_fp32_peak']:.2f}"
              f" of peak (wall {r['fraction_of_fp32_peak_wall']:.2f})")
    for n, v in res["bf16_speedup"].items():
        print(f"bf16 speed-up {n}: x{v['per_cpu_s']:.2f} (CPU time), x{v['wall']:.2f} (wall)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=25600, help="synthetic training frames")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help=(
        "torch thread counts to measure (1 = how members run as parallel jobs on 2 cores)"))
    ap.add_argument("--num-pdfs", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=1, help="epochs per run")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    get_logger("bench").setLevel("WARNING")
    get_logger("nnet.trainer").setLevel("WARNING")
    feats, alis = make_synthetic(args.frames // 100, num_pdfs=args.num_pdfs, dim=40, min_len=100,
                                 max_len=100, seed=0)
    member = ModelConfig()
    ds = FrameDataset.from_arrays(feats, alis, member.context)
    tcfg = TrainConfig(epochs=args.epochs, patience=0, log_every=0, keep_epochs=1, device="cpu")
    res = {"num_pdfs": args.num_pdfs, "frames": ds.num_frames, "by_threads": {}}
    for threads in args.threads:
        torch.set_num_threads(threads)
        res["by_threads"][str(threads)] = r = measure(member, tcfg, ds, args.num_pdfs)
        report(r)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()

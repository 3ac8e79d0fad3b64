"""Training and inference speed of a factorised TDNN against the MLP member, both measured in one run.

Each model runs the real trainer for one epoch on synthetic 40-dim features (data gathering,
AdamW, schedule and, for the TDNN-F, its semi-orthogonal updates every `semiorth_every` steps;
`bench_train.run_one`), then the forward pass alone on one pre-gathered batch
(`bench_train.forward_kernel`, as soft targets and decoding run it). Reports frames/s, params and
MACs per frame of each, and the ratios TDNN-F / MLP (a shared machine's load moves both alike).
Writes bench/results/arch.json (with --quick: nothing unless --out is given).

Usage: python bench/bench_arch.py [--hidden 512] [--layers 6] [--bottleneck 128] [--context 15 15]
         [--strides 1 1 1 3] [--mlp-hidden 512] [--mlp-layers 3] [--mlp-context 10 10]
         [--num-pdfs 2500] [--threads 1 2] [--fp32] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import forward_kernel, run_one  # noqa: E402

from acoustic_kd.nnet import FrameDataset, ModelConfig, TrainConfig, build_model  # noqa: E402
from acoustic_kd.nnet.data import make_synthetic  # noqa: E402
from acoustic_kd.utils import get_logger, resolve_bf16  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "arch.json"


def measure(models: dict[str, ModelConfig], frames: int, num_pdfs: int, tcfg: TrainConfig,
            quick: bool) -> dict:
    """{name: trainer and forward figures} of each model config on the same synthetic corpus."""
    feats, alis = make_synthetic(frames // 100, num_pdfs=num_pdfs, dim=40, min_len=100,
                                 max_len=100, seed=0)
    out = {}
    for name, cfg in models.items():
        ds = FrameDataset.from_arrays(feats, alis, cfg.context)
        run = run_one(cfg, tcfg, ds, num_pdfs, **({"window": 3, "skip": 2} if quick else {}))
        torch.manual_seed(0)
        model = build_model(cfg, 40, num_pdfs).eval()
        fwd = forward_kernel([model], tcfg.batch_size, resolve_bf16(tcfg.bf16, "cpu"),
                             steps=3 if quick else 10, warmup=1 if quick else 2)
        out[name] = {**run, "forward_frames_per_s": fwd["frames_per_s"],
                     "forward_cpu_s_per_frame": fwd["cpu_s_per_frame"]}
    return out


def ratios(runs: dict) -> dict:
    """TDNN-F / MLP of the speeds and sizes."""
    a, b = runs["tdnnf"], runs["mlp"]
    return {k: a[k] / b[k] for k in ("frames_per_s", "forward_frames_per_s", "params",
                                     "macs_per_frame", "train_flops_per_cpu_s")}


def report(threads: int, runs: dict, ratio: dict) -> None:
    for name, r in runs.items():
        print(f"{threads} thr {name:<6} {r['params']:>9} params {r['macs_per_frame'] / 1e6:7.2f} M MACs/frame "
              f"train {r['frames_per_s']:>8.0f} frames/s  forward {r['forward_frames_per_s']:>8.0f} frames/s "
              f"({r['train_flops_per_cpu_s'] / 1e9:.1f} train GFLOP/CPU-s)")
    print(f"{threads} thr tdnnf/mlp: train x{ratio['frames_per_s']:.3f}, forward "
          f"x{ratio['forward_frames_per_s']:.3f}, params x{ratio['params']:.2f}, "
          f"MACs x{ratio['macs_per_frame']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", type=int, default=512, help="TDNN-F width")
    ap.add_argument("--layers", type=int, default=6, help="TDNN-F factorised layers")
    ap.add_argument("--bottleneck", type=int, default=128)
    ap.add_argument("--context", type=int, nargs=2, default=[15, 15], help="TDNN-F context")
    ap.add_argument("--strides", type=int, nargs="+", default=[1, 1, 1, 3])
    ap.add_argument("--norm", default="batch", choices=("none", "batch", "layer"))
    ap.add_argument("--mlp-hidden", type=int, default=512)
    ap.add_argument("--mlp-layers", type=int, default=3)
    ap.add_argument("--mlp-context", type=int, nargs=2, default=[10, 10])
    ap.add_argument("--num-pdfs", type=int, default=2500)
    ap.add_argument("--frames", type=int, default=25600, help="synthetic training frames")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--fp32", action="store_true", help="no bf16 autocast (default: as the trainer)")
    ap.add_argument("--quick", action="store_true",
                    help="a check that it runs: 1 thread, 3072 frames, short timing windows")
    ap.add_argument("--out", default=None, help=f"results JSON (default {RESULTS}; none with --quick)")
    args = ap.parse_args()
    get_logger("nnet.trainer").setLevel("WARNING")
    frames, threads = (3072, [1]) if args.quick else (args.frames, args.threads)
    models = {"mlp": ModelConfig(arch="mlp", hidden=args.mlp_hidden, layers=args.mlp_layers,
                                 context=tuple(args.mlp_context)),
              "tdnnf": ModelConfig(arch="tdnnf", hidden=args.hidden, layers=args.layers,
                                   bottleneck=args.bottleneck, context=tuple(args.context),
                                   tdnnf_strides=tuple(args.strides), norm=args.norm)}
    tcfg = TrainConfig(epochs=1, batch_size=args.batch_size, patience=0, log_every=0, keep_epochs=1,
                       device="cpu", bf16=not args.fp32)
    res = {"num_pdfs": args.num_pdfs, "frames": frames, "quick": args.quick,
           "bf16": resolve_bf16(tcfg.bf16, "cpu"), "by_threads": {}}
    for t in threads:
        torch.set_num_threads(t)
        runs = measure(models, frames, args.num_pdfs, tcfg, args.quick)
        res["by_threads"][str(t)] = {"runs": runs, "tdnnf_over_mlp": ratios(runs)}
        report(t, runs, res["by_threads"][str(t)]["tdnnf_over_mlp"])
    out = args.out or (None if args.quick else RESULTS)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(res, indent=2, default=list) + "\n")
        print(f"-> {out}")


if __name__ == "__main__":
    main()

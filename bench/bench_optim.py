"""The optimiser's share of a training step: AdamW per tensor, foreach and fused, on a member.

At a few thousand pdfs the output layer holds most of a 3x512 member's parameters, and AdamW's
per-tensor loop (torch's CPU default) costs as much as a third of the forward + backward. The
trainer uses the fused kernel (`nnet.trainer.make_optimizer`); this measures all three against the
step's forward + backward (bf16 autocast where the CPU has it natively), in one process.
Writes bench/results/optim.json.

Usage: python bench/bench_optim.py [--num-pdfs 2500] [--threads 1] [--reps 30]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from acoustic_kd.nnet import ModelConfig, build_model
from acoustic_kd.utils import native_bf16

RESULTS = Path(__file__).resolve().parent / "results" / "optim.json"


def best_ms(fn, reps: int) -> float:
    """Median wall time of `fn` in ms over `reps` calls after 3 warm-up calls."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * sorted(times)[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--num-pdfs", type=int, default=2500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = ModelConfig()
    model = build_model(cfg, 40, args.num_pdfs)
    x = torch.randn(args.batch_size, cfg.window, 40)
    y = torch.randint(0, args.num_pdfs, (args.batch_size,))
    bf16 = native_bf16("cpu")

    def fwd_bwd():
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        F.cross_entropy(logits.float(), y).backward()

    res = {"num_pdfs": args.num_pdfs, "threads": args.threads, "batch_size": args.batch_size,
           "params": sum(p.numel() for p in model.parameters()), "bf16": bf16,
           "forward_backward_ms": best_ms(fwd_bwd, args.reps), "adamw_step_ms": {}}
    fwd_bwd()
    for name, kw in (("per_tensor", {"foreach": False}), ("foreach", {"foreach": True}),
                     ("fused", {"fused": True})):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, **kw)
        res["adamw_step_ms"][name] = best_ms(opt.step, args.reps)
    fb = res["forward_backward_ms"]
    print(f"{res['params']} params, {args.num_pdfs} pdfs, batch {args.batch_size}, "
          f"{args.threads} thread(s), bf16 {bf16}: forward + backward {fb:.1f} ms")
    for name, ms in res["adamw_step_ms"].items():
        print(f"  AdamW {name:<10} {ms:6.1f} ms = {ms / fb:.2f} of forward + backward; step "
              f"{args.batch_size / (fb + ms) * 1e3:7.0f} frames/s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()

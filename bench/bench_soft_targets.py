"""Soft-target storage and KD-loss cost: top-k vs dense, and kd_loss vs a torch reference.

Prints, for several pdf counts P: bytes per frame of the top-k store (k·(4+2): int32 id + float16
prob) vs dense float32 (4·P), and the time of `soft_kl` on top-k and dense targets relative to the
reference `F.kl_div(log_softmax(z/T), p)` on dense targets (values checked equal on dense input).
Usage: python bench/bench_soft_targets.py [--frames 4096] [--repeats 20]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from acoustic_kd.distill.loss import soft_kl
from acoustic_kd.distill.targets import storage_bytes_per_frame, topk_targets


def _time(fn, repeats: int) -> float:
    """Best-of-`repeats` seconds per call (robust on a shared machine)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--T", type=float, default=2.0)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    print(f"{'P':>6} {'k':>4} {'B/frame':>8} {'dense':>7} {'ratio':>7}  {'t_topk/ref':>10} "
          f"{'t_dense/ref':>11}")
    for P in (51, 1000, 4000):
        z = torch.randn(args.frames, P)
        p = torch.softmax(torch.randn(args.frames, P) * 3 / args.T, -1)
        ref = lambda: F.kl_div(F.log_softmax(z / args.T, -1), p, reduction="batchmean")  # noqa: E731
        assert abs(float(ref()) - float(soft_kl(z, p, args.T))) < 1e-4 * max(1.0, float(ref()))
        t_ref = _time(ref, args.repeats)
        t_dense = _time(lambda: soft_kl(z, p, args.T), args.repeats)
        for k in (10, 20):
            s = storage_bytes_per_frame(k, P)
            tk = topk_targets(p, k)
            t_top = _time(lambda: soft_kl(z, tk, args.T), args.repeats)
            print(f"{P:>6} {k:>4} {s['bytes_per_frame']:>8} {s['dense_bytes_per_frame']:>7} "
                  f"{100 * s['ratio']:>6.2f}%  {t_top / t_ref:>10.2f} {t_dense / t_ref:>11.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

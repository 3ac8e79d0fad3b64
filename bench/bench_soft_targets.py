"""Soft-target storage and KD-loss cost: top-k vs dense, and kd_loss vs a torch reference.

Prints, for several pdf counts P: bytes per frame of the top-k store (k·(4+2): int32 id + float16
prob) vs dense float32 (4·P), and the time of `soft_kl` on top-k and dense targets relative to the
reference `F.kl_div(log_softmax(z/T), p)` on dense targets (values checked equal on dense input).
Then the frame-accuracy difference: on a synthetic task (`nnet.data.make_synthetic`, P=--acc-pdfs,
13-dim frames, label = a function of the frame; 1 torch thread) a 256x2 teacher is trained on hard
labels, and two identical 128x2 students (same seed and frame order) are trained with `soft_kl` on
its dense or top-k targets at T; their held-out frame accuracy against the true labels is compared.
Writes bench/results/soft_targets.json.
Usage: python bench/bench_soft_targets.py [--frames 4096] [--repeats 20] [--acc-k 20]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from acoustic_kd.distill.loss import soft_kl
from acoustic_kd.distill.targets import storage_bytes_per_frame, topk_targets
from acoustic_kd.nnet import FrameDataset, ModelConfig, TrainConfig, build_model, frame_metrics, train
from acoustic_kd.nnet.data import make_synthetic
from acoustic_kd.utils import get_logger

RESULTS = Path(__file__).resolve().parent / "results" / "soft_targets.json"


def _time(fn, repeats: int) -> float:
    """Best-of-`repeats` seconds per call (robust on a shared machine)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def accuracy_difference(k: int, num_pdfs: int, T: float, epochs: int, utts: int = 300, lr: float = 3e-3,
                        seed: int = 0) -> dict:
    """Held-out frame accuracy of students trained on dense vs top-k teacher targets (synthetic task)."""
    get_logger("nnet.trainer").setLevel("WARNING")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # tiny models: one thread is fastest and unaffected by other load
    try:
        return _accuracy_difference(k, num_pdfs, T, epochs, utts, lr, seed)
    finally:
        torch.set_num_threads(threads)


def _accuracy_difference(k, num_pdfs, T, epochs, utts, lr, seed) -> dict:
    ctx, dim = (0, 0), 13   # the synthetic label is a function of the centre frame only
    tr_f, tr_a = make_synthetic(utts, num_pdfs, dim, 80, 120, seed=seed, task_seed=seed)
    dv_f, dv_a = make_synthetic(max(1, utts // 5), num_pdfs, dim, 80, 120, seed=seed + 100, task_seed=seed)
    train_ds, dev_ds = FrameDataset.from_arrays(tr_f, tr_a, ctx), FrameDataset.from_arrays(dv_f, dv_a, ctx)
    tcfg = TrainConfig(epochs=epochs, patience=0, log_every=0, keep_epochs=1, device="cpu",
                       warmup_steps=20, lr=lr, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(seed)
        teacher = build_model(ModelConfig(hidden=256, layers=2, context=ctx), dim, num_pdfs)
        train(teacher, train_ds, None, tcfg, Path(tmp) / "teacher")
        teacher.eval()
        with torch.no_grad():   # targets of every training frame, indexed by global frame id
            logits = torch.cat([teacher(b["x"]) for b in train_ds.iter_batches(4096)])
        dense = torch.softmax(logits / T, -1)
        top_idx, top_p = topk_targets(dense, k)
        acc = {"teacher": frame_metrics(teacher, dev_ds)["acc"]}
        for name, target in (("dense", lambda i: dense[i]), ("topk", lambda i: (top_idx[i], top_p[i]))):
            torch.manual_seed(seed + 1)
            student = build_model(ModelConfig(hidden=128, layers=2, context=ctx), dim, num_pdfs)

            def objective(model, batch, target=target):
                z = model(batch["x"])
                return soft_kl(z, target(batch["idx"]), T), z

            train(student, train_ds, None, tcfg, Path(tmp) / name, objective=objective)
            acc[name] = frame_metrics(student, dev_ds)["acc"]
    return {"k": k, "num_pdfs": num_pdfs, "T": T, "epochs": epochs, "train_frames": train_ds.num_frames,
            "dev_frames": dev_ds.num_frames, "teacher": round(acc["teacher"], 4),
            "dense": round(acc["dense"], 4), "topk": round(acc["topk"], 4),
            "difference": round(acc["topk"] - acc["dense"], 4)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--T", type=float, default=2.0)
    ap.add_argument("--acc-k", type=int, default=20, help="k of the accuracy comparison (0 = skip it)")
    ap.add_argument("--acc-pdfs", type=int, default=200, help="pdfs of the synthetic accuracy task")
    ap.add_argument("--acc-epochs", type=int, default=5)
    ap.add_argument("--acc-utts", type=int, default=300, help="synthetic training utterances (~100 frames)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    rows = []
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
            rows.append({"P": P, "k": k, **s, "ratio": round(s["ratio"], 4),
                         "t_topk_over_ref": round(t_top / t_ref, 3),
                         "t_dense_over_ref": round(t_dense / t_ref, 3)})
    res = {"frames": args.frames, "T": args.T, "headline_k": 20, "rows": rows,
           "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    if args.acc_k:
        a = res["accuracy"] = accuracy_difference(args.acc_k, args.acc_pdfs, args.T, args.acc_epochs,
                                                      args.acc_utts)
        print(f"held-out frame accuracy of a student on dense targets {a['dense']:.4f}, on top-{a['k']} "
              f"{a['topk']:.4f} (difference {100 * a['difference']:+.2f} points; teacher {a['teacher']:.4f})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

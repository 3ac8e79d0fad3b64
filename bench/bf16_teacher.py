"""What a bfloat16 teacher changes in the soft targets, and what it saves: fp32 vs bf16 members.

Runs the same ensemble (the members' checkpoints, combined by --rule) over every frame of a data
dir twice, in float32 and under bfloat16 autocast, and prints the wall time of each, the frame
accuracy of both tempered combinations' argmax against the alignments (if --ali is given; for the
arithmetic rule this differs from the T = 1 ensemble's), the mean KL(fp32 || bf16) of the
temperature-T targets, the share of frames whose top-k pdf ids are the same set, and the
probability mass the top-k keeps (what a top-k store leaves to the uniform remainder).
Usage: python bench/bf16_teacher.py --members exp/members/m*/final.pt --data data/dev
           [--ali exp/tri2/ali_dev] [--T 5] [--k 20] [--rule arithmetic] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from acoustic_kd.ali import read_alignments
from acoustic_kd.ensemble.runner import load_teacher
from acoustic_kd.model_meta import CheckpointMeta, same_features
from acoustic_kd.nnet.data import FrameDataset


def run_teacher(teacher, ds, T: float, batch: int = 4096):
    """(combined probs at T [N, P] float32, their argmax [N], seconds)."""
    probs, argmax = [], []
    t0 = time.perf_counter()
    with torch.no_grad():
        for b in range(0, ds.num_frames, batch):
            x = ds.batch(torch.arange(b, min(ds.num_frames, b + batch)))["x"]
            p = teacher(x, T)
            probs.append(p)
            argmax.append(p.argmax(dim=1))    # of the tempered combination (the arithmetic mean's
            #                                   argmax at T differs from its argmax at T = 1)
    return torch.cat(probs), torch.cat(argmax), time.perf_counter() - t0


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", nargs="+", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--ali", default=None, help="alignments of --data (frame accuracy)")
    ap.add_argument("--T", type=float, default=5.0)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--rule", default="arithmetic")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    res = {"data": args.data, "T": args.T, "k": args.k, "rule": args.rule, "threads": args.threads}
    out = {}
    for name, bf16 in (("fp32", False), ("bf16", True)):
        teacher, metas = load_teacher(args.members, args.rule, bf16=bf16)
        fs = same_features([CheckpointMeta.from_dict(m) for m in metas], args.members).features(args.data)
        alis = read_alignments(args.ali) if args.ali else None
        ds = FrameDataset(fs, alis, teacher.context)
        out[name] = run_teacher(teacher, ds, args.T)
        res[f"{name}_seconds"] = round(out[name][2], 2)
        if alis is not None:
            labels = ds.batch(torch.arange(ds.num_frames))["y"]
            res[f"{name}_frame_acc"] = round(100 * (out[name][1] == labels).float().mean().item(), 3)
    p32, p16 = out["fp32"][0], out["bf16"][0]
    eps = 1e-12
    kl = (p32 * ((p32 + eps).log() - (p16 + eps).log())).sum(dim=1)
    top32 = p32.topk(args.k, dim=1)
    top16 = p16.topk(args.k, dim=1).indices
    same = (top32.indices.sort(dim=1).values == top16.sort(dim=1).values).all(dim=1)
    res.update({"frames": int(p32.shape[0]), "pdfs": int(p32.shape[1]),
                "speedup": round(res["fp32_seconds"] / res["bf16_seconds"], 2),
                "kl_fp32_bf16_mean": float(kl.mean()), "kl_fp32_bf16_p99": float(kl.quantile(0.99)),
                "same_topk_set": round(float(same.float().mean()), 4),
                "same_argmax": round(float((out["fp32"][1] == out["bf16"][1]).float().mean()), 4),
                "topk_mass_mean": round(float(top32.values.sum(dim=1).mean()), 4)})
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
    return res


if __name__ == "__main__":
    main()

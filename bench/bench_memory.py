"""Peak RSS of one epoch over a Kaldi feature set: streaming vs in-memory frame dataset.

Writes random float32 features (feats.ark/scp, utt2num_frames) of about --mb megabytes, then, in a
fresh subprocess per dataset kind, builds the dataset, iterates one shuffled epoch and reports the
growth of peak RSS (VmHWM, else ru_maxrss) over the baseline taken after the imports. Results go to
bench/results/memory.json.

  python bench/bench_memory.py --mb 50 200
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

_CHILD = r"""
import json, resource, sys, time
import numpy as np
import torch
from acoustic_kd.features import FeatureSet
from acoustic_kd.nnet.data import FrameDataset
from acoustic_kd.nnet.stream import StreamingFrameDataset
torch.set_num_threads(1)


def peak_rss():
    # VmHWM (this process's own high-water mark); ru_maxrss is inherited from the parent across
    # fork + exec on Linux, so under a big parent (pytest) it would hide the child's growth
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


feats_dir, kind, shard_utts, buffer_shards, batch = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
fs = FeatureSet(feats_dir, cmvn="none")
fs[fs.utts[0]]   # warm up kaldiio/numpy allocations before the baseline
base = peak_rss()
t0 = time.time()
if kind == "streaming":
    ds = StreamingFrameDataset(fs, None, (2, 2), shard_utts=shard_utts, buffer_shards=buffer_shards)
else:
    ds = FrameDataset(fs, None, (2, 2))
seen = 0
for b in ds.iter_batches(batch, shuffle=True, seed=0, epoch=0):
    seen += len(b["idx"])
peak = peak_rss()
print(json.dumps({"kind": kind, "frames_seen": seen, "baseline_rss_bytes": base,
                  "peak_rss_bytes": peak, "rss_growth_bytes": peak - base,
                  "max_resident_frames": getattr(ds, "max_resident_frames", ds.num_frames),
                  "seconds": round(time.time() - t0, 2)}))
"""


def write_features(out_dir: str | os.PathLike, num_utts: int, frames: int, dim: int = 40,
                   seed: int = 0) -> int:
    """Random float32 features [frames, dim] x num_utts as a Kaldi ark/scp; returns the data bytes."""
    import kaldiio

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with kaldiio.WriteHelper(f"ark,scp:{out / 'feats.ark'},{out / 'feats.scp'}") as w:
        for i in range(num_utts):
            w[f"utt{i:06d}"] = rng.standard_normal((frames, dim), dtype=np.float32)
    (out / "utt2num_frames").write_text("".join(f"utt{i:06d} {frames}\n" for i in range(num_utts)))
    return num_utts * frames * dim * 4


def measure(feats_dir: str | os.PathLike, kind: str, shard_utts: int = 16, buffer_shards: int = 2,
            batch_size: int = 512) -> dict:
    """Run one epoch of `kind` ("streaming" or "memory") in a fresh process; return its RSS figures."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)}
    r = subprocess.run([sys.executable, "-c", _CHILD, str(feats_dir), kind, str(shard_utts),
                        str(buffer_shards), str(batch_size)], env=env, capture_output=True,
                       text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, nargs="+", default=[50.0, 200.0],
                    help="sizes of the feature sets in MB (one measurement each)")
    ap.add_argument("--frames", type=int, default=1000, help="frames per utterance")
    ap.add_argument("--dim", type=int, default=40)
    ap.add_argument("--shard-utts", type=int, default=16)
    ap.add_argument("--buffer-shards", type=int, default=2)
    ap.add_argument("--work", default="/tmp/acoustic_kd_bench_memory", help="scratch dir")
    ap.add_argument("--skip-memory", action="store_true", help="do not run the in-memory baseline")
    args = ap.parse_args()
    t0 = time.time()
    buffer_bytes = args.shard_utts * args.buffer_shards * args.frames * args.dim * 4
    res = {"frames_per_utt": args.frames, "dim": args.dim, "shard_utts": args.shard_utts,
           "buffer_shards": args.buffer_shards, "buffer_bytes": buffer_bytes, "sets": []}
    for mb in args.mb:
        num_utts = max(1, int(mb * 1e6 / (args.frames * args.dim * 4)))
        size = write_features(args.work, num_utts, args.frames, args.dim)
        runs = [measure(args.work, "streaming", args.shard_utts, args.buffer_shards)]
        if not args.skip_memory:
            runs.append(measure(args.work, "memory"))
        shutil.rmtree(args.work, ignore_errors=True)
        for r in runs:
            r["growth_over_data"] = round(r["rss_growth_bytes"] / size, 4)
            print(f"{r['kind']:9s} data {size / 1e6:4.0f} MB  peak RSS growth "
                  f"{r['rss_growth_bytes'] / 1e6:6.1f} MB ({100 * r['growth_over_data']:5.1f}% of the data)  "
                  f"{r['seconds']} s")
        res["sets"].append({"data_bytes": size, "num_utts": num_utts, "runs": runs})
    res["seconds"] = round(time.time() - t0, 1)
    out = HERE / "results" / "memory.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Speed of the features stage vs raw kaldi-native-fbank compute on the same audio, same run.

Stage = `make_features` (read + resample + fbank + CMVN stats + ark/scp write + merge), nj=1, in
this process. Raw = kaldi-native-fbank alone (OnlineFbank accept + get_frame) on the same samples
already in memory. Both are reported in x real time per core (audio seconds / CPU seconds, and
audio seconds / wall seconds); ratio = stage speed / raw speed (goal >= 0.6). Each is the best of
--repeat runs, interleaved so that load from other processes hits both alike.

Default input: FSDD recordings (../shared/corpora/fsdd, 8 kHz) put in a temporary data dir;
--data uses an existing data dir instead. Writes bench/results/features.json and prints one line.

    python bench/bench_features.py [--data DIR] [--limit N] [--sample-rate 8000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import kaldi_native_fbank as knf
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("ACOUSTIC_KD_LOGLEVEL", "WARNING")  # before acoustic_kd sets up logging

from acoustic_kd.data import DataDir, load_audio  # noqa: E402
from acoustic_kd.features import FbankConfig, make_features  # noqa: E402
from acoustic_kd.utils import versions  # noqa: E402

FSDD = REPO.parent / "shared" / "corpora" / "fsdd" / "recordings"


def fsdd_data_dir(out: Path, limit: int | None) -> Path:
    """A data dir over the FSDD recordings (`{digit}_{speaker}_{idx}.wav`; speaker-prefixed utt ids)."""
    if not FSDD.is_dir():
        sys.exit(f"{FSDD} not found; pass --data DIR")
    wavs = sorted(FSDD.glob("*.wav"))[:limit]
    rows = {}
    for w in wavs:
        digit, spk, idx = w.stem.split("_")
        rows[f"{spk}_{digit}_{idx}"] = (spk, str(w))
    DataDir(path=None, wav_scp={u: w for u, (_, w) in rows.items()},
            text={u: u.split("_")[1] for u in rows},
            utt2spk={u: spk for u, (spk, _) in rows.items()}).save(out)
    return out


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of fn()."""
    w, c = time.perf_counter(), cpu_seconds()
    fn()
    return time.perf_counter() - w, cpu_seconds() - c


def raw_fbank(audio: list[np.ndarray], cfg: FbankConfig) -> int:
    """kaldi-native-fbank alone on in-memory samples; returns the frame count."""
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = cfg.sample_rate
    opts.frame_opts.dither = cfg.dither
    opts.mel_opts.num_bins = cfg.num_mel_bins
    frames = 0
    for x in audio:
        fb = knf.OnlineFbank(opts)
        fb.accept_waveform(cfg.sample_rate, (x * 32768).tolist())
        fb.input_finished()
        frames += np.stack([fb.get_frame(i) for i in range(fb.num_frames_ready)]).shape[0] \
            if fb.num_frames_ready else 0
    return frames


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="existing data dir (default: FSDD recordings)")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N FSDD files")
    ap.add_argument("--sample-rate", type=int, default=8000, help="feature sample rate (Hz)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each; the best is kept")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "features.json"))
    args = ap.parse_args()
    cfg = FbankConfig(sample_rate=args.sample_rate)
    tmp = Path(tempfile.mkdtemp(prefix="bench_features_"))
    try:
        src = Path(args.data) if args.data else fsdd_data_dir(tmp / "src", args.limit)
        work = tmp / "train"
        skip = shutil.ignore_patterns("data", "log", "feats.scp", "cmvn.scp", ".*.done")
        shutil.copytree(src, work, ignore=skip)
        data = DataDir.load(work)
        audio = [load_audio(data, u, cfg.sample_rate) for u in data.utts]
        audio_s = sum(x.size for x in audio) / cfg.sample_rate
        make_features(work, cfg, nj=1, force=True)  # warm the page cache and imports
        raw, stage, read = [], [], []
        for _ in range(args.repeat):
            raw.append(timed(lambda: raw_fbank(audio, cfg)))
            stage.append(timed(lambda: make_features(work, cfg, nj=1, force=True)))
            read.append(timed(lambda: [load_audio(data, u, cfg.sample_rate) for u in data.utts]))
        counts = make_features(work, cfg, nj=1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    best_raw = (min(w for w, _ in raw), min(c for _, c in raw))
    best_stage = (min(w for w, _ in stage), min(c for _, c in stage))
    res = {
        "utterances": counts["done"], "failed": counts["failed"], "audio_seconds": round(audio_s, 2),
        "sample_rate": cfg.sample_rate, "num_mel_bins": cfg.num_mel_bins,
        "stage_xrt_per_core_cpu": round(audio_s / best_stage[1], 1),
        "stage_xrt_per_core_wall": round(audio_s / best_stage[0], 1),
        "raw_knf_xrt_per_core_cpu": round(audio_s / best_raw[1], 1),
        "raw_knf_xrt_per_core_wall": round(audio_s / best_raw[0], 1),
        "ratio_cpu": round(best_raw[1] / best_stage[1], 3),
        "ratio_wall": round(best_raw[0] / best_stage[0], 3),
        "goal_ratio": 0.6,
        "breakdown_cpu_s": {"stage": round(best_stage[1], 3), "raw_fbank": round(best_raw[1], 3),
                            "audio.load_audio": round(min(c for _, c in read), 3)},
        "runs_wall_cpu_s": {k: [[round(w, 3), round(c, 3)] for w, c in v]
                            for k, v in (("raw", raw), ("stage", stage), ("read", read))},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_avg_1m": os.getloadavg()[0]},
        "versions": versions(), "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(f"features stage: {res['stage_xrt_per_core_cpu']}x real time per core (CPU; wall "
          f"{res['stage_xrt_per_core_wall']}x) on {res['utterances']} utts / {audio_s:.0f} s; raw "
          f"kaldi-native-fbank {res['raw_knf_xrt_per_core_cpu']}x; ratio {res['ratio_cpu']} "
          f"(wall {res['ratio_wall']}, goal >= 0.6)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

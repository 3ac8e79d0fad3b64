#!/usr/bin/env python
"""Deployment speed in one run: fp32 ensemble (K members) vs fp32 student vs int8 student.

Every system maps CMVN'd features [T, D] of one utterance to log posteriors [T, P], utterance by
utterance, on the same features and thread count, interleaved round by round (the best round per
system is kept, so load from other processes hurts every system alike). Systems:
  ensemble_torch_fp32   K checkpoints, `nnet.infer.log_posteriors` + arithmetic combination
  ensemble_onnx_fp32    the K members exported to ONNX, onnxruntime + the same combination
  student_torch_fp32    the student checkpoint in torch
  student_onnx_fp32 / student_onnx_int8 / student_torchscript   the student's export files
Goal: int8 student >= 10x the frames/s of the fp32 ensemble (either runtime).

Models are checkpoints (--members, --student) or random networks of the given sizes (defaults:
members = `ModelConfig()` defaults; student a 256x2 MLP with the same context). Export sizes come
from --export (a real export directory) or from network-only files written here. With --export and
--data (a data dir with text) it also transcribes the set with the fp32 and int8 exports and reports
both WERs; --compare-hyp names the decode stage's hyp.txt for the same model to count agreements.
Writes bench/results/deploy.json and prints a summary.

    python bench/bench_deploy.py [--k 4] [--frames 6000] [--threads 1]
    python bench/bench_deploy.py --members exp/members/m*/final.pt --student exp/student_kd/final.pt \\
        --export exp/export --data data/test --compare-hyp exp/decode/student_kd_test/hyp.txt
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("ACOUSTIC_KD_LOGLEVEL", "WARNING")

import torch  # noqa: E402

from acoustic_kd.ensemble import combine  # noqa: E402
from acoustic_kd.export.runtime import FORMAT_FILES, OnnxBackend, load_exported  # noqa: E402
from acoustic_kd.export.writer import (SplicedLogPosteriors, write_int8, write_onnx,  # noqa: E402
                                       write_torchscript)
from acoustic_kd.nnet.checkpoint import load_checkpoint  # noqa: E402
from acoustic_kd.nnet.infer import log_posteriors  # noqa: E402
from acoustic_kd.nnet.models import ModelConfig, build_model, count_params, macs_per_frame  # noqa: E402
from acoustic_kd.utils import set_num_threads, versions  # noqa: E402

Forward = Callable[[np.ndarray], np.ndarray]   # feats [T, D] -> log posteriors [T, P]


def models(args) -> tuple[list[torch.nn.Module], torch.nn.Module]:
    """(K member models, student model): from checkpoints, or random of the requested sizes."""
    if args.members:
        members = [load_checkpoint(p)[0] for p in args.members]
    else:
        torch.manual_seed(0)
        members = [build_model(ModelConfig(), args.dim, args.pdfs).eval() for _ in range(args.k)]
    if args.student:
        student = load_checkpoint(args.student)[0]
    else:
        cfg = ModelConfig(hidden=args.student_hidden, layers=args.student_layers)
        student = build_model(cfg, members[0].input_dim, members[0].num_pdfs).eval()
    return members, student


def onnx_files(model: torch.nn.Module, work: Path, name: str, int8: bool = False) -> dict[str, Path]:
    """Network-only export files of `model` (no metadata) for timing and sizes."""
    left, right = model.config.context
    out = {"onnx": work / f"{name}.onnx"}
    write_onnx(SplicedLogPosteriors(model, left, right).eval(), model.input_dim, out["onnx"], {})
    if int8:
        out["int8"] = work / f"{name}.int8.onnx"
        write_int8(out["onnx"], out["int8"], {})
        out["torchscript"] = work / f"{name}.pt"
        write_torchscript(model, left, right, model.input_dim, out["torchscript"], {})
    return out


def systems(members, student, work: Path, export_dir: Path | None, threads: int
            ) -> tuple[dict[str, Forward], dict[str, int]]:
    """name -> forward function, and name -> bytes on disk."""
    sizes: dict[str, int] = {}
    member_onnx = []
    for i, m in enumerate(members):
        f = onnx_files(m, work, f"member{i}")["onnx"]
        sizes[f"member{i}.onnx"] = f.stat().st_size
        member_onnx.append(OnnxBackend(f, threads))
    if export_dir is not None:
        files = {fmt: export_dir / name for fmt, name in FORMAT_FILES.items()}
        runs = {fmt: load_exported(export_dir, fmt, threads).log_posteriors for fmt in files}
    else:
        files = onnx_files(student, work, "student", int8=True)
        runs = {fmt: OnnxBackend(files[fmt], threads).run for fmt in ("onnx", "int8")}
        ts = torch.jit.load(str(files["torchscript"]))
        runs["torchscript"] = lambda x: ts(torch.from_numpy(x)).detach().numpy()
    sizes.update({f"student.{fmt}": p.stat().st_size for fmt, p in files.items()})
    fns: dict[str, Forward] = {
        "ensemble_torch_fp32": lambda x: combine([log_posteriors(m, x) for m in members]),
        "ensemble_onnx_fp32": lambda x: combine([b.run(x) for b in member_onnx]),
        "student_torch_fp32": lambda x: log_posteriors(student, x),
        "student_onnx_fp32": runs["onnx"],
        "student_onnx_int8": runs["int8"],
        "student_torchscript": runs["torchscript"],
    }
    return fns, sizes


def time_systems(fns: dict[str, Forward], utts: list[np.ndarray], rounds: int) -> dict[str, float]:
    """Best wall seconds per system over `rounds` interleaved passes over all utterances."""
    for fn in fns.values():   # warm-up (allocations, lazy initialisation)
        fn(utts[0])
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for x in utts:
                fn(x)
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def transcription_wer(export_dir: Path, data_dir: Path, compare_hyp: Path | None,
                      threads: int) -> dict:
    """WER of the fp32 and int8 exports on a data dir (+ agreement with the decode stage)."""
    from acoustic_kd.data import DataDir, load_audio
    from acoustic_kd.decode.score import read_text, score

    data = DataDir.load(data_dir)
    refs = {u: data.text[u].split() for u in data.utts}
    out: dict = {"data": str(data_dir), "utterances": len(refs)}
    hyps_by = {}
    for fmt in ("onnx", "int8"):
        em = load_exported(export_dir, fmt, threads)
        hyps = {u: em.transcribe(load_audio(data, u, em.sample_rate), em.sample_rate).words
                for u in data.utts}
        res, _ = score(refs, hyps)
        out[f"wer_{fmt}"] = res.to_dict()
        hyps_by[fmt] = hyps
    out["wer_change_int8_minus_fp32"] = out["wer_int8"]["wer"] - out["wer_onnx"]["wer"]
    out["int8_same_hyp_as_fp32"] = sum(hyps_by["onnx"][u] == hyps_by["int8"][u] for u in refs)
    if compare_hyp is not None:
        stage = read_text(compare_hyp)
        out["decode_stage_hyp"] = str(compare_hyp)
        out["same_hyp_as_decode_stage"] = sum(stage.get(u) == hyps_by["onnx"][u] for u in refs)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--members", nargs="*", default=[], help="member checkpoints (default: random)")
    p.add_argument("--student", help="student checkpoint (default: random)")
    p.add_argument("--export", type=Path, help="the student's export dir (acoustic-kd export)")
    p.add_argument("--data", type=Path, help="data dir to transcribe with --export (WER fp32 vs int8)")
    p.add_argument("--compare-hyp", type=Path, help="decode stage hyp.txt of the same model")
    p.add_argument("--k", type=int, default=4, help="random members (without --members)")
    p.add_argument("--pdfs", type=int, default=200, help="random models' outputs")
    p.add_argument("--dim", type=int, default=40, help="feature dimension")
    p.add_argument("--student-hidden", type=int, default=256)
    p.add_argument("--student-layers", type=int, default=2)
    p.add_argument("--frames", type=int, default=6000, help="frames timed per system and round")
    p.add_argument("--utt-frames", type=int, default=200, help="frames per utterance (2 s)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="threads of every runtime")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "deploy.json")
    args = p.parse_args(argv)
    set_num_threads(args.threads)
    members, student = models(args)
    rng = np.random.default_rng(0)
    utts = [rng.standard_normal((args.utt_frames, members[0].input_dim)).astype(np.float32)
            for _ in range(max(1, args.frames // args.utt_frames))]
    frames = sum(len(u) for u in utts)
    with tempfile.TemporaryDirectory() as tmp:
        fns, sizes = systems(members, student, Path(tmp), args.export, args.threads)
        seconds = time_systems(fns, utts, args.rounds)
    fps = {k: frames / s for k, s in seconds.items()}
    speedup = {f"int8_student_vs_{e}": fps["student_onnx_int8"] / fps[e]
               for e in ("ensemble_onnx_fp32", "ensemble_torch_fp32")}
    speedup["int8_vs_fp32_student_onnx"] = fps["student_onnx_int8"] / fps["student_onnx_fp32"]
    speedup["fp32_student_vs_ensemble_onnx"] = fps["student_onnx_fp32"] / fps["ensemble_onnx_fp32"]
    result = {
        "frames": frames, "threads": args.threads, "rounds": args.rounds,
        "members": {"k": len(members), "params_each": count_params(members[0]),
                    "macs_per_frame_each": macs_per_frame(members[0]),
                    "checkpoints": args.members or "random ModelConfig()"},
        "student": {"params": count_params(student), "macs_per_frame": macs_per_frame(student),
                    "checkpoint": args.student or f"random {args.student_hidden}x{args.student_layers}",
                    "export": str(args.export) if args.export else "network-only files"},
        "frames_per_s": {k: round(v, 1) for k, v in fps.items()},
        "speedup": {k: round(v, 2) for k, v in speedup.items()},
        "goal_int8_vs_ensemble": 10.0,
        "goal_met": min(speedup["int8_student_vs_ensemble_onnx_fp32"],
                        speedup["int8_student_vs_ensemble_torch_fp32"]) >= 10.0,
        "bytes_on_disk": sizes,
        "load_avg_1m": os.getloadavg()[0], "cpus": os.cpu_count(), "versions": versions(),
    }
    if args.export and args.data:
        result["transcription"] = transcription_wer(args.export, args.data, args.compare_hyp,
                                                    args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for k, v in result["frames_per_s"].items():
        print(f"{k:<22} {v:>12,.0f} frames/s")
    print("speed-ups:", ", ".join(f"{k} {v:.1f}x" for k, v in result["speedup"].items()))
    print("sizes:", ", ".join(f"{k} {v / 1024:,.0f} kB" for k, v in sizes.items()))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

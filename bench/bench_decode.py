#!/usr/bin/env python
"""Decoding real-time factor including the network forward, on a digit-loop graph, 2 threads.

RTF = (network forward + prior scaling + FasterDecoder search) wall seconds / audio seconds
(10 ms frames), goal <= 0.05. The model is a checkpoint (--checkpoint) or a randomly initialised
network of the default architecture (`ModelConfig()`; a random net's flat posteriors make the search
harder than a trained one's, so this is pessimistic for search). Features are random [T, 40] unless
--data names a data dir with features. The graph is the 11-word digit loop (cmudict pronunciations,
monophone HMM from the lang topology) unless --graph names a built graph dir.
Writes bench/results/decode.json and prints one line.

    python bench/bench_decode.py [--utts 100] [--seconds 1.5] [--threads 2] [--checkpoint final.pt]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("ACOUSTIC_KD_LOGLEVEL", "WARNING")

from acoustic_kd.decode.decoder import (ChunkedLogPost, DecodeConfig, Graph, decode_set,  # noqa: E402
                                        nnet_log_posteriors)
from acoustic_kd.decode.graph import build_graph  # noqa: E402
from acoustic_kd.utils import set_num_threads, versions  # noqa: E402

DIGITS = ["ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE", "OH"]


def digit_graph(work: Path) -> Path:
    """Lang dir (cmudict digits, unigram loop) + monophone HMM -> graph dir."""
    from acoustic_kd.hmm import HmmModel
    from acoustic_kd.lang import prepare_lang

    rng = np.random.default_rng(0)
    texts = {f"u{i:03d}": " ".join(rng.choice(DIGITS, 4)) for i in range(50)}
    lang = prepare_lang(texts, "cmudict", work / "lang")
    hmm = HmmModel.monophone(lang.phones, lang.topo, lang.silence_phone)
    build_graph(work / "lang", hmm, work / "graph")
    return work / "graph"


def model_and_source(args, num_pdfs: int):
    """(utt -> log-posteriors fn, utts, audio seconds, description)."""
    import torch

    from acoustic_kd.nnet.infer import log_posteriors
    from acoustic_kd.nnet.models import ModelConfig, build_model, count_params

    if args.checkpoint:
        from acoustic_kd.nnet.checkpoint import load_checkpoint
        model, meta = load_checkpoint(args.checkpoint)
        context, dim = tuple(meta["context"]), int(meta["input_dim"])
    else:
        cfg = ModelConfig()
        torch.manual_seed(0)
        model, context, dim = build_model(cfg, 40, num_pdfs).eval(), cfg.context, 40
    if args.data:
        from acoustic_kd.features import FeatureSet
        feats = FeatureSet(args.data)
        utts = feats.utts[:args.utts]
        get = feats.__getitem__
        frames = sum(feats.num_frames(u) for u in utts)
    else:
        rng = np.random.default_rng(1)
        T = int(args.seconds * 100)
        mats = {f"u{i:04d}": rng.normal(0, 1, (T, dim)).astype(np.float32) for i in range(args.utts)}
        utts, get, frames = sorted(mats), mats.__getitem__, T * args.utts
    mats_of = (lambda us: {u: get(u) for u in us})
    desc = f"{type(model).__name__} {count_params(model) / 1e6:.2f}M params, context {context}"
    many = (lambda us: nnet_log_posteriors([(model, {"context": context})], mats_of(us), us))
    fn = ChunkedLogPost(many, utts, args.chunk) if args.chunk > 1 else \
        (lambda u: log_posteriors(model, get(u), context))
    return fn, utts, frames / 100.0, desc, model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--graph", help="built graph dir (default: digit loop in a temp dir)")
    ap.add_argument("--checkpoint", help="model checkpoint (default: random default-architecture net)")
    ap.add_argument("--data", help="data dir with features (default: random features)")
    ap.add_argument("--utts", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=1.5, help="length of random utterances")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=32, help="utterances per network forward (1 = one)")
    ap.add_argument("--beam", type=float, default=15.0)
    ap.add_argument("--acwt", type=float, default=0.1)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "decode.json"))
    args = ap.parse_args()
    set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_decode_") as tmp:
        graph = Graph.load(args.graph or digit_graph(Path(tmp)))
    P = int(graph.info["num_pdfs"])
    fn, utts, audio_s, desc, _ = model_and_source(args, P)
    log_priors = np.full(P, -np.log(P))
    cfg = DecodeConfig(acwt=args.acwt, beam=args.beam)
    decode_set(graph, utts[:5], fn, log_priors, cfg)                      # warm-up
    cpu0 = time.process_time()
    results, timing = decode_set(graph, utts, fn, log_priors, cfg)
    cpu_s = time.process_time() - cpu0
    res = {"utterances": len(utts), "audio_seconds": round(audio_s, 2), "model": desc,
           "graph_states": graph.info.get("num_states"), "graph_arcs": graph.info.get("num_arcs"),
           "num_pdfs": P, "threads": args.threads, "beam": args.beam, "acwt": args.acwt,
           "rtf": round(timing["total_s"] / audio_s, 4),
           "rtf_forward": round(timing["forward_s"] / audio_s, 4),
           "rtf_search": round(timing["search_s"] / audio_s, 4), "goal_rtf": 0.05,
           "rtf_cpu": round(cpu_s / audio_s, 4), "chunk": args.chunk,
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                       "load_avg_1m": os.getloadavg()[0]},
           "versions": versions(), "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(f"decode RTF {res['rtf']} wall (forward {res['rtf_forward']}, search {res['rtf_search']}; "
          f"CPU-time RTF {res['rtf_cpu']}; goal "
          f"<= 0.05) on {len(utts)} utts / {audio_s:.0f} s, {desc}, {P} pdfs, {args.threads} threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())

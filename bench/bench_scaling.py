#!/usr/bin/env python
"""How the time of features, one training epoch and decoding grows with corpus size (1x, 2x, 4x).

For nested subsets of --base x --factors utterances (default 750 x 1, 2, 4: all 3000 FSDD
recordings at 4x, no synthesis; or synth_digits training utterances, rendered once and untimed,
with --corpus synth) it times, in this process with 1 torch thread:
  features  `make_features` (read + fbank + CMVN stats + ark/scp write), nj=1, forced
  train     FeatureSet load + FrameDataset build + one epoch of the real trainer on a small MLP
            (256x2, context 5+5) with crude alignments: each utterance's HMM states (silence,
            the words' phones, silence) get equal shares of its frames (no GMM aligner)
  decode    network forward + FasterDecoder search on the digit-loop graph (cmudict, monophone
            HMM), always with the model trained on the 1x subset, so the search effort per frame
            does not change with size
CPU seconds (user + system of this process) per stage per size, best of --repeat interleaved rounds.
The exponent b of time ~ size^b is the least-squares slope in log-log space, size = frames;
b ~ 1 is linear, b < 1 means fixed costs still dominate the smallest size. Writes
bench/results/scaling.json (with a `summary` line) and prints a table.

    python bench/bench_scaling.py [--base 750] [--factors 1 2 4] [--repeat 5] [--corpus fsdd|synth]
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

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("ACOUSTIC_KD_LOGLEVEL", "WARNING")  # before acoustic_kd sets up logging

from acoustic_kd.utils import get_logger, set_num_threads, versions  # noqa: E402

set_num_threads(1)   # CPU seconds of one thread: comparable across sizes on a shared machine

import torch  # noqa: E402

from acoustic_kd.data import DataDir  # noqa: E402
from acoustic_kd.decode.decoder import (ChunkedLogPost, DecodeConfig, Graph, decode_set,  # noqa: E402
                                        nnet_log_posteriors, words_of)
from acoustic_kd.decode.graph import build_graph  # noqa: E402
from acoustic_kd.features import FbankConfig, FeatureSet, make_features  # noqa: E402
from acoustic_kd.hmm import HmmModel  # noqa: E402
from acoustic_kd.lang import prepare_lang  # noqa: E402
from acoustic_kd.nnet import FrameDataset, ModelConfig, TrainConfig, build_model, train  # noqa: E402

FSDD = REPO.parent / "shared" / "corpora" / "fsdd" / "recordings"
DIGITS = ["ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"]
STAGES = ("features", "train", "decode")


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def timed(fn):
    """(result, wall seconds, CPU seconds) of fn()."""
    w, c = time.perf_counter(), cpu_seconds()
    out = fn()
    return out, time.perf_counter() - w, cpu_seconds() - c


def write_data_dir(out: Path, rows: dict[str, tuple[str, str, str]]) -> Path:
    """Kaldi data dir from {utt: (speaker, wav path, transcript)}."""
    DataDir(path=None, wav_scp={u: r[1] for u, r in rows.items()},
            text={u: r[2] for u, r in rows.items()},
            utt2spk={u: r[0] for u, r in rows.items()}).save(out)
    return out


def fsdd_rows(n: int, seed: int) -> list[tuple[str, tuple[str, str, str]]]:
    """n FSDD recordings in a fixed random order (so smaller subsets nest in larger ones)."""
    if not FSDD.is_dir():
        sys.exit(f"{FSDD} not found; use --corpus synth")
    wavs = sorted(FSDD.glob("*.wav"))
    if n > len(wavs):
        sys.exit(f"the largest subset needs {n} utterances but FSDD has {len(wavs)}; lower --base "
                 "or use --corpus synth")
    order = np.random.default_rng(seed).permutation(len(wavs))[:n]
    rows = []
    for i in order:
        digit, spk, idx = wavs[i].stem.split("_")
        rows.append((f"{spk}_{digit}_{idx}", (spk, str(wavs[i]), DIGITS[int(digit)])))
    return rows


def synth_rows(n: int, seed: int, work: Path) -> list[tuple[str, tuple[str, str, str]]]:
    """n synth_digits training utterances (rendered once, untimed) in a fixed random order."""
    from acoustic_kd.corpora.synth_digits import prepare_synth_digits

    src = prepare_synth_digits(work / "synth", seed=seed, num_train=n, num_dev=0, num_test=1)["train"]
    data = DataDir.load(src)
    order = np.random.default_rng(seed).permutation(len(data.utts))
    rows = []
    for i in order:
        u = data.utts[i]
        wav = data.wav_scp[data.recording_of(u)]
        if data.corpus_root is not None and not Path(wav).is_absolute():
            wav = str(Path(data.corpus_root) / wav)
        rows.append((u, (data.utt2spk[u], wav, data.text[u])))
    return rows


def crude_alignment(lang, hmm: HmmModel, words: list[str], num_frames: int) -> np.ndarray:
    """Equal frame shares for the states of silence + the words' first pronunciations + silence."""
    sil = [pdf for pdf, _, _ in hmm.silence_hmm()]
    states = list(sil)
    for w in words:
        states += [pdf for phone in hmm.word_hmm(lang.prons(w)[0]) for pdf, _, _ in phone]
    states += sil
    pos = np.arange(num_frames) * len(states) // max(num_frames, 1)
    return np.asarray(states, dtype=np.int32)[pos]


def fit_exponent(sizes: list[float], times: list[float]) -> float:
    """Least-squares slope b of log(time) = a + b log(size)."""
    return float(np.polyfit(np.log(sizes), np.log(np.maximum(times, 1e-9)), 1)[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=int, default=750, help="utterances of the 1x subset (FSDD has 3000)")
    ap.add_argument("--factors", type=int, nargs="+", default=[1, 2, 4], help="subset sizes / base")
    ap.add_argument("--corpus", choices=("fsdd", "synth"), default="fsdd")
    ap.add_argument("--repeat", type=int, default=5, help="interleaved rounds; the best is kept")
    ap.add_argument("--hidden", type=int, default=256, help="MLP width")
    ap.add_argument("--layers", type=int, default=2, help="MLP hidden layers")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "scaling.json"))
    args = ap.parse_args()
    for name in ("nnet.trainer", "features", "decode"):
        get_logger(name).setLevel("WARNING")
    t_start = time.time()
    factors = sorted(set(args.factors))
    sizes = [args.base * f for f in factors]
    tmp = Path(tempfile.mkdtemp(prefix="bench_scaling_"))
    try:
        rows = (fsdd_rows(sizes[-1], args.seed) if args.corpus == "fsdd"
                else synth_rows(sizes[-1], args.seed, tmp))
        sample_rate = 8000 if args.corpus == "fsdd" else 16000
        dirs = [write_data_dir(tmp / f"x{f}", dict(rows[:n])) for f, n in zip(factors, sizes)]
        texts = {u: r[2] for u, r in rows}
        lang = prepare_lang(texts, "cmudict", tmp / "lang")
        hmm = HmmModel.monophone(lang.phones, lang.topo, lang.silence_phone)
        build_graph(tmp / "lang", hmm, tmp / "graph")
        graph = Graph.load(tmp / "graph")
        fcfg = FbankConfig(sample_rate=sample_rate)
        mcfg = ModelConfig(arch="mlp", hidden=args.hidden, layers=args.layers, context=(5, 5))
        tcfg = TrainConfig(epochs=1, patience=0, log_every=0, keep_epochs=1, device="cpu",
                           seed=args.seed)
        dcfg = DecodeConfig()
        best = {s: [float("inf")] * len(sizes) for s in STAGES}
        best_wall = {s: [float("inf")] * len(sizes) for s in STAGES}
        frames = [0] * len(sizes)

        def keep(stage: str, i: int, wall: float, cpu: float) -> None:
            best[stage][i] = min(best[stage][i], cpu)
            best_wall[stage][i] = min(best_wall[stage][i], wall)

        def one_epoch(d: Path):
            fs = FeatureSet(d)
            alis = {u: crude_alignment(lang, hmm, texts[u].split(), fs.num_frames(u)) for u in fs.utts}
            ds = FrameDataset(fs, alis, mcfg.context)
            torch.manual_seed(args.seed)
            model = build_model(mcfg, ds.dim, hmm.num_pdfs)
            with tempfile.TemporaryDirectory(dir=tmp) as out:
                train(model, ds, None, tcfg, out)
            return model.eval(), alis

        def decode(d: Path, model):
            fs = FeatureSet(d)
            many = (lambda us: nnet_log_posteriors([(model, {"context": mcfg.context})], fs, us))
            return decode_set(graph, fs.utts, ChunkedLogPost(many, fs.utts, 32), log_priors, dcfg)[0]

        # untimed warm-up (imports, allocator, page cache); its 1x model decodes every size, so the
        # search effort per frame is the same at each size
        make_features(dirs[0], fcfg, nj=1, force=True)
        decoder_model, alis = one_epoch(dirs[0])
        counts = np.bincount(np.concatenate(list(alis.values())), minlength=hmm.num_pdfs)
        log_priors = np.log((counts + 1.0) / (counts.sum() + hmm.num_pdfs))
        results = decode(dirs[0], decoder_model)
        accuracy = float(np.mean([words_of(graph, r) == texts[u].split() for u, r in results.items()]))
        for _ in range(args.repeat):
            for i, d in enumerate(dirs):
                info, w, c = timed(lambda: make_features(d, fcfg, nj=1, force=True))
                keep("features", i, w, c)
                frames[i] = int(info["frames"])
                _, w, c = timed(lambda: one_epoch(d))
                keep("train", i, w, c)
                _, w, c = timed(lambda: decode(d, decoder_model))
                keep("decode", i, w, c)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    exps = {s: round(fit_exponent(frames, best[s]), 3) for s in STAGES}
    exps_wall = {s: round(fit_exponent(frames, best_wall[s]), 3) for s in STAGES}
    ratio = {s: round(best[s][-1] / best[s][0], 2) for s in STAGES}
    res = {
        "corpus": args.corpus, "base_utts": args.base, "factors": factors, "utts": sizes,
        "frames": frames, "size_ratio_largest": round(frames[-1] / frames[0], 3),
        "model": f"mlp {args.hidden}x{args.layers}, context (5, 5), {hmm.num_pdfs} pdfs",
        "threads": 1, "repeat": args.repeat,
        "cpu_s": {s: [round(t, 3) for t in best[s]] for s in STAGES},
        "wall_s": {s: [round(t, 3) for t in best_wall[s]] for s in STAGES},
        "exponent_cpu": exps, "exponent_wall": exps_wall, "time_ratio_largest_cpu": ratio,
        "decode_accuracy_1x": round(accuracy, 3),
        "seconds": round(time.time() - t_start, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_avg_1m": os.getloadavg()[0]},
        "versions": versions(), "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    res["summary"] = (
        f"time ~ size^b over {'/'.join(map(str, sizes))} {args.corpus} utterances "
        f"({frames[-1] / frames[0]:.2f}x frames), CPU s, 1 thread: "
        + ", ".join(f"{s} b={exps[s]:.2f} ({factors[-1]}x size -> x{ratio[s]:.2f} time)" for s in STAGES)
        + "; b=1 is linear")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(f"{'stage':<9} " + " ".join(f"{n:>7} utts" for n in sizes) + "   b (CPU)  b (wall)")
    for s in STAGES:
        print(f"{s:<9} " + " ".join(f"{t:>10.2f} s" for t in best[s])
              + f"   {exps[s]:>7.2f}  {exps_wall[s]:>8.2f}")
    print(res["summary"])
    print(f"-> {args.out} ({res['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

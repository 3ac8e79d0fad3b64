"""Transcribe audio with an export directory only (fbank -> CMVN -> network -> graph -> words).

Audio comes as files (utterance id = file name without extension), a Kaldi wav.scp (--wav-scp;
paths or `cmd |` pipes) or a data dir (--data; segments honoured); any sample rate (resampled to
the model's). Prints `utt word word ...`
per utterance, or with --json one JSON object per line: {"utt", "text", "words": [{"word",
"start", "end"}] (seconds), "num_frames", "reached_final", "cost"}; --nbest N adds "nbest" (the N
best word sequences of a lattice with times and posteriors) and "confidence" (per 1-best word).

  acoustic-kd transcribe --model exp/export audio.wav
  acoustic-kd transcribe --model exp/export --format int8 --json --wav-scp data/test/wav.scp
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from ..config_types import nonnegative_int, positive_float
from ..errors import ConfigError
from ..utils import get_logger

HELP = "transcribe wav files or a wav.scp with an exported model"
log = get_logger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("audio", nargs="*", help="audio files (WAV, FLAC, ...)")
    p.add_argument("--model", required=True, help="export directory (acoustic-kd export)")
    p.add_argument("--format", default="onnx", choices=("onnx", "int8", "torchscript"),
                   help="which model file to run (default: onnx)")
    p.add_argument("--wav-scp", help="Kaldi wav.scp of utterances to transcribe")
    p.add_argument("--data", help="Kaldi data dir: transcribe all its utterances")
    p.add_argument("--corpus-root", help="root for relative wav.scp paths (as for data dirs)")
    p.add_argument("--json", action="store_true", help="JSON lines with per-word times")
    p.add_argument("--nbest", type=nonnegative_int, default=0, metavar="N",
                   help="with --json: add the N best word sequences from a lattice (\"nbest\") and a "
                        "confidence per word")
    p.add_argument("--lattice-beam", type=positive_float, default=8.0, help="lattice beam for --nbest")
    p.add_argument("--threads", type=nonnegative_int, default=1,
                   help="threads per forward pass (default 1; 0: the runtime's default, all cores)")


def audio_items(args: argparse.Namespace, rate: int) -> Iterator[tuple[str, np.ndarray, int]]:
    """(utt, samples [N] float32 in [-1, 1], sample rate) for each requested utterance;
    data-dir audio is loaded at `rate` (the model's) directly."""
    from ..data.audio import load_audio, read_wav_entry
    from ..data.datadir import DataDir, resolve_corpus_root
    from ..utils import read_table

    for path in args.audio:
        samples, sr = read_wav_entry(path)
        yield Path(path).stem, samples, sr
    if args.wav_scp:
        root = resolve_corpus_root(Path(args.wav_scp).parent, args.corpus_root)
        for utt, entry, lineno in read_table(args.wav_scp):
            samples, sr = read_wav_entry(entry, root, where=(args.wav_scp, lineno))
            yield utt, samples, sr
    if args.data:
        data = DataDir.load(args.data, corpus_root=args.corpus_root)
        for utt in data.utts:
            yield utt, load_audio(data, utt, sample_rate=rate), rate


def run(args: argparse.Namespace) -> int:
    from ..export.runtime import load_exported

    if not (args.audio or args.wav_scp or args.data):
        raise ConfigError("give audio files, --wav-scp FILE or --data DIR")
    model = load_exported(args.model, args.format, num_threads=args.threads)
    count, audio_s, busy_s, not_final = 0, 0.0, 0.0, 0
    for utt, samples, rate in audio_items(args, model.sample_rate):
        t0 = time.perf_counter()
        extra: dict = {}
        if args.nbest > 0:
            hyp, entries, conf = model.nbest(samples, rate, args.nbest, args.lattice_beam)
            extra = {"nbest": entries, "confidence": conf}
        else:
            hyp = model.transcribe(samples, rate)
        busy_s += time.perf_counter() - t0
        count, audio_s, not_final = count + 1, audio_s + len(samples) / rate, \
            not_final + (not hyp.reached_final)
        line = json.dumps({"utt": utt, **hyp.to_dict(), **extra}) if args.json else \
            f"{utt} {hyp.text}".rstrip()
        print(line, flush=True)
    log.info("%d utterances, %.1f s of audio in %.1f s (RTF %.4f, %s); %d reached no final state",
             count, audio_s, busy_s, busy_s / max(audio_s, 1e-9), args.format, not_final)
    return 0

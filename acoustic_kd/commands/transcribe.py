"""Transcribe audio with an export directory only (fbank -> CMVN -> network -> graph -> words).

Audio comes as files (utterance id = file name without extension), a Kaldi wav.scp (--wav-scp;
paths or `cmd |` pipes) or a data dir (--data; segments honoured); any sample rate (resampled to
the model's). Prints `utt word word ...`
per utterance, or with --json one JSON object per line: {"utt", "text", "words": [{"word",
"start", "end"}] (seconds), "num_frames", "reached_final", "cost"}; --nbest N (with --json) adds
"nbest" (the N best word sequences of a lattice with times and posteriors) and "confidence" (per
1-best word). A recording that cannot be used is reported with its wav.scp line and skipped; the
exit status is then 1 (`acoustic_kd.export.batch`).

  acoustic-kd transcribe --model exp/export audio.wav
  acoustic-kd transcribe --model exp/export --format int8 --json --wav-scp data/test/wav.scp
"""

from __future__ import annotations

import argparse

from ..config_types import nonnegative_int, positive_float
from ..errors import ConfigError, DataError
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


def run(args: argparse.Namespace) -> int:
    from ..export.batch import batch_items, transcribe_batch
    from ..export.runtime import load_exported

    if not (args.audio or args.wav_scp or args.data):
        raise ConfigError("give audio files, --wav-scp FILE or --data DIR")
    if args.nbest < 0 or args.nbest and not args.json:
        raise ConfigError(f"--nbest {args.nbest}: n-best lists are printed as JSON lines; give "
                          "--json and N >= 1")
    model = load_exported(args.model, args.format, num_threads=args.threads)
    items = batch_items(args.audio, args.wav_scp, args.data, args.corpus_root, model.sample_rate)
    c = transcribe_batch(model, items, args.json, args.nbest, args.lattice_beam)
    log.info("%d utterances, %.1f s of audio in %.1f s (RTF %.4f, %s); %d reached no final state",
             c["done"], c["audio_s"], c["busy_s"], c["busy_s"] / max(c["audio_s"], 1e-9),
             args.format, c["not_final"])
    if c["failed"]:
        raise DataError(args.wav_scp or args.data or "audio files", f"{c['failed']} of {len(items)} recordings "
                        "failed (each is reported above with where it was given); the others "
                        "were transcribed", "fix or remove those entries, then transcribe them")
    return 0

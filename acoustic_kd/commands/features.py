"""Compute log-mel filterbank features and per-speaker CMVN stats for a Kaldi data dir.

Writes feats.scp (+ arks under DIR/data/), utt2num_frames, cmvn.scp, fbank.json and, when some
utterances cannot be computed, features_failed.txt. Options: defaults < the `features:` section of
--config < --fbank-conf (Kaldi-style `--num-mel-bins=40` lines) < the command-line options below.
`sample_rate: auto` (or null) in the config takes the rate most of the recordings have.
A finished data dir is skipped unless --force.

Example:  acoustic-kd features --data data/train --config conf/fsdd.yaml --nj 4
"""

from __future__ import annotations

import argparse
import dataclasses

from ..config import add_config_args, load_config, load_yaml, overrides_from_args
from ..data.audio import native_rate
from ..data.datadir import DataDir
from ..config_types import positive_int
from ..features.fbank import FbankConfig
from ..features.stage import FAILED_FILE, make_features

HELP = "fbank features + CMVN stats for a data dir (parallel jobs)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="Kaldi data dir (wav.scp, utt2spk, ...)")
    parser.add_argument("--config", default=None, help="recipe YAML; its `features:` section is used")
    parser.add_argument("--fbank-conf", default=None, help="Kaldi-style fbank options file")
    parser.add_argument("--nj", type=positive_int, default=1, help="number of parallel jobs (default: 1)")
    parser.add_argument("--force", action="store_true", help="recompute even if already done")
    parser.add_argument("--corpus-root", default=None, help="root for relative wav.scp paths")
    parser.add_argument("--backend", choices=("local", "slurm"), default="local",
                        help="run jobs locally or submit them with sbatch (default: local)")
    parser.add_argument("--slurm-opts", default="", help="extra sbatch options, e.g. '-p cpu'")
    add_config_args(parser, FbankConfig)


def run(args: argparse.Namespace) -> int:
    auto = load_yaml(args.config).get("features", {}) or {}
    auto = args.sample_rate is None and auto.get("sample_rate", 0) in (None, "auto")
    cfg = load_config(FbankConfig, args.config, "features",   # (auto: resolved from the audio below)
                      {"sample_rate": FbankConfig().sample_rate} if auto else None)
    if args.fbank_conf:
        cfg = FbankConfig.from_kaldi_conf(args.fbank_conf, base=cfg)
    cfg = dataclasses.replace(cfg, **{k: v for k, v in overrides_from_args(args, FbankConfig).items()
                                      if v is not None})
    if auto:   # the audio's own rate
        cfg = dataclasses.replace(cfg, sample_rate=native_rate(DataDir.load(args.data, args.corpus_root)))
        print(f"{args.data}: sample_rate auto -> {cfg.sample_rate} Hz (the recordings' own)")
    counts = make_features(args.data, cfg, nj=args.nj, force=args.force, corpus_root=args.corpus_root,
                           backend=args.backend, slurm_opts=args.slurm_opts)
    state = "already done" if counts.get("skipped") else f"{counts.get('seconds', 0):.1f} s"
    print(f"{args.data}: {counts['done']}/{counts['utts']} utterances, {counts['frames']} frames, "
          f"{counts['speakers']} speakers, {counts['failed']} failed ({state})")
    if counts["failed"]:
        print(f"warning: {counts['failed']} utterance(s) failed; see {args.data}/{FAILED_FILE}")
    return 0

"""Check and edit Kaldi data dirs.

  validate DIR          list every problem (file:line: problem (fix: ...)); exit 1 if any
  fix DIR               keep the consistent utterances, log what was dropped (fix_data_dir.log)
  subset SRC DST        copy a subset: --utt-list FILE, --first N, --speakers S [S ...]
  combine DST SRC...    merge data dirs (ids must not clash)
  speed-perturb SRC DST --factor F [--sample-rate SR]
                        a copy played F times as fast (ids prefixed sp<F>-; WAVs in DST/wav) at SR
                        (default: the rate of SRC's features, SRC/fbank.json)
  augment SRC DST --hours N [--seed S] [--nj N]
                        SRC + copies at other speeds and volumes with noise cut from SRC's own
                        silences, up to N hours (acoustic_kd.data.augment); audio in DST/audio
Relative wav.scp paths resolve against --corpus-root, else DIR/corpus_root, else the current dir.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import add_config_args, overrides_from_args
from ..config_types import positive_float, positive_int
from ..data.audio import native_rate
from ..data.augment import DataAugmentConfig, augment_data_dir
from ..data.datadir import DataDir
from ..data.ops import (combine_data_dirs, fix_data_dir, speed_perturb_data_dir, subset_data_dir,
                        validate_data_dir)
from ..errors import ConfigError, DataError
from ..utils import read_table

NAME = "data-dir"
HELP = "validate / fix / subset / combine / speed-perturb / augment Kaldi data dirs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="<action>", required=True)
    for name, helptext in (("validate", "report every problem"), ("fix", "drop what is inconsistent")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("dir")
        p.add_argument("--corpus-root", help="root for relative audio paths")
        p.add_argument("--check-audio", action="store_true", help="also open every audio file")
    p = sub.add_parser("subset", help="copy a subset of utterances")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--utt-list", help="file with one utterance id per line (first field)")
    p.add_argument("--first", type=positive_int, help="the first N utterances in C order")
    p.add_argument("--speakers", nargs="+", help="keep these speakers")
    p = sub.add_parser("combine", help="merge data dirs")
    p.add_argument("dst")
    p.add_argument("srcs", nargs="+")
    p = sub.add_parser("speed-perturb", help="a speed-perturbed copy (Kaldi sp0.9 / sp1.1 style)")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--factor", type=positive_float, required=True, help="speed factor, e.g. 0.9 or 1.1")
    p.add_argument("--sample-rate", type=positive_int,
                   help="sample rate of the output WAVs (default: SRC's features', SRC/fbank.json)")
    p.add_argument("--corpus-root", help="root for relative audio paths of SRC")
    p = sub.add_parser("augment", help="a bigger training set: copies at other speeds and volumes, "
                       "with the corpus' own noise, up to --hours")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--sample-rate", type=positive_int,
                   help="sample rate of the copies (default: SRC's features', SRC/fbank.json, "
                        "else the recordings' own)")
    p.add_argument("--nj", type=positive_int, default=1, help="processes writing the copies")
    p.add_argument("--corpus-root", help="root for relative audio paths of SRC")
    add_config_args(p, DataAugmentConfig)


def _augment(args: argparse.Namespace) -> DataDir:
    given = {k: v for k, v in overrides_from_args(args, DataAugmentConfig).items() if v is not None}
    if "hours" not in given:
        raise ConfigError("data-dir augment needs --hours N (the hours of speech DST is to hold)")
    if args.sample_rate:
        rate = args.sample_rate
    elif (Path(args.src) / "fbank.json").is_file():
        rate = _feature_rate(args.src)
    else:
        rate = native_rate(DataDir.load(args.src, args.corpus_root))
    return augment_data_dir(args.src, args.dst, DataAugmentConfig(**given), rate,
                            args.corpus_root, nj=args.nj)


def _feature_rate(data_dir: str) -> int:
    """The sample rate a data dir's features were made at (its fbank.json)."""
    path = Path(data_dir) / "fbank.json"
    if not path.is_file():
        raise DataError(path, "no features, so no sample rate to copy",
                        "compute the features first (acoustic-kd features) or pass --sample-rate")
    return int(json.loads(path.read_text())["sample_rate"])


def run(args: argparse.Namespace) -> int:
    if args.action == "validate":
        problems = validate_data_dir(args.dir, args.corpus_root, args.check_audio)
        for p in problems:
            print(p)
        print(f"{args.dir}: {len(problems)} problem(s)" if problems else f"{args.dir}: valid")
        return 1 if problems else 0
    if args.action == "fix":
        print(json.dumps(fix_data_dir(args.dir, args.corpus_root, args.check_audio), indent=2))
        return 0
    if args.action == "subset":
        utts = [k for k, _, _ in read_table(args.utt_list, min_fields=1)] if args.utt_list else None
        out = subset_data_dir(args.src, args.dst, utts=utts, first=args.first, speakers=args.speakers)
    elif args.action == "speed-perturb":
        out = speed_perturb_data_dir(args.src, args.dst, args.factor,
                                     args.sample_rate or _feature_rate(args.src), args.corpus_root)
    elif args.action == "augment":
        out = _augment(args)
    else:
        out = combine_data_dirs(args.srcs, args.dst)
    print(f"{out.path}: {len(out.utt2spk)} utterances, {len(set(out.utt2spk.values()))} speakers")
    return 0

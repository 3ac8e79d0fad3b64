"""Prepare a corpus as Kaldi data dirs: OUT/{train,dev,test}/ (validated) and OUT/local/.

Corpora: fsdd and yesno read a local download (--src); kaldi copies your own data dirs (--src
holding train/ dev/ test/, plus --lexicon FILE); lhotse writes one data dir (--out data/train)
from a RecordingSet and a SupervisionSet (--recordings R.jsonl.gz --supervisions S.jsonl.gz);
synth_digits synthesizes one offline (--seed).
Extra corpus options go through --opt KEY=VALUE (values parsed as YAML scalars), e.g.
`acoustic-kd prepare yesno --src corpora/yesno --out data --opt lexicon=hebrew`.
A finished preparation is skipped on re-run unless --force, a changed option, source file or code
(acoustic_kd.stage).
"""

from __future__ import annotations

import argparse
import json

import yaml

from ..config import job_from_args
from ..config_types import nonnegative_int, positive_int
from ..corpora import CORPORA
from ..corpora.stage import PrepareJob
from ..errors import ConfigError

HELP = "prepare a corpus as Kaldi data dirs (train/dev/test)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("corpus", choices=sorted(CORPORA), help="corpus to prepare")
    parser.add_argument("--out", required=True, help="output dir (gets train/ dev/ test/ local/)")
    parser.add_argument("--src", help="corpus download / source data dirs (fsdd, yesno, kaldi)")
    parser.add_argument("--seed", type=nonnegative_int, help="random seed (synthesized corpora)")
    parser.add_argument("--lexicon", help="lexicon file (kaldi) or variant (yesno: english|hebrew)")
    parser.add_argument("--nj", type=positive_int, help="parallel workers (where supported)")
    parser.add_argument("--recordings", help="lhotse: the RecordingSet manifest")
    parser.add_argument("--supervisions", help="lhotse: the SupervisionSet manifest")
    parser.add_argument("--split", help="mboshi: upstream (default) | speaker (two speakers train, "
                        "the third, --opt held_out=NAME, is split into dev and test)")
    parser.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                        help="extra option of the corpus's prepare function (repeatable)")
    parser.add_argument("--force", action="store_true", help="redo even if already prepared")


def extra_options(items: list[str]) -> dict:
    """{key: value} of `--opt KEY=VALUE` options (values parsed as YAML scalars)."""
    opts = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--opt expects KEY=VALUE, got {item!r}")
        opts[key.replace("-", "_")] = yaml.safe_load(value)
    return opts


def run(args: argparse.Namespace) -> int:
    out, seconds = job_from_args(PrepareJob, args, opts=extra_options(args.opt)).run()
    print(json.dumps(out, indent=2))
    if seconds is not None:
        print(f"prepared {args.corpus} in {seconds:.1f} s")
    return 0

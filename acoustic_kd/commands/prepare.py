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
import inspect
import json
import time
from pathlib import Path

import yaml

from ..config_types import FieldError, nonnegative_int, positive_int
from ..corpora import CORPORA
from ..errors import ConfigError
from ..stage import Stage

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


def _options(args: argparse.Namespace) -> dict:
    opts = {"out_dir": args.out, "src_dir": args.src, "seed": args.seed, "lexicon": args.lexicon,
            "nj": args.nj, "force": args.force or None, "split": args.split,
            "recordings": args.recordings, "supervisions": args.supervisions}
    for item in args.opt:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--opt expects KEY=VALUE, got {item!r}")
        opts[key.replace("-", "_")] = yaml.safe_load(value)
    return {k: v for k, v in opts.items() if v is not None}


def stage(corpus: str, opts: dict) -> Stage:
    """The prepare stage: the corpus download (audio by size and modification time), a lexicon
    file and the options in; the data dirs the corpus function returns out (recorded in the marker,
    so that a changed option or source removes them before they are made again)."""
    out = Path(opts["out_dir"])
    config = {"corpus": corpus, **{k: v for k, v in opts.items()
                                   if k not in ("out_dir", "src_dir", "nj", "force", "recordings",
                                                "supervisions")}}
    lexicon = opts.get("lexicon")
    inputs = [lexicon] if isinstance(lexicon, str) and Path(lexicon).is_file() else []
    inputs += [opts[k] for k in ("recordings", "supervisions") if k in opts]
    if isinstance(lexicon, str) and Path(lexicon).is_file():
        config["lexicon"] = "file"
    src = opts.get("src_dir")
    return Stage("prepare", out, config, inputs=inputs, audio=[src] if src else [], outputs=[out],
                 code=[CORPORA[corpus].__module__, "acoustic_kd.corpora.kaldi", "acoustic_kd.data.datadir",
                       "acoustic_kd.data.ops", "acoustic_kd.lang.lexicon"])


def run(args: argparse.Namespace) -> int:
    fn = CORPORA[args.corpus]
    params = inspect.signature(fn).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    opts = _options(args)
    if "src_dir" in params and "src_dir" not in opts:
        raise ConfigError(f"prepare {args.corpus} needs --src DIR (the corpus download)")
    unknown = [k for k in opts if k not in params and not takes_any]
    if unknown:
        valid = [p for p in params if p not in ("out_dir",)]
        raise ConfigError(f"prepare {args.corpus} does not take {unknown}; it takes {valid}")
    st = stage(args.corpus, opts)
    if not st.begin(args.force):
        print(json.dumps(json.loads(st.marker.read_text()).get("prepared", {}), indent=2))
        return 0
    t0 = time.time()
    try:
        out = fn(**{**opts, **({"force": True} if st.fresh and "force" in params else {})})
    except FieldError as e:   # a corpus config value given with --opt
        raise ConfigError(f"prepare {args.corpus} --opt {e.key}={e.value}: expected {e.expected}") from None
    st.finish({"prepared": {k: str(v) for k, v in out.items()}},   # (never the stage dir itself:
              outputs=[v for v in out.values()                      # it keeps later stages' files)
                       if Path(v).exists() and Path(v).resolve() != st.dir.resolve()])
    print(json.dumps({k: str(v) for k, v in out.items()}, indent=2))
    print(f"prepared {args.corpus} in {time.time() - t0:.1f} s")
    return 0

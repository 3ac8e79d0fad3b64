"""Score a hypothesis text against a reference text (Kaldi compute-wer format): WER and CER.

Prints `%WER 1.23 [ 12 / 975, 2 ins, 3 del, 7 sub ]` (+ ` [PARTIAL]` when some references have no
hypothesis; those count as deletions), `%SER`, then the same lines for characters (`%CER ...`);
writes `wer`, `cer`, `errs.txt` / `cer_errs.txt` (per-utterance aligned ref/hyp/op) and
`missing.txt` (when PARTIAL) into --out (default: the hyp file's directory).

  acoustic-kd score --ref data/test/text --hyp exp/decode/x/hyp.txt
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..decode.score import score_files

HELP = "WER/CER/SER of a hypothesis text against a reference text, with per-utterance errors"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ref", required=True, help="reference Kaldi text (utt words...)")
    p.add_argument("--hyp", required=True, help="hypothesis text (utt words...)")
    p.add_argument("--out", help="where to write wer and errs.txt (default: dir of --hyp)")


def run(args: argparse.Namespace) -> int:
    res = score_files(args.ref, args.hyp, args.out or Path(args.hyp).parent)
    print(res["wer"].kaldi_lines() + res["cer"].kaldi_lines(), end="")
    return 0

"""Job entry point of the soft-target stage: `python -m acoustic_kd.distill --out OUT --part J`
writes the shards of part J of the request in OUT/log/soft_targets.json (what
`soft_targets.soft_targets_of` runs as jobs for nj > 1)."""

import argparse
import os
import sys

from ..errors import AcousticKDError
from ..utils import set_num_threads
from .soft_targets import compute_part

ap = argparse.ArgumentParser(description=__doc__)
ap.add_argument("--out", required=True, help="the store's directory")
ap.add_argument("--part", type=int, required=True, help="part index (0-based)")
args = ap.parse_args()
set_num_threads(int(os.environ.get("ACOUSTIC_KD_THREADS", "0")) or None)
try:
    compute_part(args.out, args.part)
except AcousticKDError as e:
    print(f"soft targets part {args.part}: error: {e}", file=sys.stderr)
    sys.exit(1)

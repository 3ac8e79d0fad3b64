"""A worker job of the align stage: `python -m acoustic_kd.gmm --connect HOST:PORT --key-file F
--part J` holds one part of a data set and serves the calls of the process that started it
(gmm/parallel.py, through acoustic_kd.pool.WorkerPool): a Part (gmm/part.py) for the GMM passes, an
NnetPart (gmm/nnet_align.py) for a network realignment."""

import os
import sys

from ..pool import serve
from .nnet_align import NnetPart
from .parallel import load_part


def new_part(kind: str, *args):
    """The worker's object: ("gmm", ...) -> Part.load(...), ("nnet", ...) -> NnetPart.load(...)."""
    return NnetPart.load(*args) if kind == "nnet" else load_part(kind, *args)


code = serve(new_part)
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)   # the worker wrote all it writes: skip the interpreter's (torch's) slow teardown

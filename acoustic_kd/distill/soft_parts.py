"""The soft-target store in `nj` jobs: the shards still to do split into contiguous parts, one
job each (`acoustic_kd.jobs`: local processes or Slurm jobs).

The driver (`soft_targets.soft_targets_of`) opens the store, writes the request -- members, data
dir, device, the SoftTargetConfig and every part's shard list -- to OUT/log/soft_targets.json and
runs `python -m acoustic_kd.distill --out OUT --part J` per part (logs in
OUT/log/soft_targets.J.log). Each job loads the members, reads only its shards' utterances and
writes its shards (`soft_targets.compute_part`); the driver checks that every shard is there and
writes meta.json. A shard is computed from the same batches whichever job computes it, so the
shards equal those of one process byte for byte; a failed job's finished shards are kept and a
re-run does the rest.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError
from ..jobs import Job, run_jobs
from ..utils import atomic_write_json, get_logger

log = get_logger(__name__)

REQUEST = "soft_targets.json"


def split_shards(shards: Sequence[int], nj: int) -> list[list[int]]:
    """`shards` in order, cut into at most `nj` contiguous non-empty parts of near-equal size."""
    return [[int(s) for s in part] for part in np.array_split(np.asarray(shards, dtype=np.int64),
                                                              max(1, min(nj, len(shards))))]


def read_request(out_dir: str | Path) -> dict:
    """The request the driver wrote for the jobs of the store at `out_dir`."""
    path = Path(out_dir) / "log" / REQUEST
    if not path.is_file():
        raise DataError(path, "no soft-target job request here", "run `acoustic-kd soft-targets "
                        "--nj N`, which writes it before it starts the jobs")
    return json.loads(path.read_text(encoding="utf-8"))


def run_parts(out_dir: str | Path, request: dict, shards: Sequence[int], nj: int,
              backend: str = "local", slurm_opts: str = "") -> None:
    """Compute `shards` of the store at `out_dir` in `nj` jobs; request: members, data, device,
    config (the SoftTargetConfig as a dict). Raises naming the failed jobs' logs."""
    out = Path(out_dir)
    parts = split_shards(shards, nj)
    atomic_write_json(out / "log" / REQUEST, {**request, "parts": parts})
    jobs = [Job(f"soft_targets.{j + 1}", [sys.executable, "-m", "acoustic_kd.distill",
                                          "--out", str(out), "--part", str(j)],
                out / "log" / f"soft_targets.{j + 1}.log") for j in range(len(parts))]
    log.info("%d shard(s) in %d job(s) (%s)", len(shards), len(jobs), backend)
    run_jobs(jobs, max_parallel=len(jobs), backend=backend, slurm_opts=slurm_opts,
             desc="soft targets")

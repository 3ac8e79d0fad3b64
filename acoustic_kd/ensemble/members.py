"""Training the ensemble's K members as independent training jobs (`nnet.stage.TrainJob`).

Members differ by seed (initialisation; data order too unless `data_order="fixed"`) and optionally
by architecture. Each member's job is written to `out_dir/log/train.mK.json` and run as
`python -m acoustic_kd.nnet JOB.json` (locally or on Slurm, `acoustic_kd.jobs`).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Sequence

from ..errors import ConfigError
from ..nnet.stage import TrainJob
from ..utils import get_logger

log = get_logger("ensemble")


def member_dirs(out_dir: str | Path, num_members: int) -> list[Path]:
    """exp/members/m1 .. mK."""
    return [Path(out_dir) / f"m{i}" for i in range(1, num_members + 1)]


def member_jobs(base: TrainJob, out_dir: str | Path, num_members: int, base_seed: int = 1,
                archs: Sequence[str] | None = None, data_order: str = "seed") -> list[TrainJob]:
    """The TrainJob of each member: `base` (data, config, options shared by all members) in
    out_dir/mK with seed base_seed+K-1; archs are cycled over members; data_order "fixed" gives all
    members the frame order of base_seed, so they differ only by initialisation (as in the paper)."""
    if data_order not in ("seed", "fixed"):
        raise ConfigError(f"data_order must be 'seed' or 'fixed', got {data_order!r}")
    jobs = []
    for i, mdir in enumerate(member_dirs(out_dir, num_members), 1):
        job = base.with_options("train", seed=base_seed + i - 1)
        if data_order == "fixed":
            job = job.with_options("train", data_seed=base_seed)
        if archs:
            job = job.with_options("model", arch=archs[(i - 1) % len(archs)])
        jobs.append(dataclasses.replace(job, out=str(mdir)))
    return jobs


def train_members(base: TrainJob, out_dir: str | Path, num_members: int, nj: int = 1,
                  base_seed: int = 1, archs: Sequence[str] | None = None, data_order: str = "seed",
                  backend: str = "local", slurm_opts: str = "") -> list[Path]:
    """Train the members as independent jobs (`nj` at a time, cores split between them).

    Members whose train stage is up to date (`acoustic_kd.stage`: same config, data and code) are
    skipped; interrupted ones resume, changed ones retrain. Logs go to `out_dir/log/train.mN.log`.
    Returns the member dirs.
    """
    from ..jobs import Job, run_jobs

    todo = []
    for job in member_jobs(base, out_dir, num_members, base_seed, archs, data_order):
        name = Path(job.out).name
        if not job.force and job.stage().current():
            log.info("%s: already trained, skipping", job.out)
            continue
        spec = Path(out_dir) / "log" / f"train.{name}.json"
        job.to_json(spec)
        todo.append(Job(name=name, cmd=[sys.executable, "-m", "acoustic_kd.nnet", str(spec)],
                        log=Path(out_dir) / "log" / f"train.{name}.log"))
    if todo:
        log.info("training %d member(s), %d at a time", len(todo), nj)
        run_jobs(todo, max_parallel=nj, backend=backend, slurm_opts=slurm_opts, desc="members",
                 widen_tail=True)   # (the last member alone gets every core)
    return member_dirs(out_dir, num_members)

"""Training the ensemble's K members as independent `acoustic-kd train` jobs.

Members differ by seed (initialisation; data order too unless `data_order="fixed"`) and optionally
by architecture.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from ..errors import ConfigError
from ..utils import get_logger

log = get_logger("ensemble")


def member_dirs(out_dir: str | Path, num_members: int) -> list[Path]:
    """exp/members/m1 .. mK."""
    return [Path(out_dir) / f"m{i}" for i in range(1, num_members + 1)]


def member_commands(out_dir: str | Path, num_members: int, train_args: Sequence[str],
                    base_seed: int = 1, archs: Sequence[str] | None = None,
                    data_order: str = "seed") -> list[tuple[str, list[str], Path]]:
    """(name, `acoustic-kd train` command, member dir) for each member.

    train_args: the data/config options shared by all members (--train-data ... --config ...).
    Member i gets --seed base_seed+i-1; archs are cycled over members; data_order "fixed" gives all
    members the frame order of base_seed, so they differ only by initialisation (as in the paper).
    """
    if data_order not in ("seed", "fixed"):
        raise ConfigError(f"data_order must be 'seed' or 'fixed', got {data_order!r}")
    out = []
    for i, mdir in enumerate(member_dirs(out_dir, num_members), 1):
        cmd = [sys.executable, "-m", "acoustic_kd.cli", "train", *train_args, "--out", str(mdir),
               "--seed", str(base_seed + i - 1)]
        if data_order == "fixed":
            cmd += ["--data-seed", str(base_seed)]
        if archs:
            cmd += ["--arch", archs[(i - 1) % len(archs)]]
        out.append((mdir.name, cmd, mdir))
    return out


def train_members(out_dir: str | Path, num_members: int, train_args: Sequence[str], nj: int = 1,
                  base_seed: int = 1, archs: Sequence[str] | None = None, data_order: str = "seed",
                  backend: str = "local", slurm_opts: str = "") -> list[Path]:
    """Train the members as independent jobs (`nj` at a time, cores split between them).

    Members whose train stage is up to date (`acoustic_kd.stage`: same config, data and code) are
    skipped; interrupted ones resume, changed ones retrain. Logs go to `out_dir/log/train.mN.log`.
    Returns the member dirs.
    """
    from ..cli import build_parser
    from ..commands.train import stage as train_stage
    from ..jobs import Job, run_jobs

    todo = []
    for name, cmd, mdir in member_commands(out_dir, num_members, train_args, base_seed, archs,
                                           data_order):
        member = build_parser().parse_args(cmd[3:])
        if not member.force and train_stage(member).current():
            log.info("%s: already trained, skipping", mdir)
            continue
        todo.append(Job(name=name, cmd=cmd, log=Path(out_dir) / "log" / f"train.{name}.log"))
    if todo:
        log.info("training %d member(s), %d at a time", len(todo), nj)
        run_jobs(todo, max_parallel=nj, backend=backend, slurm_opts=slurm_opts, desc="members")
    return member_dirs(out_dir, num_members)

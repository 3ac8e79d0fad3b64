"""The teacher ensemble: K members trained as independent jobs, combined, and evaluated.

Members differ by seed (initialisation; data order too unless `data_order="fixed"`) and optionally
by architecture. Combination rules, on per-frame log-probabilities [T, P]:
  arithmetic: log (1/K) sum_k p_k            (mixture of the members' posteriors)
  geometric:  log_softmax((1/K) sum_k log p_k) (normalised product of experts)
Evaluation scores every member and both combinations by frame accuracy and cross-entropy (nats)
against the alignments, and writes `eval.json` + a small text table `eval.txt`.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ConfigError, DataError
from .utils import atomic_write_json, atomic_write_text, get_logger

log = get_logger("ensemble")

RULES = ("arithmetic", "geometric")


def combine(log_probs: Sequence, rule: str = "arithmetic"):
    """Combine K members' log-probs [T, P] (numpy or torch) into ensemble log-probs [T, P].

    Returns the input type (numpy float32 or a torch tensor).
    """
    if rule not in RULES:
        raise ConfigError(f"unknown combination rule {rule!r}; use one of {RULES}")
    if not log_probs:
        raise ConfigError("combine needs at least one member")
    is_np = not isinstance(log_probs[0], torch.Tensor)
    x = torch.stack([torch.as_tensor(np.asarray(a) if is_np else a).float() for a in log_probs])
    if rule == "arithmetic":
        out = torch.logsumexp(x, dim=0) - math.log(len(log_probs))
    else:
        out = F.log_softmax(x.mean(dim=0), dim=-1)
    return out.numpy() if is_np else out


# ---------------------------------------------------------------- training members
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
    from .cli import build_parser
    from .commands.train import stage as train_stage
    from .jobs import Job, run_jobs

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


# ---------------------------------------------------------------- evaluation
def _scores(log_probs: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """[correct frames, summed CE] of log-probs [B, P] against labels [B]."""
    return np.array([float((log_probs.argmax(-1) == y).sum()),
                     float(-log_probs.gather(1, y[:, None]).sum())])


@torch.no_grad()
def evaluate_set(models: Mapping[str, torch.nn.Module], feats, alis: Mapping[str, np.ndarray],
                 rules: Sequence[str] = RULES, batch_size: int = 4096) -> dict:
    """Frame accuracy and CE of each member and each combination on one aligned feature set.

    models: {name: model} (same pdf count; contexts may differ); feats: a FeatureSource;
    alis: {utt: int32 [T]}. Memory stays bounded (shard-wise reading).
    Returns {"frames": N, "members": {name: {acc, ce}}, "ensemble": {rule: {acc, ce}}}.
    """
    from .distill.teacher import TeacherEnsemble
    from .nnet.stream import StreamingFrameDataset

    pdfs = {int(m.num_pdfs) for m in models.values()}
    if len(pdfs) != 1:
        raise DataError(None, f"members predict different pdf counts {sorted(pdfs)}",
                        "train all members on the same alignment dir")
    ens = TeacherEnsemble(list(models.values()), names=list(models))
    ds = StreamingFrameDataset(feats, alis, ens.context)
    dev = next(ens.parameters()).device
    sums = {n: np.zeros(2) for n in [*models, *rules]}
    for b in ds.iter_batches(batch_size):
        y = b["y"]
        lps = [lp.cpu() for lp in ens.member_log_probs(b["x"].to(dev))]
        for n, lp in zip(models, lps):
            sums[n] += _scores(lp, y)
        for r in rules:
            sums[r] += _scores(combine(lps, r), y)
    n = max(ds.num_frames, 1)
    res = {k: {"acc": v[0] / n, "ce": v[1] / n} for k, v in sums.items()}
    return {"frames": ds.num_frames, "members": {k: res[k] for k in models},
            "ensemble": {r: res[r] for r in rules}}


def evaluate(checkpoints: Sequence[str | Path], sets: Mapping[str, tuple[str | Path, str | Path]],
             out_dir: str | Path | None = None, rules: Sequence[str] = RULES,
             batch_size: int = 4096) -> dict:
    """Evaluate members (`final.pt` paths) and their combinations on {set: (data_dir, ali_dir)}.

    Features are read with the members' CMVN settings (global CMVN: their training set's stats). Writes out_dir/eval.json and eval.txt
    when out_dir is given. Returns {"members": [...], "sets": {set: evaluate_set(...)}}.
    """
    from .ali import read_alignments
    from .model_meta import CheckpointMeta, same_features
    from .nnet.checkpoint import load_checkpoint

    models, metas = {}, []
    for p in checkpoints:
        m, meta = load_checkpoint(p)
        models[Path(p).parent.name or str(p)] = m
        metas.append(CheckpointMeta.from_dict(meta))
    # global CMVN: the training set's stats (as decode and export apply them), not each set's own
    first = same_features(metas, [str(p) for p in checkpoints])
    out = {"members": [str(p) for p in checkpoints], "sets": {}}
    for name, (data_dir, ali_dir) in sets.items():
        fs = first.features(data_dir)
        out["sets"][name] = evaluate_set(models, fs, read_alignments(ali_dir), rules, batch_size)
        r = out["sets"][name]
        best = max(r["members"], key=lambda k: r["members"][k]["acc"])
        log.info("%s: best member %s %.2f%%; %s", name, best, 100 * r["members"][best]["acc"],
                 ", ".join(f"{k} {100 * v['acc']:.2f}%" for k, v in r["ensemble"].items()))
    if out_dir is not None:
        atomic_write_json(Path(out_dir) / "eval.json", out)
        atomic_write_text(Path(out_dir) / "eval.txt", format_table(out))
    return out


def format_table(results: dict) -> str:
    """A text table: one row per member and per rule; frame accuracy (%) and CE per set."""
    sets = list(results["sets"])
    first = results["sets"][sets[0]]
    rows = [*first["members"], *(f"ensemble-{r}" for r in first["ensemble"])]
    head = f"{'system':<22}" + "".join(f"{s + ' acc%':>12}{s + ' CE':>10}" for s in sets)
    lines = [head]
    for row in rows:
        cells = ""
        for s in sets:
            r = results["sets"][s]
            v = (r["ensemble"][row[len("ensemble-"):]] if row.startswith("ensemble-")
                 else r["members"][row])
            cells += f"{100 * v['acc']:>12.2f}{v['ce']:>10.4f}"
        lines.append(f"{row:<22}{cells}")
    return "\n".join(lines) + "\n"

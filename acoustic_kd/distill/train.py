"""Train a student with the KD objective through `nnet.trainer.train`; α = 1 is the hard control.

The control and the distilled student go through this one function with the same data, the same
augmentation, epochs, optimiser and seed: only the objective's α/teacher differ, so the comparison
is fair by construction.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..config import to_dict
from ..config_types import check_fields
from ..ensemble.combine import RULES
from ..ensemble.runner import TeacherEnsemble, union_context
from ..errors import ConfigError, DataError
from ..nnet.data import FrameDataset, epoch_permutation, split_for_rank
from ..nnet.trainer import TrainConfig, train
from ..utils import atomic_write_json, get_logger, is_done
from ..nnet.augment import AugmentConfig, Augmenter
from .loss import TAILS
from .objective import KDObjective, Schedule
from .store import SoftTargetStore

log = get_logger("distill.train")

DEFAULT_T = 5.0  # see the measurements in the acoustic_kd.distill docstring


@dataclass
class DistillConfig:
    """Distillation options (YAML section `distill`)."""

    T: Optional[float] = field(default=None, metadata={
        "help": "temperature of teacher and student softmax (None: the soft-target store's T, "
                f"or {DEFAULT_T:g} online, the best of the 1-12 sweep in acoustic_kd.distill)",
        "range": "(0, inf)"})
    T_final: Optional[float] = field(default=None, metadata={
        "help": "temperature at the end (linear schedule; online only; None = constant)",
        "range": "(0, inf)"})
    alpha: float = field(default=0.5, metadata={
        "help": "weight of the hard-label CE (1 = the hard-target control, no teacher)",
        "range": "[0, 1]"})
    alpha_final: Optional[float] = field(default=None, metadata={
        "help": "alpha after warmup (0 = a pure-KD phase; None = constant alpha)", "range": "[0, 1]"})
    warmup_epochs: float = field(default=0.0, metadata={
        "help": "epochs at `alpha` first", "range": "[0, inf)"})
    anneal_epochs: float = field(default=0.0, metadata={
        "help": "epochs of cosine annealing alpha -> alpha_final (0 = switch at once)",
        "range": "[0, inf)"})
    rule: str = field(default="arithmetic", metadata={
        "help": "member combination (online)", "choices": RULES})
    tail: str = field(default="uniform", metadata={
        "help": "a top-k store's remainder mass: rest (one merged class) | uniform (spread over "
                "the classes not stored); see acoustic_kd.distill.loss", "choices": TAILS})
    teacher: str = field(default="cached", metadata={
        "help": "cached (soft-target store) | online (members run on every augmented batch)",
        "choices": ("cached", "online")})
    teacher_bf16: bool = field(default=False, metadata={
        "help": "online teacher under bfloat16 autocast (faster on CPUs with avx512_bf16 / GPUs)"})
    train_fraction: float = field(default=1.0, metadata={
        "help": "random fraction of the training utterances used (paper Table 5: 0.03)",
        "range": "(0, 1]"})
    fraction_seed: int = field(default=0, metadata={
        "help": "seed of the train-fraction subset", "range": "[0, inf)"})
    init_from: str = field(default="", metadata={
        "help": "checkpoint (a member or a student) whose weights initialise the student"})

    def __post_init__(self):
        check_fields(self)

    def schedule(self, epochs: int, store_T: float | None = None) -> Schedule:
        """The α/T schedule over `epochs`; T defaults to the store's (cached) or DEFAULT_T."""
        T = self.T if self.T is not None else (store_T if store_T is not None else DEFAULT_T)
        return Schedule(self.alpha, self.alpha_final, self.warmup_epochs, self.anneal_epochs,
                        T, self.T_final, float(epochs))


class ConcatFrames:
    """Frames of several FrameDatasets (same context) as one training set, e.g. labelled train data
    plus untranscribed transfer data (y = −1). Global ids run over the parts in order."""

    def __init__(self, parts: Sequence[FrameDataset]):
        if len({tuple(p.context) for p in parts}) != 1:
            raise ConfigError("all parts of a training set need the same context window")
        self.parts = list(parts)
        self.context = tuple(parts[0].context)
        self.starts = np.cumsum([0] + [p.num_frames for p in parts])
        self.num_frames = int(self.starts[-1])
        self.utts = [u for p in parts for u in p.utts]
        self.offsets = np.concatenate([[0]] + [p.offsets[1:] + s for p, s in
                                               zip(parts, self.starts[:-1])])

    def __len__(self) -> int:
        return self.num_frames

    def num_batches(self, batch_size: int) -> int:
        return (self.num_frames + batch_size - 1) // batch_size

    def batch(self, idx: torch.Tensor) -> dict:
        """Gather global frames idx [B] -> {x [B, W, D], y [B], idx [B]} (order preserved)."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        part = np.searchsorted(self.starts, idx.numpy(), side="right") - 1
        out = None
        for k in np.unique(part):
            sel = torch.from_numpy(part == k)
            b = self.parts[k].batch(idx[sel] - int(self.starts[k]))
            if out is None:
                out = {"x": b["x"].new_empty((len(idx),) + tuple(b["x"].shape[1:])),
                       "y": torch.empty(len(idx), dtype=torch.long), "idx": idx}
            out["x"][sel], out["y"][sel] = b["x"], b["y"]
        return out

    def iter_batches(self, batch_size: int, shuffle: bool = False, seed: int = 0, epoch: int = 0,
                     start_step: int = 0, rank: int = 0, world_size: int = 1):
        """Same contract as FrameDataset.iter_batches (frame-level shuffle over all parts)."""
        order = (epoch_permutation(self.num_frames, seed, epoch) if shuffle
                 else torch.arange(self.num_frames))
        for b in range(start_step, self.num_batches(batch_size)):
            yield self.batch(split_for_rank(order[b * batch_size:(b + 1) * batch_size], rank,
                                            world_size))


def fraction_utts(utts: Sequence[str], num_frames: Sequence[int], fraction: float,
                  seed: int) -> list[str]:
    """A seeded random subset of utterances holding ≈ `fraction` of the frames (at least one)."""
    if fraction >= 1.0:
        return list(utts)
    order = np.random.default_rng(seed).permutation(len(utts))
    target, total, keep = fraction * float(sum(num_frames)), 0, []
    for i in order:
        if keep and total >= target:
            break
        keep.append(i)
        total += num_frames[i]
    return [utts[i] for i in sorted(keep)]


def store_frame_map(store: SoftTargetStore, ds) -> torch.Tensor:
    """int64 [N_ds]: the store's frame id of every frame of `ds` (matched by utterance name)."""
    pos = {u: i for i, u in enumerate(store.meta["utts"])}
    offs = store.meta["offsets"]
    out = torch.empty(ds.num_frames, dtype=torch.long)
    for j, u in enumerate(ds.utts):
        n = int(ds.offsets[j + 1] - ds.offsets[j])
        if u not in pos or offs[pos[u] + 1] - offs[pos[u]] != n:
            raise DataError(store.path / "meta.json", f"utterance {u} ({n} frames) is not in the "
                            "soft targets with that length", "recompute soft targets on this data")
        out[int(ds.offsets[j]):int(ds.offsets[j + 1])] = torch.arange(offs[pos[u]], offs[pos[u]] + n)
    return out


def init_student(student: nn.Module, path: str) -> None:
    """Copy weights from a checkpoint with the same architecture (a member or a smaller student)."""
    from ..nnet.checkpoint import load_checkpoint

    src, _ = load_checkpoint(path)
    mine, theirs = student.state_dict(), src.state_dict()
    if {k: v.shape for k, v in mine.items()} != {k: v.shape for k, v in theirs.items()}:
        raise ConfigError(f"{path}: its architecture differs from the student's; --init-from "
                          "needs the same model config (e.g. a same-size student from a member)")
    student.load_state_dict(theirs)


def resume_step(out_dir: str | Path) -> int:
    """Optimiser steps already taken by an interrupted run in out_dir (0 if none), so the α/T
    schedule resumes where it stopped (the trainer restores everything else)."""
    from ..nnet.checkpoint import read_checkpoint

    steps = [0]
    for p in [*Path(out_dir).glob("epoch-*.pt"), Path(out_dir) / "latest.pt"]:
        if p.exists():
            ts = read_checkpoint(p).get("train_state")
            if ts:
                steps.append(int(ts["state"]["global_step"]))
    return max(steps)


def train_student(student: nn.Module, train_ds, dev_ds, train_cfg: TrainConfig,
                  kd_cfg: DistillConfig, aug_cfg: AugmentConfig, out_dir: str | Path,
                  teacher: TeacherEnsemble | None = None, store: SoftTargetStore | None = None,
                  meta: dict | None = None) -> dict:
    """Train `student` (logits [B, P]) with KD (or hard CE when α = 1) and write out_dir/final.pt.

    train_ds windows must cover the union of the student's and the teacher's contexts (online) or
    the student's (cached); dev_ds windows = the student's context. Returns the trainer's result +
    `seconds` and `distill` (resolved options), also written to out_dir/distill.json.
    """
    schedule = kd_cfg.schedule(train_cfg.epochs, store.T if store is not None else None)
    s_ctx = tuple(int(c) for c in student.config.context)
    window = tuple(train_ds.context)
    if schedule.hard_only:
        teacher = store = None
    elif kd_cfg.teacher == "online" and teacher is None:
        raise ConfigError("online distillation needs the teacher members (--members)")
    if teacher is not None and union_context([s_ctx, teacher.context]) != window:
        raise ConfigError(f"training windows {window} must be the union of the student context "
                          f"{s_ctx} and the teacher's {teacher.context}")
    if teacher is not None and teacher.num_pdfs != student.num_pdfs or (
            store is not None and store.num_pdfs != student.num_pdfs):
        raise ConfigError("student and teacher predict different pdf counts")
    frame_map = store_frame_map(store, train_ds) if store is not None else None
    if kd_cfg.init_from:
        init_student(student, kd_cfg.init_from)
    objective = KDObjective(schedule, train_ds.num_batches(train_cfg.batch_size), window, s_ctx,
                            teacher=teacher, store=store, frame_map=frame_map, tail=kd_cfg.tail,
                            label_smoothing=train_cfg.label_smoothing)
    objective.step_hook(resume_step(out_dir))
    augment = Augmenter(aug_cfg) if aug_cfg.enabled else None
    info = {"distill": to_dict(kd_cfg), "augment": to_dict(aug_cfg),
            "teachers": list(teacher.names) if teacher is not None else
            (store.meta.get("members", []) if store is not None else []),
            "soft_targets": str(store.path) if store is not None else None,
            "train_frames": int(train_ds.num_frames)}
    record = Path(out_dir) / "distill.json"
    finished = (is_done(out_dir, "distill") and (Path(out_dir) / "final.pt").exists()
                and record.exists())
    t0 = time.time()
    result = train(student, train_ds, dev_ds, train_cfg, out_dir, objective=objective,
                   augment=augment, meta={**(meta or {}), **info}, step_hook=objective.step_hook,
                   marker="distill")
    # a re-run of a finished student keeps the training time it took
    seconds = json.loads(record.read_text()).get("seconds") if finished else None
    result.update(seconds=seconds if seconds is not None else round(time.time() - t0, 2), **info)
    atomic_write_json(Path(out_dir) / "distill.json", result)
    log.info("%s: %s student, best dev acc %.4f after %.0f s", out_dir,
             "hard-target" if schedule.hard_only else "distilled",
             result["best"].get("dev_acc") or float("nan"), result["seconds"])
    return result

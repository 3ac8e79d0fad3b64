"""Frame-classifier training: optimiser + LR schedule, early stopping, exact resume, DDP.

Outputs in `out_dir`: `epoch-N.pt` (full training state after epoch N), `latest.pt` (mid-epoch
state every `save_every_steps` steps), `best.pt` (best dev weights so far), `final.pt` (best dev
weights + meta; see nnet.checkpoint), `train_log.jsonl` (step and epoch records) and the done
marker `.train.done` (`.<marker>.done`: a student's is `.distill.done`).

The loop is plain PyTorch: a `TrainState` dataclass, `train_one_epoch` / `evaluate` / `end_epoch`,
checkpoints by `save_state`, the learning rate by a `LambdaLR` over optimiser steps (`lr_factor`),
and the batch sampler resumes mid-epoch (`iter_batches(start_step=...)`).

Resume is exact on CPU: model, optimiser, schedule, RNG states and the batch position within the
epoch are restored (`nnet.resume`), and the data order is a function of (seed, epoch), so a
killed-and-resumed run ends with the same weights as an uninterrupted one.

Under `torchrun` (WORLD_SIZE > 1) the same code runs DDP (`nnet.distributed`): every rank takes
a contiguous share of each global batch of `batch_size` frames and gradients are averaged with
weights so the update equals the single-process one up to float summation order.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..config import to_dict
from ..config_types import check_fields
from ..utils import get_logger, is_done, mark_done, resolve_bf16, set_num_threads
from .checkpoint import checkpoint_dict, read_checkpoint, unwrap, write_checkpoint_dict
from .distributed import Dist, setup_distributed
from .infer import frame_metrics
from .resume import (TrainLog, clear_resume_state, find_resume, prune_epochs, resume_mismatch,
                     rng_state, set_rng_state)

log = get_logger("nnet.trainer")

Objective = Callable[[nn.Module, dict], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class TrainConfig:
    """Training options (YAML section `train`)."""

    epochs: int = field(default=6, metadata={
        "help": "maximum epochs (recipes plan it from the corpus: acoustic_kd.plan); "
                "the cosine decay over 6 puts Mboshi's best dev epoch last (recipes/mboshi/RESULTS.md)",
        "range": "[1, inf)"})
    batch_size: int = field(default=512, metadata={
        "help": "global frames per step (all ranks)", "range": "[1, inf)"})
    lr: float = field(default=2e-3, metadata={
        "help": "peak learning rate (2e-3 at batch 512: every measured recipe's, recipes/*/RESULTS.md)",
        "range": "(0, inf)"})
    optimizer: str = field(default="adamw", metadata={"help": "optimiser", "choices": ("adamw", "sgd")})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum", "range": "[0, 1)"})
    weight_decay: float = field(default=0.01, metadata={
        "help": "decoupled weight decay", "range": "[0, inf)"})
    schedule: str = field(default="cosine", metadata={
        "help": "lr after warmup: cosine or linear decay, plateau (halved on a dev stall), constant",
        "choices": ("cosine", "linear", "plateau", "constant")})
    warmup_steps: int = field(default=200, metadata={"help": "linear warmup steps", "range": "[0, inf)"})
    min_lr_ratio: float = field(default=0.01, metadata={
        "help": "final lr / peak lr (cosine, linear)", "range": "[0, 1]"})
    plateau_factor: float = field(default=0.5, metadata={
        "help": "lr factor on a dev stall (plateau)", "range": "(0, 1]"})
    patience: int = field(default=3, metadata={
        "help": "stop after this many epochs without dev accuracy gain (0 = never)", "range": "[0, inf)"})
    min_delta: float = field(default=1e-4, metadata={
        "help": "dev accuracy gain that counts", "range": "[0, 1]"})
    seed: int = field(default=1, metadata={
        "help": "seed of initialisation, dropout and data order", "range": "[0, inf)"})
    data_seed: int | None = field(default=None, metadata={
        "help": "separate seed of the frame order (default: seed)", "range": "[0, inf)"})
    bf16: bool = field(default=True, metadata={
        "help": "bfloat16 autocast (CPU or GPU) where the device has it natively (x2.6 the fp32 "
                "speed, bench/RESULTS.md), else fp32 with a warning"})
    label_smoothing: float = field(default=0.0, metadata={
        "help": "share of the hard-label target spread uniformly over all pdfs (the hard CE only; "
                "a KD soft term is untouched; 0 = off)", "range": "[0, 1)"})
    grad_clip: float = field(default=0.0, metadata={
        "help": "max gradient norm (0 = off)", "range": "[0, inf)"})
    save_every_steps: int = field(default=0, metadata={
        "help": "also checkpoint mid-epoch every N steps (latest.pt; 0 = epoch ends only)",
        "range": "[0, inf)"})
    keep_epochs: int = field(default=2, metadata={
        "help": "epoch-N.pt files kept (0 = all)", "range": "[0, inf)"})
    log_every: int = field(default=50, metadata={
        "help": "steps between step records in the log (0 = none)", "range": "[0, inf)"})
    eval_batch_size: int = field(default=4096, metadata={
        "help": "frames per evaluation batch", "range": "[1, inf)"})
    num_threads: int = field(default=0, metadata={
        "help": "torch threads (0 = as the environment says: a member job gets its share of the "
                "cores from the job runner, a lone run torch's default, every core)", "range": "[0, inf)"})
    device: str = field(default="auto", metadata={"help": "torch device", "choices": ("auto", "cpu", "cuda")})
    cmvn: str = field(default="utterance", metadata={
        "help": "CMVN when loading features (per utterance: dev frame acc 51.15 %% vs global 48.82, "
                "recipes/mboshi/RESULTS.md)",
        "choices": ("speaker", "global", "utterance", "none")})
    norm_vars: bool = field(default=False, metadata={"help": "variance normalisation in CMVN"})
    streaming: bool = field(default=False, metadata={"help": "bounded-memory sharded data loading"})
    shard_utts: int = field(default=256, metadata={
        "help": "utterances per shard (streaming)", "range": "[1, inf)"})
    buffer_shards: int = field(default=4, metadata={
        "help": "shards shuffled together (streaming)", "range": "[1, inf)"})

    def __post_init__(self):
        check_fields(self)


def cross_entropy_objective(model: nn.Module, batch: dict, label_smoothing: float = 0.0
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Default objective: mean CE of logits [B, P] against batch["y"] [B] (-1 ignored), the target
    (1 − ε)·onehot + ε/P with ε = label_smoothing; a mixed batch (nnet.augment.mixup: `perm`,
    `lam`) gets lam·CE(y) + (1 − lam)·CE(y[perm])."""
    logits = model(batch["x"])
    ce = F.cross_entropy(logits.float(), batch["y"], ignore_index=-1, label_smoothing=label_smoothing)
    if "perm" in batch:
        lam = batch["lam"].float()
        ce = lam * ce + (1 - lam) * F.cross_entropy(logits.float(), batch["y"][batch["perm"]],
                                                    ignore_index=-1, label_smoothing=label_smoothing)
    return ce, logits


def lr_factor(cfg: TrainConfig, step: int, total_steps: int, plateau_scale: float) -> float:
    """LR multiplier at optimiser step `step` (0-based) of `total_steps`."""
    warm = min(cfg.warmup_steps, max(total_steps // 10, 1))
    if step < warm:
        return (step + 1) / warm
    frac = min(1.0, (step - warm) / max(total_steps - warm, 1))
    if cfg.schedule == "cosine":
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac))
    if cfg.schedule == "linear":
        return 1 - (1 - cfg.min_lr_ratio) * frac
    return plateau_scale if cfg.schedule == "plateau" else 1.0


@dataclass
class TrainState:
    """Where a run stands (saved in every training checkpoint as `train_state["state"]`)."""

    epoch: int = 0                      # epochs finished
    step_in_epoch: int = 0              # optimiser steps taken in the current epoch
    global_step: int = 0
    best_acc: float = -math.inf         # best dev accuracy (or -train loss without a dev set)
    best_epoch: int = 0
    bad_epochs: int = 0                 # epochs since the last gain
    plateau_scale: float = 1.0          # lr factor of the plateau schedule
    history: list = field(default_factory=list)  # epoch records
    acc: list = field(default_factory=lambda: [0.0, 0.0, 0.0])  # epoch sums: loss, correct, frames
    stopped: bool = False               # early stopping fired

    @classmethod
    def from_dict(cls, d: dict) -> "TrainState":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class _Run:
    """Everything one training run works with (built once by `_start_run`)."""

    cfg: TrainConfig
    out_dir: Path
    d: Dist
    bare: nn.Module                     # the model itself
    net: nn.Module                      # the model or its DDP wrapper
    params: list
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    state: TrainState
    total_steps: int
    meta: dict
    log: TrainLog

    @property
    def is_main(self) -> bool:
        return self.d.rank == 0


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser of `cfg`: AdamW runs fused (one kernel over all parameters) where the
    parameters allow it (its gain per step: bench/RESULTS.md, `optim`)."""
    params = list(params)
    if cfg.optimizer == "adamw":
        fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda")
                                     for p in params)
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                 fused=fused or None)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int,
                   state: TrainState) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR over optimiser steps: warmup, then cosine / linear / plateau / constant
    (`lr_factor`; the plateau factor is read from `state`)."""
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: lr_factor(cfg, step, total_steps, state.plateau_scale))


def set_schedule_step(sched: torch.optim.lr_scheduler.LambdaLR, step: int) -> None:
    """Put the optimiser's lr at that of optimiser step `step` (after a resume or a plateau cut)."""
    import warnings

    sched.last_epoch = step - 1
    with warnings.catch_warnings():  # "step() before optimizer.step()": deliberate here
        warnings.simplefilter("ignore", UserWarning)
        sched.step()


def save_state(run: _Run, path: Path, with_state: bool) -> None:
    """Checkpoint the model (rank 0); `with_state` adds optimiser, TrainState and RNG states."""
    if run.is_main:
        ts = ({"optimizer": run.opt.state_dict(), "state": run.state.to_dict(), "rng": rng_state()}
              if with_state else None)
        write_checkpoint_dict(path, checkpoint_dict(run.bare, run.meta, ts))


def _start_run(model: nn.Module, train_ds, cfg: TrainConfig, out_dir: Path, meta: dict | None,
               step_hook) -> _Run:
    """Set up device, optimiser and schedule, and resume from the newest training checkpoint."""
    set_num_threads(cfg.num_threads)
    d = setup_distributed(cfg.device)
    out_dir.mkdir(parents=True, exist_ok=True)
    bare = unwrap(model).to(d.device)
    params = [p for p in bare.parameters() if p.requires_grad]
    opt = make_optimizer(params, cfg)
    total_steps = train_ds.num_batches(cfg.batch_size) * cfg.epochs
    state = TrainState()
    # before loading an optimiser state: the schedule's base lr is cfg.lr, whatever lr was saved
    sched = make_scheduler(opt, cfg, total_steps, state)
    ckpt = find_resume(out_dir)
    stale = resume_mismatch(ckpt, bare, to_dict(cfg)) if ckpt is not None else ""
    if stale:   # left by a run with other settings (the stage contract normally removes it)
        if d.rank == 0:
            log.warning("%s: not resuming: its training state was made with another %s; "
                        "starting afresh", out_dir, stale)
        clear_resume_state(out_dir, d.rank == 0)
        ckpt = None
    if ckpt is not None:
        bare.load_state_dict(ckpt["state_dict"])
        opt.load_state_dict(ckpt["train_state"]["optimizer"])
        vars(state).update(vars(TrainState.from_dict(ckpt["train_state"]["state"])))
        set_rng_state(ckpt["train_state"]["rng"])
        if d.rank == 0:
            log.info("%s: resuming at epoch %d step %d", out_dir, state.epoch + 1, state.step_in_epoch)
        if step_hook is not None:  # stateful objectives (α/T schedules) restore their progress
            step_hook(state.global_step, {"resumed": True, "epoch": state.epoch})
    set_schedule_step(sched, state.global_step)
    net = bare
    if d.world > 1:
        net = nn.parallel.DistributedDataParallel(
            bare, device_ids=[d.device.index] if d.device.type == "cuda" else None)
    full_meta = {**(meta or {}), "train_config": to_dict(cfg), "context": list(bare.config.context)}
    return _Run(cfg, out_dir, d, bare, net, params, opt, sched, state, total_steps, full_meta,
                TrainLog(out_dir / "train_log.jsonl", state.global_step, d.rank == 0))


def train_one_epoch(run: _Run, train_ds, objective: Objective, augment, step_hook) -> dict:
    """The rest of the current epoch (from `state.step_in_epoch`: the sampler resumes mid-epoch);
    returns the epoch's training record."""
    cfg, d, st = run.cfg, run.d, run.state
    epoch = st.epoch
    data_seed = cfg.seed if cfg.data_seed is None else cfg.data_seed
    run.net.train()
    t0, frames0 = time.time(), st.acc[2]
    steps = train_ds.num_batches(cfg.batch_size)
    bf16 = resolve_bf16(cfg.bf16, d.device.type)
    bar = tqdm(total=steps, initial=st.step_in_epoch, disable=None if run.is_main else True,
               desc=f"epoch {epoch + 1}", leave=False)
    for batch in train_ds.iter_batches(cfg.batch_size, shuffle=True, seed=data_seed, epoch=epoch,
                                       start_step=st.step_in_epoch, rank=d.rank, world_size=d.world):
        batch = {k: v.to(d.device) for k, v in batch.items()}
        if augment is not None:
            batch = augment(batch)
        lr = run.opt.param_groups[0]["lr"]
        n_local = len(batch["idx"])
        with torch.autocast(d.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, logits = (objective(run.net, batch) if n_local else _empty_step(run.net, batch))
        y = batch["y"]
        lv = float(loss.detach()) * n_local
        correct = float(((_argmax(logits.detach()) == y) & (y >= 0)).sum()) if n_local else 0.0
        # one all-reduce gives the global batch size and the epoch statistics (same on all ranks)
        n_global, lv, correct = d.sum([float(n_local), lv, correct])
        # DDP averages gradients over ranks: weight each rank's mean by its share of the batch
        run.opt.zero_grad(set_to_none=True)
        (loss * (n_local * d.world / n_global)).backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(run.params, cfg.grad_clip)
        run.opt.step()
        run.sched.step()
        st.acc = [st.acc[0] + lv, st.acc[1] + correct, st.acc[2] + n_global]
        st.global_step += 1
        if hasattr(run.bare, "after_step"):   # weight constraints (TDNN-F's semi-orthogonality)
            run.bare.after_step(st.global_step)
        st.step_in_epoch += 1
        bar.update(1)
        if cfg.log_every and st.global_step % cfg.log_every == 0:
            gl = lv / n_global
            run.log.write({"type": "step", "epoch": epoch + 1, "step": st.global_step,
                           "loss": gl, "lr": lr})
            bar.set_postfix(loss=f"{gl:.3f}")
        if cfg.save_every_steps and st.global_step % cfg.save_every_steps == 0:
            save_state(run, run.out_dir / "latest.pt", True)
        if step_hook is not None:
            step_hook(st.global_step, {"epoch": epoch, "loss": float(loss.detach()), "lr": lr})
    bar.close()
    loss_sum, correct, frames = st.acc
    return {"type": "epoch", "epoch": epoch + 1, "step": st.global_step,
            "train_loss": loss_sum / max(frames, 1), "train_acc": correct / max(frames, 1),
            "lr": cfg.lr * lr_factor(cfg, max(st.global_step - 1, 0), run.total_steps,
                                     st.plateau_scale),
            "frames_per_s": (frames - frames0) / max(time.time() - t0, 1e-9), "bf16": bf16}


def evaluate(run: _Run, dev_ds, rec: dict) -> float:
    """Dev frame accuracy and CE into `rec`; returns the model-selection score (dev accuracy, or
    minus the training loss without a dev set)."""
    if dev_ds is None:
        return -rec["train_loss"]
    dm = frame_metrics(run.bare, dev_ds, run.cfg.eval_batch_size, run.d.device, run.d.rank,
                       run.d.world)
    rec.update(dev_acc=dm["acc"], dev_ce=dm["ce"])
    return dm["acc"]


def end_epoch(run: _Run, rec: dict, score: float) -> None:
    """Model selection, plateau schedule, early stopping, log and checkpoints after an epoch."""
    cfg, st, out_dir = run.cfg, run.state, run.out_dir
    epoch = st.epoch
    if score > st.best_acc + cfg.min_delta:
        st.best_acc, st.best_epoch, st.bad_epochs = score, epoch + 1, 0
        save_state(run, out_dir / "best.pt", False)
    else:
        st.bad_epochs += 1
        if cfg.schedule == "plateau":
            st.plateau_scale *= cfg.plateau_factor
            set_schedule_step(run.sched, st.global_step)
    st.history.append(rec)
    st.epoch, st.step_in_epoch, st.acc = epoch + 1, 0, [0.0, 0.0, 0.0]
    st.stopped = bool(cfg.patience and st.bad_epochs >= cfg.patience)
    run.log.write(rec)
    if run.is_main:
        log.info("epoch %d: %s", epoch + 1, ", ".join(
            f"{k}={v:.4g}" for k, v in rec.items() if isinstance(v, float)))
    save_state(run, out_dir / f"epoch-{epoch + 1}.pt", True)
    if run.is_main:
        (out_dir / "latest.pt").unlink(missing_ok=True)
        prune_epochs(out_dir, cfg.keep_epochs)
    if st.stopped and run.is_main:
        log.info("early stop: no dev gain for %d epochs", cfg.patience)


def train(model: nn.Module, train_ds, dev_ds, cfg: TrainConfig, out_dir, objective: Objective | None = None,
          augment: Callable[[dict], dict] | None = None, meta: dict | None = None,
          step_hook: Callable[[int, dict], None] | None = None, marker: str = "train") -> dict:
    """Train `model` on `train_ds` (FrameDataset or StreamingFrameDataset); select on `dev_ds`.

    objective(model, batch) -> (mean loss, logits [B, P]) (default: CE on batch["y"], smoothed by
    cfg.label_smoothing); a model's `after_step(global_step)`, if it has one, runs after every
    optimiser step (weight constraints);
    augment(batch) -> batch on training batches only; meta: extra checkpoint meta (feature config,
    CMVN, priors...); step_hook(global_step, info) after every optimiser step, and once with
    info["resumed"] = True when a run resumes (tests kill runs here); marker: the done marker's
    name (`.<marker>.done`).
    Returns {"history": [epoch records], "best": {...}, "final": path}.
    """
    out_dir = Path(out_dir)
    if is_done(out_dir, marker) and (out_dir / "final.pt").exists():
        log.info("%s: training already done (remove .%s.done to retrain)", out_dir, marker)
        m = read_checkpoint(out_dir / "final.pt")["meta"]
        return {"history": m.get("history", []), "best": m.get("best", {}),
                "final": str(out_dir / "final.pt")}
    run = _start_run(model, train_ds, cfg, out_dir, meta, step_hook)
    objective = objective or partial(cross_entropy_objective, label_smoothing=cfg.label_smoothing)
    st = run.state
    while st.epoch < cfg.epochs and not st.stopped:
        rec = train_one_epoch(run, train_ds, objective, augment, step_hook)
        end_epoch(run, rec, evaluate(run, dev_ds, rec))
    best = {"epoch": st.best_epoch, "dev_acc": st.best_acc if dev_ds is not None else None}
    if run.is_main:
        final = read_checkpoint(out_dir / "best.pt")
        final["meta"].update(history=st.history, best=best)
        write_checkpoint_dict(out_dir / "final.pt", final)
        mark_done(out_dir, marker, {"best": best})
    if run.d.world > 1:
        dist.barrier()
    return {"history": st.history, "best": best, "final": str(out_dir / "final.pt")}


def _argmax(logits: torch.Tensor) -> torch.Tensor:
    """argmax over the last dim (first maximum on ties), as `max(-1).indices`: on CPU 4x faster than
    `argmax` on bf16 logits [512, 2500]."""
    return logits.max(-1).indices


def _empty_step(net: nn.Module, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(zero loss, empty logits) for a DDP rank whose share of the last batch is empty: it still
    runs forward/backward so that it takes part in the gradient all-reduce."""
    out = net(batch["x"].new_zeros((2, *batch["x"].shape[1:])))  # 2 frames: batch norm needs > 1
    return out.float().sum() * 0.0, out[:0]

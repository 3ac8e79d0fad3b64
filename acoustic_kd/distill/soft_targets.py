"""Compute the ensemble's soft targets at temperature T over a transfer set and store them.

The transfer set is any frame dataset (labelled train set, or features without alignments); frames
are processed in the dataset's global order, shard by shard, so a killed run resumes where it stopped.
From a data dir only one shard's features are read into memory at a time (`TransferFrames`), and
with nj > 1 the shards still to do are split into jobs (`soft_parts`: local processes or Slurm),
each computing its shards exactly as one process does, so the store is the same byte for byte.
`SoftTargetsJob` is one `acoustic-kd soft-targets` run: its stage contract (members and the
transfer set's features in, the store out) and `run()`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..config import load_config, to_dict
from ..config_types import check_fields
from ..ensemble.combine import RULES
from ..ensemble.runner import TeacherEnsemble, load_teacher
from ..errors import AcousticKDError, ConfigError
from ..model_meta import CheckpointMeta, same_features
from ..nnet.data import FrameDataset
from ..stage import Stage, feature_inputs
from ..utils import get_logger, is_done
from .soft_parts import read_request, run_parts
from .store import SoftTargetWriter, shard_name
from .targets import storage_bytes_per_frame, topk_targets
from .train import DistillConfig

log = get_logger("distill.soft_targets")


@dataclass
class SoftTargetConfig:
    """Soft-target generation (YAML section `soft_targets`)."""

    T: float = field(default=5.0, metadata={
        "help": "temperature applied to every member's logits (5: see acoustic_kd.distill)",
        "range": "(0, inf)"})
    k: int = field(default=50, metadata={
        "help": "probabilities kept per frame (top-k; the loss matches the remainder as distill.tail; "
                "dense is stored instead when it is no larger, i.e. P <= k). 50: 2 %% of dense at "
                "2500 pdfs, +0.26 dev points over k = 20 (recipes/mboshi/RESULTS.md)", "range": "[1, inf)"})
    rule: str = field(default="arithmetic", metadata={"help": "member combination", "choices": RULES})
    dense: bool = field(default=False, metadata={"help": "store the full float32 distribution"})
    shard_frames: int = field(default=200_000, metadata={"help": "frames per shard file",
                                                         "range": "[1, inf)"})
    batch_size: int = field(default=4096, metadata={
        "help": "frames per teacher forward pass", "range": "[1, inf)"})
    bf16: bool = field(default=False, metadata={
        "help": "run the members under bfloat16 autocast (faster where the CPU has native bf16: "
                "bench/RESULTS.md; bench/bf16_teacher.py measures what it changes in the targets)"})

    def __post_init__(self):
        check_fields(self)


def store_settings(num_pdfs: int, cfg: SoftTargetConfig, num_frames: int, num_utts: int,
                   members: Sequence[str] = (), transfer_set: str = "") -> dict:
    """The settings a store is made with (its .config.json): T, k, rule, dense (chosen here: top-k
    costs k·(2+2) bytes a frame, dense 4·P, so with few pdfs dense is smaller and exact), shard
    size, members, transfer set and its size."""
    size = storage_bytes_per_frame(cfg.k, num_pdfs)
    dense = cfg.dense or size["ratio"] >= 1.0
    k = num_pdfs if dense else min(cfg.k, num_pdfs)
    return {"T": cfg.T, "k": k, "rule": cfg.rule, "dense": dense,
            "shard_frames": cfg.shard_frames, "members": [str(m) for m in members],
            "transfer_set": str(transfer_set), "num_frames": int(num_frames),
            "num_utts": int(num_utts)}


def num_shards(num_frames: int, shard_frames: int) -> int:
    return (int(num_frames) + shard_frames - 1) // shard_frames


class TransferFrames:
    """A transfer set's frames in global order without holding them: `utts`, `offsets` [U + 1] and
    `(lo, hi) -> (FrameDataset of the utterances that overlap frames [lo, hi), its first global
    frame id)`, so one shard's features are in memory at a time. feats: a FeatureSource."""

    def __init__(self, feats, context: tuple[int, int]):
        self.feats, self.context = feats, tuple(context)
        self.utts = list(feats.utts)
        lengths = np.array([feats.num_frames(u) for u in self.utts], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.num_frames = int(self.offsets[-1])

    def __call__(self, lo: int, hi: int) -> tuple[FrameDataset, int]:
        first = int(np.searchsorted(self.offsets, lo, side="right")) - 1
        last = int(np.searchsorted(self.offsets, hi, side="left"))
        return (FrameDataset(self.feats, None, self.context, self.utts[first:last]),
                int(self.offsets[first]))


def write_shards(teacher: TeacherEnsemble, frames_for, cfg: SoftTargetConfig, writer:
                 SoftTargetWriter, settings: dict, shards: Sequence[int], progress: bool = True
                 ) -> None:
    """Run `teacher` at cfg.T over the frames of `shards` and write each (top-k or dense).

    frames_for(lo, hi) -> (dataset, base): a dataset holding global frames [lo, hi) as ids − base
    (batch(idx) -> x [B, W, D], W = teacher.context). A shard's batches are the frames
    [lo + i·batch_size, ...) whatever the caller, so a shard is computed the same way by one
    process or by any job of several."""
    n, step = settings["num_frames"], settings["shard_frames"]
    dense, k = settings["dense"], settings["k"]
    device = next(teacher.parameters()).device
    todo = [s for s in shards if not writer.done(s)]
    bar = tqdm(total=sum(min(n, (s + 1) * step) - s * step for s in todo), desc="soft targets",
               unit="frame", disable=None if progress else True)
    for s in todo:
        lo, hi = s * step, min(n, (s + 1) * step)
        ds, base = frames_for(lo, hi)
        parts_i, parts_p = [], []
        for b in range(lo, hi, cfg.batch_size):
            batch = ds.batch(torch.arange(b, min(hi, b + cfg.batch_size)) - base)
            probs = teacher(batch["x"].to(device), cfg.T).cpu()
            if dense:
                parts_p.append(probs)
            else:
                i, p = topk_targets(probs, k)
                parts_i.append(i)
                parts_p.append(p)
            bar.update(len(batch["x"]))
        if dense:
            writer.write(s, torch.cat(parts_p).numpy())
        else:
            writer.write(s, torch.cat(parts_i).numpy(), torch.cat(parts_p).numpy())
        del ds
    bar.close()


def _check_window(dataset_context, teacher: TeacherEnsemble) -> None:
    if tuple(dataset_context) != tuple(teacher.context):
        raise ConfigError(f"transfer set window {tuple(dataset_context)} != teacher window "
                          f"{tuple(teacher.context)}; build the dataset with the teacher's context")


def _open_store(out_dir: Path, settings: dict, num_pdfs: int, force: bool
                ) -> SoftTargetWriter | dict:
    """The writer of a store to (re)compute, or the meta of a finished store made with
    `settings` (another store at `out_dir` is a ConfigError unless `force`)."""
    if is_done(out_dir) and not force:
        SoftTargetWriter(out_dir, settings)  # raises ConfigError if made with other settings
        log.info("%s: soft targets already done (use --force to recompute)", out_dir)
        return json.loads((out_dir / "meta.json").read_text())
    if settings["dense"] and settings["k"] == num_pdfs:
        log.info("%d pdfs: storing the dense distribution (%d B/frame)", num_pdfs, 4 * num_pdfs)
    return SoftTargetWriter(out_dir, settings, force=force, num_pdfs=num_pdfs)


def _finish(writer: SoftTargetWriter, settings: dict, teacher: TeacherEnsemble, utts, offsets,
            cfg: SoftTargetConfig, t0: float) -> dict:
    missing = [s for s in range(num_shards(settings["num_frames"], settings["shard_frames"]))
               if not writer.done(s)]
    if missing:
        raise AcousticKDError(f"{writer.out}: {len(missing)} shard(s) not written (first: "
                              f"{shard_name(missing[0])}); re-run to compute them")
    meta = writer.finish({**settings, "num_pdfs": teacher.num_pdfs,
                          "context": list(teacher.context), "utts": list(utts),
                          "offsets": [int(o) for o in offsets],
                          "config": to_dict(cfg), "seconds": round(time.time() - t0, 2)})
    log.info("%s: %d frames, T=%g, k=%d (%s): %d bytes/frame vs %d dense (%.1f%%)", writer.out,
             settings["num_frames"], cfg.T, settings["k"], cfg.rule, meta["bytes_per_frame"],
             meta["dense_bytes_per_frame"], 100 * meta["ratio"])
    return meta


def compute_soft_targets(teacher: TeacherEnsemble, dataset, cfg: SoftTargetConfig,
                         out_dir: str | Path, members: Sequence[str] = (),
                         transfer_set: str = "", force: bool = False) -> dict:
    """Run `teacher` at cfg.T over every frame of `dataset` and write the store at `out_dir`.

    dataset: a FrameDataset (batch(idx) -> x [B, W, D] with W = teacher.context window; utts,
    offsets, num_frames). force: recompute done shards. Returns the store's meta dict (incl.
    bytes per frame vs dense).
    """
    _check_window(dataset.context, teacher)
    settings = store_settings(teacher.num_pdfs, cfg, dataset.num_frames, len(dataset.utts),
                              members, transfer_set)
    writer = _open_store(Path(out_dir), settings, teacher.num_pdfs, force)
    if isinstance(writer, dict):
        return writer
    t0 = time.time()
    write_shards(teacher, lambda lo, hi: (dataset, 0), cfg, writer, settings,
                 range(num_shards(settings["num_frames"], cfg.shard_frames)))
    return _finish(writer, settings, teacher, dataset.utts, dataset.offsets, cfg, t0)


def transfer_frames(teacher: TeacherEnsemble, metas: list[dict], members: Sequence[str],
                    data_dir: str | Path) -> TransferFrames:
    """The transfer set's frames, normalised as the members were trained (global CMVN: with their
    training set's stats)."""
    fs = same_features([CheckpointMeta.from_dict(m) for m in metas], members).features(data_dir)
    return TransferFrames(fs, teacher.context)


def soft_targets_of(members: Sequence[str], data_dir: str | Path, out_dir: str | Path,
                    cfg: SoftTargetConfig, device: str = "cpu", force: bool = False,
                    nj: int = 1, backend: str = "local", slurm_opts: str = "") -> dict:
    """Soft targets of `members` over every frame of `data_dir` (alignments not needed), one
    shard's features in memory at a time; with `nj` > 1 the shards to do are split into `nj`
    jobs (`soft_parts`), which write them exactly as one process would."""
    from .soft_parts import run_parts

    members = [str(m) for m in members]
    teacher, metas = load_teacher(members, cfg.rule, device, bf16=cfg.bf16)
    frames = transfer_frames(teacher, metas, members, data_dir)
    settings = store_settings(teacher.num_pdfs, cfg, frames.num_frames, len(frames.utts),
                              members, str(data_dir))
    writer = _open_store(Path(out_dir), settings, teacher.num_pdfs, force)
    if isinstance(writer, dict):
        return writer
    t0 = time.time()
    todo = [s for s in range(num_shards(frames.num_frames, cfg.shard_frames)) if not writer.done(s)]
    if todo and (nj > 1 and len(todo) > 1 or backend != "local"):
        run_parts(out_dir, {"members": members, "data": str(data_dir), "device": device,
                            "config": to_dict(cfg)}, todo, nj, backend, slurm_opts)
    else:
        write_shards(teacher, frames, cfg, writer, settings, todo)
    return _finish(writer, settings, teacher, frames.utts, frames.offsets, cfg, t0)


@dataclass
class SoftTargetsJob:
    """One soft-target store: the options of `acoustic-kd soft-targets` by name; `options` holds
    the command-line values of the SoftTargetConfig fields (None = not given)."""

    members: list[str]
    data: str
    out: str
    config: str | None = None
    device: str = "cpu"
    force: bool = False
    nj: int = 1
    backend: str = "local"
    slurm_opts: str = ""
    options: dict = field(default_factory=dict)

    def configs(self) -> SoftTargetConfig:
        """Defaults < the student's T (the `distill:` section's, or its default) < YAML
        `soft_targets:` < command line, so the cached targets are made at the temperature the
        student will train with."""
        distill_T = load_config(DistillConfig, self.config, "distill").T
        base = {"T": distill_T} if distill_T is not None else {}
        return load_config(SoftTargetConfig, self.config, "soft_targets", self.options, base=base)

    def stage(self, cfg: SoftTargetConfig) -> Stage:
        """The soft-targets stage: the members and the transfer set's features in, OUT out."""
        return Stage("soft-targets", self.out, {"soft_targets": to_dict(cfg)},
                     inputs=[*self.members, *feature_inputs(self.data, "utt2spk")],
                     code=__name__, outputs=[Path(self.out)], marker="")

    def run(self) -> dict:
        """Compute the store (or skip it when up to date); its meta.json content."""
        cfg = self.configs()
        st = self.stage(cfg)
        if not st.begin(self.force):
            return json.loads((Path(self.out) / "meta.json").read_text())
        meta = soft_targets_of(self.members, self.data, self.out, cfg, device=self.device,
                               force=st.fresh, nj=self.nj, backend=self.backend,
                               slurm_opts=self.slurm_opts)
        st.finish()
        return meta


def compute_part(out_dir: str | Path, part: int) -> None:
    """One job of `soft_targets_of`: write the shards of part `part` of the request that the
    driver left in OUT (`soft_parts.read_request`) into the store it opened."""
    req = read_request(out_dir)
    cfg = SoftTargetConfig(**req["config"])
    teacher, metas = load_teacher(req["members"], cfg.rule, req["device"], bf16=cfg.bf16)
    frames = transfer_frames(teacher, metas, req["members"], req["data"])
    settings = store_settings(teacher.num_pdfs, cfg, frames.num_frames, len(frames.utts),
                              req["members"], req["data"])
    writer = SoftTargetWriter(out_dir, settings, num_pdfs=teacher.num_pdfs, part=True)
    write_shards(teacher, frames, cfg, writer, settings, req["parts"][part], progress=False)

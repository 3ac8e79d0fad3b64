"""Compute the ensemble's soft targets at temperature T over a transfer set and store them.

The transfer set is any frame dataset (labelled train set, or features without alignments); frames
are processed in the dataset's global order, shard by shard, so a killed run resumes where it stopped.
`SoftTargetsJob` is one `acoustic-kd soft-targets` run: its stage contract (members and the
transfer set's features in, the store out) and `run()`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from tqdm import tqdm

from ..config import load_config, to_dict
from ..config_types import check_fields
from ..ensemble.combine import RULES
from ..ensemble.runner import TeacherEnsemble, load_teacher
from ..errors import ConfigError
from ..model_meta import CheckpointMeta, same_features
from ..nnet.data import FrameDataset
from ..stage import Stage, feature_inputs
from ..utils import get_logger, is_done
from .store import SoftTargetWriter
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


def compute_soft_targets(teacher: TeacherEnsemble, dataset, cfg: SoftTargetConfig,
                         out_dir: str | Path, members: Sequence[str] = (),
                         transfer_set: str = "", force: bool = False) -> dict:
    """Run `teacher` at cfg.T over every frame of `dataset` and write the store at `out_dir`.

    dataset: a FrameDataset (batch(idx) -> x [B, W, D] with W = teacher.context window; utts,
    offsets, num_frames). force: recompute done shards. Returns the store's meta dict (incl.
    bytes per frame vs dense).
    """
    out_dir = Path(out_dir)
    if tuple(dataset.context) != tuple(teacher.context):
        raise ConfigError(f"transfer set window {tuple(dataset.context)} != teacher window "
                          f"{tuple(teacher.context)}; build the dataset with the teacher's context")
    P = teacher.num_pdfs
    # top-k costs k·(2+2) bytes a frame, dense 4·P: with few pdfs dense is smaller (and exact)
    size = storage_bytes_per_frame(cfg.k, P)
    dense = cfg.dense or size["ratio"] >= 1.0
    if dense and not cfg.dense:
        log.info("%d pdfs: dense targets (%d B/frame) are no larger than top-%d (%d B); storing dense",
                 P, 4 * P, cfg.k, size["bytes_per_frame"])
    k = P if dense else min(cfg.k, P)
    settings = {"T": cfg.T, "k": k, "rule": cfg.rule, "dense": dense,
                "shard_frames": cfg.shard_frames, "members": [str(m) for m in members],
                "transfer_set": str(transfer_set), "num_frames": int(dataset.num_frames),
                "num_utts": len(dataset.utts)}
    if is_done(out_dir) and not force:
        SoftTargetWriter(out_dir, settings)  # raises ConfigError if made with other settings
        log.info("%s: soft targets already done (use --force to recompute)", out_dir)
        return json.loads((out_dir / "meta.json").read_text())
    writer = SoftTargetWriter(out_dir, settings, force=force, num_pdfs=P)
    n = int(dataset.num_frames)
    n_shards = (n + cfg.shard_frames - 1) // cfg.shard_frames
    t0 = time.time()
    device = next(teacher.parameters()).device
    bar = tqdm(total=n, desc="soft targets", unit="frame", disable=None)
    for s in range(n_shards):
        lo, hi = s * cfg.shard_frames, min(n, (s + 1) * cfg.shard_frames)
        if writer.done(s):
            bar.update(hi - lo)
            continue
        parts_i, parts_p = [], []
        for b in range(lo, hi, cfg.batch_size):
            batch = dataset.batch(torch.arange(b, min(hi, b + cfg.batch_size)))
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
    bar.close()
    meta = writer.finish({**settings, "num_pdfs": teacher.num_pdfs,
                          "context": list(teacher.context), "utts": list(dataset.utts),
                          "offsets": [int(o) for o in dataset.offsets],
                          "config": to_dict(cfg), "seconds": round(time.time() - t0, 2)})
    log.info("%s: %d frames, T=%g, k=%d (%s): %d bytes/frame vs %d dense (%.1f%%)", out_dir, n,
             cfg.T, k, cfg.rule, meta["bytes_per_frame"], meta["dense_bytes_per_frame"],
             100 * meta["ratio"])
    return meta


def soft_targets_of(members: Sequence[str], data_dir: str | Path, out_dir: str | Path,
                    cfg: SoftTargetConfig, device: str = "cpu", force: bool = False) -> dict:
    """Soft targets of `members` over every frame of `data_dir` (alignments not needed)."""
    teacher, metas = load_teacher(members, cfg.rule, device, bf16=cfg.bf16)
    # normalised as the members were trained (global CMVN: with their training set's stats)
    fs = same_features([CheckpointMeta.from_dict(m) for m in metas], members).features(data_dir)
    ds = FrameDataset(fs, None, teacher.context)
    return compute_soft_targets(teacher, ds, cfg, out_dir, [str(m) for m in members], str(data_dir),
                                force=force)


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
                               force=st.fresh)
        st.finish()
        return meta

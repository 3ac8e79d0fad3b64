"""The `train` stage on disk: data dir + alignment dir in, self-describing exp dir out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..ali import read_alignments, read_num_pdfs, read_priors
from ..config import to_dict
from ..errors import DataError
from ..utils import get_logger, write_exp_info
from .data import FrameDataset
from .augment import AugmentConfig, Augmenter
from .models import ModelConfig, build_model, count_params, macs_per_frame
from .stream import StreamingFrameDataset
from .trainer import TrainConfig, train

log = get_logger("nnet.stage")

_OUTPUTS = ("final.pt", "best.pt", "latest.pt", "train_log.jsonl", ".train.done", "info.json",
            "distill.json")


def load_frames(data_dir: str | Path, ali_dir: str | Path | None, context: tuple[int, int],
                cfg: TrainConfig, global_stats=None):
    """(dataset, FeatureSet) for a data dir with its alignments (None = unlabelled).

    The dataset is a FrameDataset, or a StreamingFrameDataset when `cfg.streaming`. global_stats:
    the training set's pooled CMVN stats, so that with cmvn "global" dev and test data are
    normalised exactly as at decode time and in deployment (None = the set's own stats).
    """
    from ..features.featureset import FeatureSet

    fs = FeatureSet(data_dir, cmvn=cfg.cmvn, norm_vars=cfg.norm_vars, global_stats=global_stats)
    alis = read_alignments(ali_dir) if ali_dir is not None else None
    try:
        if cfg.streaming:
            return StreamingFrameDataset(fs, alis, context, shard_utts=cfg.shard_utts,
                                         buffer_shards=cfg.buffer_shards), fs
        return FrameDataset(fs, alis, context), fs
    except DataError as e:
        if ali_dir is None or e.path != "alignments":
            raise
        # name the alignment dir (and the features) instead of the generic "alignments"
        raise DataError(Path(ali_dir) / "ali.scp", f"{e.problem} in {fs.data_dir / 'feats.scp'}",
                        e.fix) from e


def train_stats(fs, cfg: TrainConfig):
    """The training set's pooled CMVN stats when cmvn is "global" (what decode and export apply to
    every other set), else None: speaker and utterance CMVN use each set's own stats by design."""
    return np.asarray(fs.global_cmvn_stats()) if cfg.cmvn == "global" else None


def checkpoint_meta(fs, train_data, train_ali, cfg: TrainConfig) -> dict:
    """Checkpoint meta shared by every model trained on these features and alignments."""
    return {
        "feature_config": fs.config.to_dict() if fs.config is not None else None,
        "cmvn": cfg.cmvn,
        "norm_vars": cfg.norm_vars,
        "cmvn_stats": np.asarray(fs.global_cmvn_stats()).tolist(),  # for deployment (global CMVN)
        "priors": read_priors(train_ali).tolist(),
        "train_data": str(train_data),
        "train_ali": str(train_ali),
    }


def output_paths(out_dir: str | Path) -> list[Path]:
    """A training run's outputs in `out_dir`: checkpoints, logs, records, the marker."""
    out_dir = Path(out_dir)
    return [*out_dir.glob("epoch-*.pt"), *out_dir.glob("step-*.pt"), *(out_dir / n for n in _OUTPUTS)]


def clear_outputs(out_dir: str | Path) -> None:
    """Remove a previous run's checkpoints and log (for --force)."""
    for p in output_paths(out_dir):
        p.unlink(missing_ok=True)


def run_train_stage(train_data, train_ali, dev_data, dev_ali, out_dir, model_cfg: ModelConfig,
                    train_cfg: TrainConfig, force: bool = False,
                    aug_cfg: AugmentConfig | None = None) -> dict:
    """Train one frame classifier from data/alignment dirs into `out_dir` (resumes; skips if done).
    aug_cfg: feature-domain augmentation of the training batches (None or all-off = none)."""
    if force:
        clear_outputs(out_dir)
    num_pdfs = read_num_pdfs(train_ali)
    if dev_ali is not None and read_num_pdfs(dev_ali) != num_pdfs:
        raise DataError(dev_ali, f"dev alignments have {read_num_pdfs(dev_ali)} pdfs but the "
                        f"training alignments {num_pdfs}", "align both sets with the same model")
    train_ds, fs = load_frames(train_data, train_ali, model_cfg.context, train_cfg)
    stats = train_stats(fs, train_cfg)
    dev_ds = load_frames(dev_data, dev_ali, model_cfg.context, train_cfg, stats)[0] if dev_data else None
    torch.manual_seed(train_cfg.seed)
    model = build_model(model_cfg, fs.dim, num_pdfs)
    log.info("%s: %s, %d params, %d MACs/frame, %d training frames, %d pdfs", out_dir,
             model_cfg.arch, count_params(model), macs_per_frame(model), train_ds.num_frames, num_pdfs)
    aug_cfg = aug_cfg or AugmentConfig()
    write_exp_info(out_dir, {"model": to_dict(model_cfg), "train": to_dict(train_cfg),
                             "augment": to_dict(aug_cfg)})
    meta = {**checkpoint_meta(fs, train_data, train_ali, train_cfg), "augment": to_dict(aug_cfg)}
    res = train(model, train_ds, dev_ds, train_cfg, out_dir, meta=meta,
                augment=Augmenter(aug_cfg) if aug_cfg.enabled else None)
    return {**res, "params": count_params(model), "macs_per_frame": macs_per_frame(model)}

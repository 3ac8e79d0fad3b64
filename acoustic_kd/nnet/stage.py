"""The `train` stage on disk: data dir + alignment dir in, self-describing exp dir out.

`TrainJob` is one run (`acoustic-kd train`, or an ensemble member): `stage()` is its contract
(features and alignments of the training and dev sets in; OUT's checkpoints, log and `.train.done`
out), `run()` trains, resuming an interrupted run and skipping a finished one.
`python -m acoustic_kd.nnet JOB.json` runs a TrainJob written as JSON (`TrainJob.to_json`).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..ali import read_alignments, read_num_pdfs, read_priors
from ..config import load_config, overrides_from_args, to_dict
from ..errors import AcousticKDError, ConfigError, DataError
from ..plan import record_plan, train_plan
from ..stage import Stage, ali_inputs, feature_inputs
from ..utils import atomic_write_json, get_logger, write_exp_info
from .data import FrameDataset
from .augment import AugmentConfig, Augmenter
from .models import ModelConfig, build_model, count_params, macs_per_frame
from .stream import StreamingFrameDataset
from .trainer import TrainConfig, train

log = get_logger("nnet.stage")

_OUTPUTS = ("final.pt", "best.pt", "latest.pt", "train_log.jsonl", ".train.done", ".distill.done",
            "info.json", "distill.json")


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


# the YAML sections of a training run and their configs (the command line overrides each field)
SECTIONS = {"model": ModelConfig, "train": TrainConfig, "augment": AugmentConfig}


def section_options(args) -> dict[str, dict]:
    """{section: {field: command-line value or None}} of an argparse namespace."""
    return {s: overrides_from_args(args, cls) for s, cls in SECTIONS.items()}


@dataclass
class TrainJob:
    """One training run: its paths and switches by the names of `acoustic-kd train`'s options, and
    the command-line values of the `model:`, `train:` and `augment:` options (`options[section]`,
    None = not given; `config` is the recipe YAML)."""

    train_data: str
    train_ali: str
    out: str
    dev_data: str | None = None
    dev_ali: str | None = None
    config: str | None = None
    force: bool = False
    options: dict = field(default_factory=dict)

    def with_options(self, section: str, **values) -> "TrainJob":
        """This job with some options of one section set (e.g. a member's seed)."""
        opts = {s: dict(v) for s, v in self.options.items()}
        opts.setdefault(section, {}).update(values)
        return dataclasses.replace(self, options=opts)

    def configs(self) -> tuple[ModelConfig, TrainConfig, AugmentConfig]:
        """Resolved (model, train, augment) configs: defaults < YAML < command line; the epochs
        and batch size the config leaves out are planned from --train-data (acoustic_kd.plan)."""
        return (load_config(ModelConfig, self.config, "model", self.options.get("model")),
                self.train_plan()[0],
                load_config(AugmentConfig, self.config, "augment", self.options.get("augment")))

    def train_plan(self):
        """`plan.train_plan` of this run's `train:` options -> (config, plan, chosen, fields)."""
        return train_plan(TrainConfig, self.config, "train", self.options.get("train") or {},
                          self.train_data)

    def stage(self) -> Stage:
        """The train stage: features + alignments of the training (and dev) set in, OUT's
        checkpoints, log and `.train.done` out."""
        model_cfg, train_cfg, aug_cfg = self.configs()
        inputs = [*feature_inputs(self.train_data, "utt2spk"), *ali_inputs(self.train_ali)]
        if self.dev_data:
            inputs += [*feature_inputs(self.dev_data, "utt2spk"), *ali_inputs(self.dev_ali)]
        cfg = {"model": to_dict(model_cfg), "train": to_dict(train_cfg), "dev": bool(self.dev_data)}
        if aug_cfg.enabled:  # (absent when off: signatures of runs without augmentation unchanged)
            cfg["augment"] = to_dict(aug_cfg)
        return Stage("train", self.out, cfg, inputs=inputs, code=__name__,
                     outputs=output_paths(self.out))

    def run(self) -> dict:
        """Train (or resume, or skip when up to date); the result of `run_train_stage`."""
        if bool(self.dev_data) != bool(self.dev_ali):
            raise ConfigError("--dev-data and --dev-ali go together")
        model_cfg, train_cfg, aug_cfg = self.configs()
        st = self.stage()
        ran = st.begin(self.force)
        if ran:
            record_plan(self.out, *self.train_plan()[1:], "member")
        res = run_train_stage(self.train_data, self.train_ali, self.dev_data, self.dev_ali,
                              self.out, model_cfg, train_cfg, force=st.fresh, aug_cfg=aug_cfg)
        if ran:
            st.finish()
        return res

    def summary(self, res: dict) -> str:
        """One line of a result: size, best epoch, dev frame accuracy, the final checkpoint."""
        return (f"{self.out}: {res['params']} params, {res['macs_per_frame']} MACs/frame, "
                f"best epoch {res['best']['epoch']}{dev_accuracy(res)} -> {res['final']}")

    def to_json(self, path: str | Path) -> None:
        atomic_write_json(Path(path), dataclasses.asdict(self))


def dev_accuracy(res: dict) -> str:
    """', dev frame acc N%' of a training result ('' without a dev set)."""
    acc = res["best"].get("dev_acc")
    return f", dev frame acc {100 * acc:.2f}%" if acc is not None else ""


def main(argv: list[str] | None = None) -> int:
    """Job entry point: `python -m acoustic_kd.nnet JOB.json` runs the TrainJob written there."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m acoustic_kd.nnet JOB.json", file=sys.stderr)
        return 2
    try:
        job = TrainJob(**json.loads(Path(argv[0]).read_text(encoding="utf-8")))
        print(job.summary(job.run()))
    except AcousticKDError as e:
        print(f"{argv[0]}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:   # as the CLI: name the path, not a traceback
        print(f"{argv[0]}: error: {e.filename or '<output>'}: {e.strerror or e}", file=sys.stderr)
        return 1
    return 0

"""The `distill` stage on disk: a teacher, data and alignment dirs in, a student's exp dir out.

`DistillJob` is one `acoustic-kd distill` run (the distilled student, or with α = 1 its hard-target
control): `stage()` is its contract (the teacher, features and alignments in; OUT's checkpoints,
log, distill.json and marker out), `run()` trains, resuming or skipping as the contract says.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import torch

from ..ali import read_alignments, read_num_pdfs
from ..config import load_config, load_yaml, overrides_from_args, to_dict
from ..ensemble.runner import load_teacher, union_context
from ..errors import ConfigError, DataError
from ..nnet.data import FrameDataset
from ..nnet.infer import frame_metrics
from ..nnet.models import ModelConfig, build_model, count_params, macs_per_frame
from ..nnet.stage import checkpoint_meta, clear_outputs, dev_accuracy, output_paths, train_stats
from ..nnet.stream import StreamingFrameDataset
from ..nnet.trainer import TrainConfig
from ..plan import record_plan, train_plan
from ..stage import Stage, ali_inputs, feature_inputs
from ..utils import atomic_write_json, get_logger, write_exp_info
from ..model_meta import CheckpointMeta, same_features
from ..nnet.augment import AugmentConfig
from ..nnet.checkpoint import read_checkpoint
from .store import SoftTargetStore
from .train import ConcatFrames, DistillConfig, fraction_utts, train_student

log = get_logger("distill.stage")


def _features(data_dir, train_cfg: TrainConfig, global_stats=None):
    from ..features.featureset import FeatureSet

    return FeatureSet(data_dir, cmvn=train_cfg.cmvn, norm_vars=train_cfg.norm_vars,
                      global_stats=global_stats)


def _frames(fs, alis, context, cfg: TrainConfig, utts=None):
    if cfg.streaming:
        return StreamingFrameDataset(fs, alis, context, utts, cfg.shard_utts, cfg.buffer_shards)
    return FrameDataset(fs, alis, context, utts)


def _training_set(train_data, train_ali, transfer_data, window, kd_cfg: DistillConfig,
                  train_cfg: TrainConfig, global_stats=None):
    """(training dataset, FeatureSet of train_data): labelled part (+ fraction) + unlabelled part.
    global_stats: the global CMVN stats to normalise with (None: the training set's own)."""
    fs = _features(train_data, train_cfg, global_stats)
    alis = read_alignments(train_ali) if train_ali else None
    utts = [u for u in fs.utts if alis is None or u in alis]
    if kd_cfg.train_fraction < 1:
        utts = fraction_utts(utts, [fs.num_frames(u) for u in utts], kd_cfg.train_fraction,
                             kd_cfg.fraction_seed)
        log.info("train fraction %.3g: %d utterances", kd_cfg.train_fraction, len(utts))
    parts = [_frames(fs, alis, window, train_cfg, utts)]
    if transfer_data:
        if train_cfg.streaming:
            raise ConfigError("--transfer-data is not supported with streaming data loading")
        tfs = _features(transfer_data, train_cfg, train_stats(fs, train_cfg))
        labelled = set(utts)
        # an utterance of the labelled part is not also taken again without its label (e.g. the
        # 3 % experiment: the other 97 % of the training set as the transfer set)
        rest = [u for u in tfs.utts if u not in labelled]
        if not rest:
            raise ConfigError(f"{transfer_data}: every utterance of the transfer set is already in "
                              "the labelled training set; give untranscribed (or other) data")
        parts.append(FrameDataset(tfs, None, window, rest))
        log.info("transfer set %s: %d utterances, %d unlabelled frames (KD term only; %d "
                 "utterances of the labelled part left out)", transfer_data, len(rest),
                 parts[-1].num_frames, len(tfs.utts) - len(rest))
    return (parts[0] if len(parts) == 1 else ConcatFrames(parts)), fs


def distill_stage(student_cfg: ModelConfig, train_cfg: TrainConfig, kd_cfg: DistillConfig,
                  aug_cfg: AugmentConfig, train_data, train_ali, dev_data, dev_ali, out_dir,
                  soft: str | Path | None = None, members: Sequence[str] = (),
                  transfer_data=None, test_data=None, test_ali=None, force: bool = False) -> dict:
    """Train a student (or, with α = 1, its hard-target control) from data dirs into `out_dir`.

    Teacher: `soft` (a soft-target store, cached mode) or `members` (kd_cfg.teacher "online"). An
    online teacher runs on the student's features, so they are normalised as the members were
    (`check_online_features`; global CMVN with the members' training stats). Frames with no alignment (train_ali None, or transfer_data) use the KD term only. Returns the
    training result + params, MACs/frame and dev/test frame accuracy; writes out_dir/distill.json
    and info.json.
    """
    hard_only = kd_cfg.schedule(train_cfg.epochs).hard_only
    if force:
        clear_outputs(out_dir)
    if not train_ali and kd_cfg.alpha > 0:
        raise ConfigError("no --train-ali (transfer set without transcripts): use --alpha 0")
    teacher = store = stats = None
    if not hard_only:
        if kd_cfg.teacher == "online":
            teacher, metas = load_teacher(members, kd_cfg.rule, bf16=kd_cfg.teacher_bf16)
            tmeta = same_features([CheckpointMeta.from_dict(m) for m in metas], members)
            check_online_features(tmeta, train_cfg, members[0], out_dir)
            stats = tmeta.cmvn_stats if train_cfg.cmvn == "global" else None
        elif soft:
            store = SoftTargetStore(soft)
        else:
            raise ConfigError("alpha < 1 needs a teacher: --soft DIR, or --online --members ...")
    num_pdfs = (read_num_pdfs(train_ali) if train_ali else
                teacher.num_pdfs if teacher is not None else store.num_pdfs)
    window = tuple(student_cfg.context)
    if teacher is not None:
        window = union_context([window, teacher.context])
    train_ds, fs = _training_set(train_data, train_ali, transfer_data, window, kd_cfg, train_cfg,
                                 stats)
    stats = train_stats(fs, train_cfg)   # dev/test normalised as at decode time
    dev_ds = (_frames(_features(dev_data, train_cfg, stats), read_alignments(dev_ali),
                      student_cfg.context, train_cfg) if dev_data else None)
    torch.manual_seed(train_cfg.seed)
    student = build_model(student_cfg, fs.dim, num_pdfs)
    if teacher is not None and teacher.num_pdfs != num_pdfs:
        raise DataError(train_ali, f"alignments have {num_pdfs} pdfs but the members "
                        f"{teacher.num_pdfs}", "use the alignments the members were trained on")
    write_exp_info(out_dir, {"student": to_dict(student_cfg), "train": to_dict(train_cfg),
                             "distill": to_dict(kd_cfg), "augment": to_dict(aug_cfg)})
    meta = checkpoint_meta(fs, train_data, train_ali, train_cfg) if train_ali else {
        "feature_config": fs.config.to_dict() if fs.config is not None else None,
        "cmvn": train_cfg.cmvn, "norm_vars": train_cfg.norm_vars, "train_data": str(train_data)}
    res = train_student(student, train_ds, dev_ds, train_cfg, kd_cfg, aug_cfg, out_dir,
                        teacher=teacher, store=store, meta=meta)
    res.update(params=count_params(student), macs_per_frame=macs_per_frame(student))
    if test_data and test_ali:
        from ..nnet.checkpoint import load_checkpoint

        best, _ = load_checkpoint(Path(out_dir) / "final.pt")
        test_ds = _frames(_features(test_data, train_cfg, stats), read_alignments(test_ali),
                          student_cfg.context, train_cfg)
        res["test"] = frame_metrics(best, test_ds, train_cfg.eval_batch_size)
    atomic_write_json(Path(out_dir) / "distill.json", res)
    return res


NORMALISATION = ("cmvn", "norm_vars")   # the TrainConfig fields a student takes from its teachers


def check_online_features(teacher: CheckpointMeta, train_cfg: TrainConfig, teacher_name,
                          student_name) -> None:
    """An online teacher runs on the student's features: both must normalise them the same way."""
    if (teacher.cmvn, teacher.norm_vars) != (train_cfg.cmvn, train_cfg.norm_vars):
        raise ConfigError(
            f"the online teacher {teacher_name} was trained on features with cmvn={teacher.cmvn!r}, "
            f"norm_vars={teacher.norm_vars} but the student {student_name} is told "
            f"cmvn={train_cfg.cmvn!r}, norm_vars={train_cfg.norm_vars}, and the teacher runs on the "
            "student's features: drop cmvn / norm_vars from the student's `train:` settings (it "
            "then takes the members'), or distil from cached soft targets (acoustic-kd soft-targets)")


def teacher_meta(members: Sequence[str], soft: str | None) -> CheckpointMeta | None:
    """How the teachers read features: the members' checkpoint meta (checked alike), those of the
    members a soft-target store was made with, or None (no teacher, or its checkpoints are gone)."""
    if not members and soft and (Path(soft) / "meta.json").is_file():
        members = json.loads((Path(soft) / "meta.json").read_text()).get("members", [])
        if not all(Path(m).is_file() for m in members):
            log.warning("%s: the members it was made with are not all there; the student "
                        "normalises its features as its own config says", soft)
            return None
    if not members:
        return None
    metas = [_checkpoint_meta(str(m), Path(m).stat().st_mtime_ns if Path(m).is_file() else 0)
             for m in members]
    return same_features(metas, list(members))


@lru_cache(maxsize=64)
def _checkpoint_meta(path: str, mtime_ns: int) -> CheckpointMeta:
    return CheckpointMeta.from_dict(read_checkpoint(path)["meta"])


# the sections of a student's YAML (--student-config): (config, prefix of its command-line options)
SECTIONS = {"student": (ModelConfig, "student-"), "train": (TrainConfig, ""),
            "distill": (DistillConfig, ""), "augment": (AugmentConfig, "")}


def section_options(args) -> dict[str, dict]:
    """{section: {field: command-line value or None}} of an argparse namespace."""
    return {s: overrides_from_args(args, cls, prefix) for s, (cls, prefix) in SECTIONS.items()}


@dataclass
class DistillJob:
    """One student: its paths and switches by the names of `acoustic-kd distill`'s options, and
    the command-line values of the `student:`, `train:`, `distill:` and `augment:` options
    (`options[section]`, None = not given; `student_config` is the YAML)."""

    train_data: str
    out: str
    soft: str | None = None
    members: list[str] = field(default_factory=list)
    train_ali: str | None = None
    transfer_data: str | None = None
    dev_data: str | None = None
    dev_ali: str | None = None
    test_data: str | None = None
    test_ali: str | None = None
    student_config: str | None = None
    force: bool = False
    options: dict = field(default_factory=dict)

    def configs(self) -> tuple[ModelConfig, TrainConfig, DistillConfig, AugmentConfig]:
        """(student, train, distill, augment) configs: defaults < the teachers' feature
        normalisation (`teacher_meta`) < YAML < command line; the epochs and batch size the
        config leaves out are planned from --train-data (acoustic_kd.plan)."""
        y, opts = self.student_config, self.options
        student = load_config(ModelConfig, y, "student", opts.get("student"))
        kd = load_config(DistillConfig, y, "distill", opts.get("distill"))
        aug = load_config(AugmentConfig, y, "augment", opts.get("augment"))
        train_cfg = self.train_plan()[0]
        told = set((load_yaml(self.student_config).get("train") or {})) | \
            {k for k, v in self.options.get("train", {}).items() if v is not None}
        teachers = teacher_meta(self.members, self.soft) if set(NORMALISATION) - told else None
        if teachers is not None:
            train_cfg = dataclasses.replace(train_cfg, **{k: getattr(teachers, k)
                                                          for k in NORMALISATION if k not in told})
        return student, train_cfg, kd, aug

    def train_plan(self):
        """`plan.train_plan` of the student's `train:` options -> (config, plan, chosen, fields)."""
        return train_plan(TrainConfig, self.student_config, "train",
                          self.options.get("train") or {}, self.train_data, student=True)

    def stage(self) -> Stage:
        """The distill stage: the teacher (soft-target store or members), features and alignments
        in; OUT's checkpoints, log, distill.json and `.distill.done` out."""
        student, train_cfg, kd, aug = self.configs()
        inputs = [self.soft, *self.members, kd.init_from or None]
        for data, ali in ((self.train_data, self.train_ali), (self.transfer_data, None),
                          (self.dev_data, self.dev_ali), (self.test_data, self.test_ali)):
            if data:
                inputs += feature_inputs(data, "utt2spk")
            if ali:
                inputs += ali_inputs(ali)
        config = {"student": to_dict(student), "train": to_dict(train_cfg), "distill": to_dict(kd),
                  "augment": to_dict(aug),
                  "sets": [bool(x) for x in (self.train_ali, self.transfer_data, self.dev_data,
                                             self.test_data and self.test_ali)]}
        return Stage("distill", self.out, config, inputs=inputs, code=__name__,
                     outputs=output_paths(self.out), alias="train")   # (.train.done: its old name)

    def check(self, train_cfg: TrainConfig, kd: DistillConfig) -> None:
        if bool(self.dev_data) != bool(self.dev_ali):
            raise ConfigError("--dev-data and --dev-ali go together")
        if kd.teacher == "online" and not kd.schedule(train_cfg.epochs).hard_only:
            if not self.members:
                raise ConfigError("--online needs --members exp/members/m*/final.pt")
            check_online_features(teacher_meta(self.members, None), train_cfg, self.members[0],
                                  self.out)

    def run(self) -> dict:
        """Train the student (or skip it when up to date); its distill.json record."""
        student, train_cfg, kd, aug = self.configs()
        self.check(train_cfg, kd)
        st = self.stage()
        record = Path(self.out) / "distill.json"
        if not st.begin(self.force) and record.exists():
            return json.loads(record.read_text())
        record_plan(self.out, *self.train_plan()[1:], "student")
        res = distill_stage(student, train_cfg, kd, aug, self.train_data, self.train_ali,
                            self.dev_data, self.dev_ali, self.out, soft=self.soft,
                            members=self.members, transfer_data=self.transfer_data,
                            test_data=self.test_data, test_ali=self.test_ali, force=st.fresh)
        st.finish()
        return res

    def summary(self, res: dict) -> str:
        """One line of a result: kind, size, best epoch, dev/test frame accuracy, time."""
        kd = res["distill"]
        control = kd["alpha"] >= 1 and kd["alpha_final"] in (None, 1.0)
        kind = "hard-target control" if control else "student"
        test = f", test {100 * res['test']['acc']:.2f}%" if "test" in res else ""
        return (f"{self.out}: {kind}, {res['params']} params, best epoch {res['best']['epoch']}"
                f"{dev_accuracy(res)}{test}, {res['seconds']:.0f} s -> {res['final']}")

"""Frame-level DNN acoustic models: context-window datasets, MLP/TDNN/TDNN-F, trainer, checkpoints,
inference; `stage` (TrainJob) is the `acoustic-kd train` step."""

from .checkpoint import load_checkpoint, save_checkpoint
from .data import ArraySource, FrameDataset
from .infer import frame_metrics, log_posteriors
from .models import ModelConfig, build_model, count_params, macs_per_frame
from .stream import StreamingFrameDataset
from .trainer import TrainConfig, cross_entropy_objective, train

__all__ = ["ArraySource", "FrameDataset", "StreamingFrameDataset", "ModelConfig", "build_model",
           "count_params", "macs_per_frame", "save_checkpoint", "load_checkpoint", "TrainConfig",
           "train", "cross_entropy_objective", "log_posteriors", "frame_metrics"]

"""Self-describing checkpoints: one `.pt` file that rebuilds the model alone.

Layout (a dict saved with torch.save):
  format: "acoustic_kd.nnet/1"
  model_config: ModelConfig as a dict; input_dim; num_pdfs; state_dict (weights, CPU)
  meta: context (left, right), feature_config (fbank dict), cmvn ("speaker"/"global"/"none"),
        norm_vars, priors (list[float], P), train_config (dict), git_revision, + anything the caller
        adds (e.g. teacher ids for a distilled student)
  train_state (only in epoch-N.pt / latest.pt): optimizer, schedule, RNG states, position.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..config import from_dict, to_dict
from ..errors import DataError
from ..utils import atomic_path, git_revision
from .models import ModelConfig, build_model

FORMAT = "acoustic_kd.nnet/1"


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside a DDP / compiled wrapper."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model


def checkpoint_dict(model: nn.Module, meta: dict | None = None,
                    train_state: dict | None = None) -> dict:
    """The dict written by `save_checkpoint` (weights copied to CPU)."""
    model = unwrap(model)
    meta = dict(meta or {})
    meta.setdefault("context", list(model.config.context))
    meta.setdefault("git_revision", git_revision())
    out = {
        "format": FORMAT,
        "model_config": to_dict(model.config),
        "input_dim": int(model.input_dim),
        "num_pdfs": int(model.num_pdfs),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "meta": meta,
    }
    if train_state is not None:
        out["train_state"] = train_state
    return out


def save_checkpoint(path: str | os.PathLike, model: nn.Module, meta: dict | None = None,
                    train_state: dict | None = None) -> None:
    """Write a checkpoint atomically (a killed write never leaves a truncated file)."""
    write_checkpoint_dict(path, checkpoint_dict(model, meta, train_state))


def write_checkpoint_dict(path: str | os.PathLike, ckpt: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load the raw checkpoint dict (CPU), with a clear error for missing/foreign files."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "checkpoint not found", "train the model first or check the path")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated or not a torch file
        raise DataError(path, f"cannot read checkpoint ({e})", "re-run the training stage") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise DataError(path, "not an acoustic_kd checkpoint", "pass a final.pt written by "
                        "`acoustic-kd train` or `acoustic-kd distill`")
    return ckpt


def model_from_checkpoint(ckpt: dict) -> nn.Module:
    """Rebuild the model (eval mode) from a checkpoint dict."""
    cfg = from_dict(ModelConfig, ckpt["model_config"], "checkpoint model_config")
    model = build_model(cfg, ckpt["input_dim"], ckpt["num_pdfs"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def load_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """(model in eval mode on CPU, meta) from a `.pt` written by `save_checkpoint`.

    meta also gets `num_pdfs`, `input_dim` and `model_config` for convenience.
    """
    ckpt = read_checkpoint(path)
    meta = dict(ckpt["meta"])
    meta.update(num_pdfs=ckpt["num_pdfs"], input_dim=ckpt["input_dim"],
                model_config=ckpt["model_config"])
    return model_from_checkpoint(ckpt), meta

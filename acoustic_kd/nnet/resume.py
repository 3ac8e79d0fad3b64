"""Exact resume of a training run: RNG states, the newest training checkpoint, the training log
cut back to the resumed step, and pruning of old epoch checkpoints.

A training checkpoint (`epoch-N.pt`, `latest.pt`; see nnet.checkpoint) holds `train_state`:
optimiser state, `TrainState` and the RNG states saved by `rng_state`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

from ..config import to_dict
from .checkpoint import read_checkpoint


def rng_state() -> dict:
    st = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    np.random.set_state(st["numpy"])
    random.setstate(st["python"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def resume_mismatch(ckpt: dict, model: torch.nn.Module, train_config: dict) -> str:
    """'' when a training checkpoint continues this very run (same model, input, pdfs and training
    config), else what differs."""
    got = {"model config": ckpt.get("model_config"), "input dim": ckpt.get("input_dim"),
           "pdf count": ckpt.get("num_pdfs"), "training config": ckpt.get("meta", {}).get("train_config")}
    want = {"model config": to_dict(model.config), "input dim": int(model.input_dim),
            "pdf count": int(model.num_pdfs), "training config": train_config}
    return ", ".join(k for k in want if got[k] != want[k])


def clear_resume_state(out_dir: Path, is_main: bool = True) -> None:
    """Remove the training checkpoints a run resumes from (epoch-N.pt, latest.pt)."""
    if is_main:
        for p in [*out_dir.glob("epoch-*.pt"), out_dir / "latest.pt"]:
            p.unlink(missing_ok=True)


def find_resume(out_dir: Path) -> dict | None:
    """The newest training state among latest.pt and the highest epoch-N.pt (None if none)."""
    cands = []
    epochs = sorted(out_dir.glob("epoch-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    if epochs:
        cands.append(read_checkpoint(epochs[-1]))
    if (out_dir / "latest.pt").exists():
        cands.append(read_checkpoint(out_dir / "latest.pt"))
    cands = [c for c in cands if "train_state" in c]
    return max(cands, key=lambda c: c["train_state"]["state"]["global_step"]) if cands else None


class TrainLog:
    """train_log.jsonl writer (rank 0); on resume drops records newer than the resumed step."""

    def __init__(self, path: Path, resume_step: int | None, enabled: bool):
        self.path, self.enabled = path, enabled
        if not enabled:
            return
        keep = []
        if resume_step is not None and path.exists():
            for line in path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # torn last line of a killed run
                    continue
                if rec.get("step", 0) <= resume_step:
                    keep.append(line + "\n")
        path.write_text("".join(keep))

    def write(self, rec: dict) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")


def prune_epochs(out_dir: Path, keep: int) -> None:
    if keep <= 0:
        return
    eps = sorted(out_dir.glob("epoch-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    for p in eps[:-keep]:
        p.unlink(missing_ok=True)

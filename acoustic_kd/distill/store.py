"""Soft-target store: top-k sparse (or dense) teacher distributions per frame, in shards.

Directory layout (`exp/ensemble/soft/`):
  meta.json                T, k, rule, dense, num_pdfs, num_frames, shard_frames, members (checkpoint
                           paths), transfer_set, context, utts + offsets (FrameDataset global order),
                           bytes per frame (stored vs dense float32)
  shard-00000.idx.npy      uint16  [n, k]   pdf ids of the k most probable classes (top-k only;
                                            int32 beyond 65536 pdfs; older stores: int32)
  shard-00000.prob.npy     float16 [n, k]   their probabilities at temperature T (top-k), or
                           float32 [n, P]   the full distribution (dense, for checks)
  .shard-00000.done        shard complete (a killed run resumes at the first missing shard)
  .config.json             the settings the shards were made with (a re-run with others is an error)
  .done                    all shards written
Shard i holds frames [i·shard_frames, (i+1)·shard_frames) of the transfer set's global frame order.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..utils import atomic_path, atomic_write_json, is_done, mark_done
from .targets import id_dtype, storage_bytes_per_frame


def shard_name(i: int) -> str:
    return f"shard-{i:05d}"


class SoftTargetWriter:
    """Write shards for frames in order; resumable (`done(i)`), atomic per shard. `part`: a job
    writing some shards of a store its driver opened (.config.json must hold `settings`; it is
    not rewritten and nothing is reset)."""

    def __init__(self, out_dir: str | Path, settings: dict, force: bool = False,
                 num_pdfs: int | None = None, part: bool = False):
        self.out = Path(out_dir)
        self.id_dtype = id_dtype(num_pdfs) if num_pdfs is not None else np.dtype(np.int32)
        self.out.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        cfg_path = self.out / ".config.json"
        if (cfg_path.exists() and not force) or part:
            old = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
            if old != json.loads(json.dumps(settings, default=str)):
                diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
                raise ConfigError(f"{self.out} holds soft targets made with other settings "
                                  f"(differ in {diff}); pass --force or choose another --out")
            if part:
                return
        elif force:
            for p in self.out.glob(".shard-*.done"):
                p.unlink()
            if is_done(self.out):
                (self.out / ".done").unlink()
        atomic_write_json(cfg_path, settings)

    def done(self, i: int) -> bool:
        return is_done(self.out, shard_name(i))

    def write(self, i: int, probs_or_idx: np.ndarray, probs: np.ndarray | None = None) -> None:
        """Shard i: (idx [n, k], probs [n, k]) for top-k, or (probs [n, P], None) for dense; the ids
        are stored as `targets.id_dtype(num_pdfs)` (int32 when the writer was not told num_pdfs)."""
        name = shard_name(i)
        if probs is None:
            arrays = {"prob": np.asarray(probs_or_idx, dtype=np.float32)}
        else:
            arrays = {"idx": np.asarray(probs_or_idx).astype(self.id_dtype),
                      "prob": np.asarray(probs, dtype=np.float16)}
        for kind, arr in arrays.items():
            with atomic_path(self.out / f"{name}.{kind}.npy") as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, arr)
        mark_done(self.out, name, {"frames": int(arrays["prob"].shape[0])})

    def finish(self, meta: dict) -> dict:
        """Write meta.json (+ measured bytes per frame) and the final `.done` marker."""
        files = list(self.out.glob("shard-*.npy"))
        on_disk = sum(p.stat().st_size for p in files)
        meta = dict(meta)
        meta.update(storage_bytes_per_frame(meta["k"], meta["num_pdfs"], meta["dense"]))
        meta["bytes_on_disk"] = on_disk
        meta["bytes_on_disk_per_frame"] = on_disk / max(1, meta["num_frames"])
        atomic_write_json(self.out / "meta.json", meta)
        mark_done(self.out)
        return meta


class SoftTargetStore:
    """Read side: look up teacher targets by global frame id.

    `lookup(idx [B])` -> dense probs [B, P] (dense store) or (idx int64 [B, k], probs float32 [B, k]).
    Shards are memory-mapped, so the store may exceed RAM.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        if not meta_path.exists() or not is_done(self.path):
            raise DataError(meta_path, "soft targets are missing or incomplete",
                            "run (or finish) `acoustic-kd soft-targets` into this directory")
        self.meta = json.loads(meta_path.read_text())
        self.T = float(self.meta["T"])
        self.k = int(self.meta["k"])
        self.dense = bool(self.meta["dense"])
        self.num_pdfs = int(self.meta["num_pdfs"])
        self.num_frames = int(self.meta["num_frames"])
        self.shard_frames = int(self.meta["shard_frames"])
        n_shards = (self.num_frames + self.shard_frames - 1) // self.shard_frames
        self._prob = [np.load(self.path / f"{shard_name(i)}.prob.npy", mmap_mode="r")
                      for i in range(n_shards)]
        self._idx = (None if self.dense else
                     [np.load(self.path / f"{shard_name(i)}.idx.npy", mmap_mode="r")
                      for i in range(n_shards)])

    def __len__(self) -> int:
        return self.num_frames

    def check_frames(self, utts: list[str], offsets) -> None:
        """Raise DataError unless the dataset's utterances and frame offsets match the store's."""
        if list(utts) != list(self.meta["utts"]) or [int(o) for o in offsets] != self.meta["offsets"]:
            mine, theirs = len(self.meta["utts"]), len(utts)
            raise DataError(self.path / "meta.json",
                            f"soft targets cover {mine} utterances / {self.num_frames} frames that do "
                            f"not match the training set ({theirs} utterances / {int(offsets[-1])} "
                            "frames)", "recompute soft targets on the same data dir and alignments")

    def _gather(self, arrays: list[np.ndarray], idx: np.ndarray) -> np.ndarray:
        shard, local = np.divmod(idx, self.shard_frames)
        out = np.empty((len(idx), arrays[0].shape[1]), dtype=arrays[0].dtype)
        for s in np.unique(shard):
            sel = shard == s
            out[sel] = arrays[s][local[sel]]
        return out

    def lookup(self, idx: torch.Tensor):
        """Targets of global frames idx [B] (see class docstring)."""
        i = np.asarray(torch.as_tensor(idx).cpu(), dtype=np.int64)
        if i.size and (i.min() < 0 or i.max() >= self.num_frames):
            raise IndexError(f"frame id out of range [0, {self.num_frames})")
        p = torch.from_numpy(self._gather(self._prob, i).astype(np.float32))
        if self.dense:
            return p
        return torch.from_numpy(self._gather(self._idx, i).astype(np.int64)), p

"""Frame-level datasets: context windows gathered by index from packed per-utterance features.

Features of all utterances live in ONE float32 array [N, D] with per-utterance offsets; a training
example is frame n with its window [n-L, n+R], edge frames replicated at utterance boundaries. No
spliced copy is ever materialised: a batch gathers its [B, L+1+R, D] windows on the fly.
Frame ids are global indices 0..N-1 in utterance order, so per-frame side data (soft targets) can
be looked up by `batch["idx"]`.

For corpora larger than RAM see `nnet.stream.StreamingFrameDataset` (same batch format).
"""

from __future__ import annotations

from typing import Iterator, Mapping, Protocol, Sequence

import numpy as np
import torch

from ..errors import DataError
from ..utils import c_sorted, get_logger

log = get_logger("nnet.data")

Batch = dict  # {"x": float32 [B, L+1+R, D], "y": int64 [B] (-1 = no label), "idx": int64 [B]}


class FeatureSource(Protocol):
    """What datasets read: `features.FeatureSet` or `ArraySource` (CMVN applied by the source)."""

    utts: list[str]

    def __getitem__(self, utt: str) -> np.ndarray: ...

    def num_frames(self, utt: str) -> int: ...


class ArraySource:
    """An in-memory feature source: {utt: float32 [T, D]} (used by tests and inference)."""

    def __init__(self, feats: Mapping[str, np.ndarray]):
        self._feats = feats
        self.utts = c_sorted(feats)
        self.dim = int(np.asarray(feats[self.utts[0]]).shape[1]) if self.utts else 0

    def __getitem__(self, utt: str) -> np.ndarray:
        return np.asarray(self._feats[utt], dtype=np.float32)

    def __len__(self) -> int:
        return len(self.utts)

    def num_frames(self, utt: str) -> int:
        return int(np.asarray(self._feats[utt]).shape[0])


def select_utts(source: FeatureSource, alis: Mapping[str, np.ndarray] | None,
                utts: Sequence[str] | None = None, where: str = "alignments") -> list[str]:
    """Utterances to use: with features AND (when `alis` is given) an alignment of the same length.

    Utterances without an alignment are skipped with a logged count (they failed to align, listed in
    the alignment dir's failed.txt). A length mismatch is a DataError: it means a config mismatch.
    """
    utts = list(source.utts if utts is None else utts)
    if alis is None:
        return utts
    missing = [u for u in utts if u not in alis]
    if missing:
        log.warning("%d of %d utterances have no alignment and are skipped (e.g. %s)",
                    len(missing), len(utts), ", ".join(missing[:3]))
    kept = [u for u in utts if u in alis]
    for u in kept:
        t = source.num_frames(u)
        if len(alis[u]) != t:
            raise DataError(where, f"utterance {u}: alignment has {len(alis[u])} frames but features "
                            f"have {t}", "re-align with the feature config used for training")
    if not kept:
        raise DataError(where, "no utterance has both features and an alignment",
                        "check that the alignment dir belongs to this data dir")
    return kept


def gather_windows(feats: torch.Tensor, idx: torch.Tensor, start: torch.Tensor, end: torch.Tensor,
                   context: tuple[int, int]) -> torch.Tensor:
    """Gather context windows by index, replicating edge frames.

    feats [N, D]; idx, start, end [B] (window centre and its utterance's [start, end) frame range).
    Returns [B, L+1+R, D].
    """
    left, right = context
    offs = torch.arange(-left, right + 1, dtype=torch.long)
    pos = (idx[:, None] + offs[None, :]).clamp_(start[:, None], end[:, None] - 1)
    return feats.index_select(0, pos.view(-1)).view(len(idx), left + 1 + right, feats.shape[1])


def split_for_rank(idx: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's contiguous part of a global batch (DDP: every rank sees 1/world of each batch)."""
    if world_size <= 1:
        return idx
    return torch.tensor_split(idx, world_size)[rank]


def epoch_permutation(num: int, seed: int, epoch: int) -> torch.Tensor:
    """The seeded frame order of one epoch: a function of (seed, epoch) only, so resumable."""
    g = torch.Generator().manual_seed(int(seed) * 100003 + int(epoch))
    return torch.randperm(num, generator=g)


class FrameDataset:
    """All frames of a feature set (+ optional alignments) packed into one array.

    feats: a FeatureSource (CMVN applied by it); alis: {utt: int32 [T]} or None (labels -1);
    context: (left, right) frames. Frame ids 0..N-1 follow `self.utts` order.
    """

    def __init__(self, feats: FeatureSource, alis: Mapping[str, np.ndarray] | None,
                 context: tuple[int, int] = (10, 10), utts: Sequence[str] | None = None):
        self.context = (int(context[0]), int(context[1]))
        if min(self.context) < 0:
            raise ValueError(f"context must be non-negative, got {context}")
        self.utts = select_utts(feats, alis, utts)
        arrays = [np.asarray(feats[u], dtype=np.float32) for u in self.utts]
        lengths = np.array([len(a) for a in arrays], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.num_frames = int(self.offsets[-1])
        self.dim = int(arrays[0].shape[1]) if arrays else 0
        self.feats = torch.from_numpy(np.concatenate(arrays) if arrays else
                                      np.zeros((0, 0), np.float32))
        del arrays
        labels = (np.concatenate([np.asarray(alis[u], dtype=np.int64) for u in self.utts])
                  if alis is not None else np.full(self.num_frames, -1, dtype=np.int64))
        self.labels = torch.from_numpy(labels)
        self._index = {u: i for i, u in enumerate(self.utts)}
        self._offsets_t = torch.from_numpy(self.offsets)

    @classmethod
    def from_arrays(cls, feats: Mapping[str, np.ndarray], alis: Mapping[str, np.ndarray] | None,
                    context: tuple[int, int] = (10, 10)) -> "FrameDataset":
        """Build from in-memory arrays {utt: float32 [T, D]} and {utt: int [T]} (or None)."""
        return cls(ArraySource(feats), alis, context)

    def __len__(self) -> int:
        return self.num_frames

    def utt_frames(self, utt: str) -> slice:
        """Global frame ids of one utterance."""
        i = self._index[utt]
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def batch(self, idx: torch.Tensor) -> Batch:
        """Gather frames `idx` (int64 [B]) -> {x [B, L+1+R, D], y [B], idx [B]}."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        u = torch.searchsorted(self._offsets_t, idx, right=True) - 1
        x = gather_windows(self.feats, idx, self._offsets_t[u], self._offsets_t[u + 1], self.context)
        return {"x": x, "y": self.labels[idx], "idx": idx}

    def num_batches(self, batch_size: int) -> int:
        return (self.num_frames + batch_size - 1) // batch_size

    def iter_batches(self, batch_size: int, shuffle: bool = False, seed: int = 0, epoch: int = 0,
                     start_step: int = 0, rank: int = 0, world_size: int = 1) -> Iterator[Batch]:
        """Yield batches of one epoch from batch number `start_step` on.

        Shuffling is at the frame level across utterances, seeded by (seed, epoch). Under DDP each
        rank gets its contiguous share of every global batch of `batch_size` frames.
        """
        order = (epoch_permutation(self.num_frames, seed, epoch) if shuffle
                 else torch.arange(self.num_frames))
        for b in range(start_step, self.num_batches(batch_size)):
            idx = split_for_rank(order[b * batch_size:(b + 1) * batch_size], rank, world_size)
            yield self.batch(idx)


def make_synthetic(num_utts: int = 20, num_pdfs: int = 8, dim: int = 13, min_len: int = 20,
                   max_len: int = 60, seed: int = 0, task_seed: int = 0
                   ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A learnable toy task for tests and benchmarks: random features, label = f(centre frame).

    Returns ({utt: float32 [T, D]}, {utt: int32 [T]}); the label is the argmax of a fixed random
    projection of the frame, so a model reaching well above 1/num_pdfs accuracy has learned.
    `task_seed` fixes the projection (share it between train and dev sets), `seed` the data.
    """
    proj = np.random.default_rng(task_seed).standard_normal((dim, num_pdfs)).astype(np.float32)
    rng = np.random.default_rng(seed + 1)
    feats, alis = {}, {}
    for i in range(num_utts):
        t = int(rng.integers(min_len, max_len + 1))
        x = rng.standard_normal((t, dim)).astype(np.float32)
        feats[f"utt{i:05d}"] = x
        alis[f"utt{i:05d}"] = (x @ proj).argmax(1).astype(np.int32)
    return feats, alis

"""Bounded-memory frame dataset: utterances read in shards, frames shuffled within a shard buffer.

Memory holds at most `buffer_shards` shards of `shard_utts` utterances (plus one partial batch), so
a feature set larger than RAM trains with the same batch format as `FrameDataset`:
{x [B, L+1+R, D], y [B], idx [B]} where idx are the same global frame ids (utterance order).
Per epoch: the shard order is shuffled (seeded), consecutive groups of `buffer_shards` shards are
loaded, and their frames are shuffled together; every frame is seen exactly once per epoch.
"""

from __future__ import annotations

from typing import Iterator, Mapping, Sequence

import numpy as np
import torch

from .data import (Batch, FeatureSource, epoch_permutation, gather_windows, select_utts,
                   split_for_rank)


class StreamingFrameDataset:
    """Frames of `feats` (+ optional `alis`) read shard by shard; see the module docstring.

    feats: a FeatureSource (e.g. `features.FeatureSet` reading feats.scp lazily via kaldiio);
    alis: {utt: int32 [T]} or None; context: (left, right).
    """

    def __init__(self, feats: FeatureSource, alis: Mapping[str, np.ndarray] | None,
                 context: tuple[int, int] = (10, 10), utts: Sequence[str] | None = None,
                 shard_utts: int = 256, buffer_shards: int = 4):
        self.source = feats
        self.alis = alis
        self.context = (int(context[0]), int(context[1]))
        self.utts = select_utts(feats, alis, utts)
        lengths = np.array([feats.num_frames(u) for u in self.utts], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.num_frames = int(self.offsets[-1])
        self.shard_utts = max(1, int(shard_utts))
        self.buffer_shards = max(1, int(buffer_shards))
        self.shards = [list(range(i, min(i + self.shard_utts, len(self.utts))))
                       for i in range(0, len(self.utts), self.shard_utts)]
        self.dim = int(np.asarray(feats[self.utts[0]]).shape[1]) if self.utts else 0
        self.max_resident_frames = 0  # largest buffer held so far (for memory checks)

    def __len__(self) -> int:
        return self.num_frames

    def num_batches(self, batch_size: int) -> int:
        return (self.num_frames + batch_size - 1) // batch_size

    def utt_frames(self, utt: str) -> slice:
        i = self.utts.index(utt)
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def _load_buffer(self, utt_ids: list[int]):
        """Pack the given utterances: feats [n, D], labels [n], global ids [n], local start/end [n]."""
        arrays = [np.asarray(self.source[self.utts[i]], dtype=np.float32) for i in utt_ids]
        lens = [len(a) for a in arrays]
        local_off = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        gid = np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in utt_ids])
        start = np.repeat(local_off[:-1], lens)
        end = np.repeat(local_off[1:], lens)
        if self.alis is not None:
            labels = np.concatenate([np.asarray(self.alis[self.utts[i]], np.int64) for i in utt_ids])
        else:
            labels = np.full(len(gid), -1, dtype=np.int64)
        self.max_resident_frames = max(self.max_resident_frames, len(gid))
        return (torch.from_numpy(np.concatenate(arrays)), torch.from_numpy(labels),
                torch.from_numpy(gid), torch.from_numpy(start), torch.from_numpy(end))

    def _buffers(self, shuffle: bool, seed: int, epoch: int) -> Iterator[list[int]]:
        order = (epoch_permutation(len(self.shards), seed, epoch).tolist() if shuffle
                 else list(range(len(self.shards))))
        for i in range(0, len(order), self.buffer_shards):
            yield [u for s in order[i:i + self.buffer_shards] for u in self.shards[s]]

    def _global_batches(self, batch_size: int, shuffle: bool, seed: int, epoch: int
                        ) -> Iterator[Batch]:
        pending: list[Batch] = []
        have = 0
        for k, utt_ids in enumerate(self._buffers(shuffle, seed, epoch)):
            feats, labels, gid, start, end = self._load_buffer(utt_ids)
            n = len(gid)
            order = (epoch_permutation(n, seed * 7919 + k, epoch) if shuffle else torch.arange(n))
            pos = 0
            while pos < n:
                take = min(batch_size - have, n - pos)
                loc = order[pos:pos + take]
                pending.append({"x": gather_windows(feats, loc, start[loc], end[loc], self.context),
                                "y": labels[loc], "idx": gid[loc]})
                have += take
                pos += take
                if have == batch_size:
                    yield _concat(pending)
                    pending, have = [], 0
            del feats, labels, gid, start, end
        if pending:
            yield _concat(pending)

    def iter_batches(self, batch_size: int, shuffle: bool = False, seed: int = 0, epoch: int = 0,
                     start_step: int = 0, rank: int = 0, world_size: int = 1) -> Iterator[Batch]:
        """Same contract as `FrameDataset.iter_batches` (order differs: shuffled within buffers).

        Under DDP every rank reads every shard and keeps its share of each global batch, so the
        batches equal the single-process ones (reading, not compute, is repeated per rank).
        """
        for b, batch in enumerate(self._global_batches(batch_size, shuffle, seed, epoch)):
            if b < start_step:
                continue
            if world_size > 1:
                n = len(batch["idx"])
                part = split_for_rank(torch.arange(n), rank, world_size)
                batch = {k: v[part] for k, v in batch.items()}
            yield batch


def _concat(parts: list[Batch]) -> Batch:
    if len(parts) == 1:
        return parts[0]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

"""Frame datasets: context gathering with edge replication, shuffling, DDP sharding, streaming."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from acoustic_kd.errors import DataError
from acoustic_kd.nnet.data import ArraySource, FrameDataset, make_synthetic
from acoustic_kd.nnet.stream import StreamingFrameDataset


def _ramp_feats() -> dict[str, np.ndarray]:
    # frame value = global frame number, so gathered windows are easy to read
    return {"a": np.arange(4, dtype=np.float32)[:, None].repeat(2, 1),
            "b": np.arange(4, 9, dtype=np.float32)[:, None].repeat(2, 1)}


def test_context_edges_are_replicated_within_the_utterance():
    ds = FrameDataset.from_arrays(_ramp_feats(), None, context=(2, 3))
    assert ds.num_frames == 9 and ds.utt_frames("b") == slice(4, 9)
    b = ds.batch(torch.tensor([0, 3, 4, 8]))
    assert b["x"].shape == (4, 6, 2)
    win = b["x"][:, :, 0].tolist()
    assert win[0] == [0, 0, 0, 1, 2, 3]          # left edge of "a" replicated
    assert win[1] == [1, 2, 3, 3, 3, 3]          # right edge of "a": never reads into "b"
    assert win[2] == [4, 4, 4, 5, 6, 7]          # left edge of "b"
    assert win[3] == [6, 7, 8, 8, 8, 8]
    assert b["y"].tolist() == [-1] * 4 and b["idx"].tolist() == [0, 3, 4, 8]


def test_asymmetric_context_and_labels():
    feats, alis = make_synthetic(3, num_pdfs=5, dim=4, seed=0)
    ds = FrameDataset.from_arrays(feats, alis, context=(20, 5))
    b = ds.batch(torch.arange(ds.num_frames))
    assert b["x"].shape == (ds.num_frames, 26, 4)
    np.testing.assert_array_equal(b["x"][:, 20].numpy(), np.concatenate(list(feats.values())))
    np.testing.assert_array_equal(b["y"].numpy(), np.concatenate(list(alis.values())))


def test_alignment_problems_are_reported():
    feats, alis = make_synthetic(3, seed=0)
    bad = dict(alis)
    bad["utt00001"] = bad["utt00001"][:-1]
    with pytest.raises(DataError, match="utt00001.*frames"):
        FrameDataset.from_arrays(feats, bad, (1, 1))
    partial = {k: v for k, v in alis.items() if k != "utt00002"}
    ds = FrameDataset.from_arrays(feats, partial, (1, 1))  # unaligned utterance skipped, logged
    assert ds.utts == ["utt00000", "utt00001"]


def test_shuffling_is_seeded_per_epoch_and_resumable():
    feats, alis = make_synthetic(10, seed=0)
    ds = FrameDataset.from_arrays(feats, alis, (1, 1))

    def order(**kw):
        return torch.cat([b["idx"] for b in ds.iter_batches(32, shuffle=True, **kw)])

    o1 = order(seed=3, epoch=0)
    assert torch.equal(o1, order(seed=3, epoch=0))
    assert not torch.equal(o1, order(seed=3, epoch=1))
    assert not torch.equal(o1, order(seed=4, epoch=0))
    assert sorted(o1.tolist()) == list(range(ds.num_frames))   # every frame once
    assert torch.equal(order(seed=3, epoch=0, start_step=2), o1[64:])
    # frames from different utterances are mixed within a batch
    first = next(ds.iter_batches(32, shuffle=True, seed=3))["idx"]
    utts = torch.searchsorted(torch.from_numpy(ds.offsets), first, right=True)
    assert len(set(utts.tolist())) > 3


def test_ranks_take_contiguous_shares_of_each_global_batch():
    feats, alis = make_synthetic(5, seed=0)
    ds = FrameDataset.from_arrays(feats, alis, (1, 1))
    glob = list(ds.iter_batches(50, shuffle=True, seed=1))
    r0 = list(ds.iter_batches(50, shuffle=True, seed=1, rank=0, world_size=2))
    r1 = list(ds.iter_batches(50, shuffle=True, seed=1, rank=1, world_size=2))
    assert len(glob) == len(r0) == len(r1)
    for g, a, b in zip(glob, r0, r1):
        assert torch.equal(torch.cat([a["idx"], b["idx"]]), g["idx"])


def test_streaming_covers_every_frame_once_with_bounded_memory():
    feats, alis = make_synthetic(40, seed=2, min_len=10, max_len=30)
    full = FrameDataset.from_arrays(feats, alis, (2, 2))
    st = StreamingFrameDataset(ArraySource(feats), alis, (2, 2), shard_utts=4, buffer_shards=2)
    assert st.num_frames == full.num_frames and st.num_batches(64) == full.num_batches(64)
    for epoch in (0, 1):
        batches = list(st.iter_batches(64, shuffle=True, seed=5, epoch=epoch))
        assert all(len(b["idx"]) == 64 for b in batches[:-1])
        idx = torch.cat([b["idx"] for b in batches])
        assert sorted(idx.tolist()) == list(range(full.num_frames))
        ref = full.batch(idx)   # same windows and labels as the in-memory dataset
        assert torch.equal(torch.cat([b["x"] for b in batches]), ref["x"])
        assert torch.equal(torch.cat([b["y"] for b in batches]), ref["y"])
    assert st.max_resident_frames <= 8 * 30       # 2 shards x 4 utterances x max length
    assert st.max_resident_frames < full.num_frames / 3
    again = torch.cat([b["idx"] for b in st.iter_batches(64, shuffle=True, seed=5, epoch=1)])
    assert torch.equal(again, idx)
    skipped = torch.cat([b["idx"] for b in st.iter_batches(64, shuffle=True, seed=5, epoch=1,
                                                           start_step=3)])
    assert torch.equal(skipped, idx[3 * 64:])

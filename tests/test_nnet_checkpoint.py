"""Checkpoints: one file rebuilds the model alone; foreign or missing files give clear errors."""

from __future__ import annotations

import pytest
import torch

from acoustic_kd.errors import DataError
from acoustic_kd.nnet import ModelConfig, build_model, load_checkpoint, save_checkpoint


def test_round_trip_rebuilds_identical_outputs(tmp_path):
    torch.manual_seed(0)
    cfg = ModelConfig(arch="tdnn", hidden=12, layers=2, context=(4, 3), norm="batch",
                      tdnn_dilations=(1, 2))
    model = build_model(cfg, 5, 7)
    model.train()
    model(torch.randn(16, 8, 5))            # move the batch-norm running stats off their init
    model.eval()
    meta = {"cmvn": "global", "priors": [1 / 7] * 7, "feature_config": {"num_mel_bins": 5}}
    save_checkpoint(tmp_path / "m.pt", model, meta)
    m2, got = load_checkpoint(tmp_path / "m.pt")
    x = torch.randn(9, 8, 5)
    with torch.no_grad():
        assert torch.equal(model(x), m2(x))
    assert not m2.training and m2.config == cfg
    assert got["context"] == [4, 3] and got["num_pdfs"] == 7 and got["input_dim"] == 5
    assert got["priors"] == meta["priors"] and got["git_revision"]


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(DataError, match="not an acoustic_kd checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "cut.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="cannot read"):
        load_checkpoint(tmp_path / "cut.pt")

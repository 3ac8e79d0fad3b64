"""Models: shapes, parameter and MAC counts against hand-computed values, config errors."""

from __future__ import annotations

import pytest
import torch

from acoustic_kd.errors import ConfigError
from acoustic_kd.nnet.models import ModelConfig, build_model, count_params, macs_per_frame


@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
def test_mlp_shapes_params_macs(norm):
    cfg = ModelConfig(arch="mlp", hidden=32, layers=2, context=(3, 1), norm=norm, dropout=0.1)
    m = build_model(cfg, input_dim=5, num_pdfs=7)
    assert m(torch.randn(4, 5, 5)).shape == (4, 7)
    macs = 25 * 32 + 32 * 32 + 32 * 7
    assert macs_per_frame(m) == macs
    extra = {"none": 0, "batch": 2 * 2 * 32, "layer": 2 * 2 * 32}[norm]
    assert count_params(m) == macs + 32 + 32 + 7 + extra
    assert m.training  # macs_per_frame restores the mode


def test_tdnn_shapes_params_macs():
    cfg = ModelConfig(arch="tdnn", hidden=16, layers=2, context=(4, 4), tdnn_kernel=3,
                      tdnn_dilations=[1, 2])
    m = build_model(cfg, input_dim=6, num_pdfs=5)
    assert m(torch.randn(3, 9, 6)).shape == (3, 5)
    # window 9 -> 7 (k3 d1) -> 3 (k3 d2); then Linear(16*3 -> 5)
    macs = 7 * 16 * 6 * 3 + 3 * 16 * 16 * 3 + 16 * 3 * 5
    assert macs_per_frame(m) == macs
    assert count_params(m) == 16 * 6 * 3 + 16 + 16 * 16 * 3 + 16 + 48 * 5 + 5
    assert build_model(ModelConfig(arch="tdnn", hidden=8, layers=3, norm="layer", context=(6, 6)),
                       4, 3)(torch.randn(2, 13, 4)).shape == (2, 3)


def test_config_errors():
    with pytest.raises(ConfigError):
        ModelConfig(arch="rnn")
    with pytest.raises(ConfigError):
        ModelConfig(norm="group")
    with pytest.raises(ConfigError, match="too short"):
        build_model(ModelConfig(arch="tdnn", layers=3, context=(1, 1)), 4, 3)
    assert ModelConfig(context=[20, 5]).context == (20, 5)   # lists from YAML/CLI

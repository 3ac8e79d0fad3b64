"""DDP under torchrun on CPU (gloo): a 2-process run follows the 1-process loss curve.

Each rank takes half of every global batch and gradients are averaged with batch-share weights, so
the two runs differ only by float summation order: per-step losses agree within 1e-4 (stated
tolerance; observed ~3e-7) and final weights within 1e-4. The batch size leaves a last batch of
one frame, so one rank's share is empty (it must still join the gradient all-reduce).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

SCRIPT = textwrap.dedent("""
    import sys, torch
    from acoustic_kd.nnet import FrameDataset, ModelConfig, TrainConfig, build_model, train
    from acoustic_kd.nnet.data import make_synthetic
    torch.set_num_threads(1)
    tr = FrameDataset.from_arrays(*make_synthetic(20, num_pdfs=5, dim=6, seed=0), (2, 2))
    dv = FrameDataset.from_arrays(*make_synthetic(5, num_pdfs=5, dim=6, seed=1), (2, 2))
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden=32, layers=2, context=(2, 2)), 6, 5)
    assert tr.num_frames % 59 == 1   # the last batch has 1 frame: rank 1's share is empty
    cfg = TrainConfig(epochs=2, batch_size=59, lr=3e-3, warmup_steps=3, log_every=1, patience=0,
                      device="cpu", bf16=False)
    train(model, tr, dv, cfg, sys.argv[1])
""")


def _steps(out):
    recs = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    return [r["loss"] for r in recs if r["type"] == "step"], [r for r in recs if r["type"] == "epoch"]


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    subprocess.run([sys.executable, str(script), str(tmp_path / "one")], env=env, check=True,
                   timeout=120, capture_output=True)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        "--nproc-per-node", "2", str(script), str(tmp_path / "two")], env=env,
                       timeout=180, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    one, ep1 = _steps(tmp_path / "one")
    two, ep2 = _steps(tmp_path / "two")
    assert len(one) == len(two) > 20
    assert max(abs(a - b) for a, b in zip(one, two)) < 1e-4
    assert [e["dev_acc"] for e in ep1] == pytest.approx([e["dev_acc"] for e in ep2], abs=1e-9)
    w1 = torch.load(tmp_path / "one" / "final.pt", weights_only=False)["state_dict"]
    w2 = torch.load(tmp_path / "two" / "final.pt", weights_only=False)["state_dict"]
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], atol=1e-4, rtol=0)

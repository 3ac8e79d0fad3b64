"""`--backend slurm` against a real Slurm: the features and ensemble stages give what `--backend
local` gives, failures and interruptions behave.

Needs a Slurm whose `sinfo` shows a responding node, e.g. the single-node one of
`sudo bench/slurm_local.sh start` (Debian's slurm-wlm + munge). Skipped otherwise, naming why.
Everything is marked `slurm` (-m slurm runs only these). The jobs run this checkout's package
(PYTHONPATH), with one thread each.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO
from test_ensemble import _data_dir
from test_features import SR, _read_all, make_data_dir

from acoustic_kd.cli import main
from acoustic_kd.errors import AcousticKDError
from acoustic_kd.features import FeatureSet
from acoustic_kd.jobs import Job, run_jobs
from acoustic_kd.nnet import load_checkpoint

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("one_torch_thread")]

READY = ("idle", "mixed", "allocated", "completing")


def _squeue(name: str) -> list[str]:
    """States of the queued or running Slurm jobs called `name`."""
    out = subprocess.run(["squeue", "-h", "-n", name, "-o", "%T"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    return out.split()


@pytest.fixture(scope="module")
def slurm() -> None:
    """Skip unless sinfo/sbatch exist and some node answers."""
    missing = [b for b in ("sinfo", "sbatch", "squeue", "scancel") if shutil.which(b) is None]
    if missing:
        pytest.skip(f"no Slurm here ({', '.join(missing)} not found; see bench/slurm_local.sh)")
    try:
        res = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.skip("sinfo timed out: slurmctld does not answer (bench/slurm_local.sh start)")
    if res.returncode != 0:
        pytest.skip(f"sinfo failed: {res.stderr.strip()[:200]} (bench/slurm_local.sh start)")
    states = [s.rstrip("*~#!%$@^-") for s in res.stdout.split()]
    if not any(s in READY for s in states):
        pytest.skip(f"no Slurm node responds (sinfo states: {states or 'none'})")


@pytest.fixture
def job_env(monkeypatch) -> None:
    """Jobs (local and Slurm alike) import this checkout and use one thread."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def test_features_slurm_equals_local(slurm, job_env, tmp_path, rng):
    local = make_data_dir(tmp_path / "local", rng, per_speaker=4)
    on_slurm = tmp_path / "slurm" / "train"
    shutil.copytree(local, on_slurm)
    common = ["--nj", "2", "--sample-rate", str(SR)]
    assert main(["features", "--data", str(local), "--backend", "local", *common]) == 0
    assert main(["features", "--data", str(on_slurm), "--backend", "slurm", *common]) == 0
    f_local, f_slurm = _read_all(local), _read_all(on_slurm)
    assert list(f_local) == list(f_slurm) and len(f_local) == 8
    for utt in f_local:
        np.testing.assert_array_equal(f_slurm[utt], f_local[utt])
    for name in ("utt2num_frames", "fbank.json"):
        assert (on_slurm / name).read_text() == (local / name).read_text()
    s_local, s_slurm = FeatureSet(local).speaker_stats(), FeatureSet(on_slurm).speaker_stats()
    assert s_local.keys() == s_slurm.keys()
    for spk in s_local:
        np.testing.assert_array_equal(s_slurm[spk], s_local[spk])
    # the parts really went through sbatch: its messages beside each job's (Slurm-written) log
    for part in (1, 2):
        job_log = on_slurm / "log" / f"make_fbank_train.{part}.log"
        submit = Path(f"{job_log}.submit").read_text()
        assert "Submitted batch job" in submit and "# Ended (code 0)" in submit
        assert job_log.exists()
    assert not (local / "log" / "make_fbank_train.1.log.submit").exists()


SMALL = ["--hidden", "16", "--layers", "1", "--context", "1", "1", "--epochs", "2",
         "--batch-size", "64", "--warmup-steps", "5", "--lr", "0.003"]


def test_ensemble_slurm_equals_local(slurm, job_env, tmp_path):
    trd, tra = _data_dir(tmp_path, "train", 0, 20)
    dvd, dva = _data_dir(tmp_path, "dev", 1, 8)
    results = {}
    for backend in ("local", "slurm"):
        out = tmp_path / backend
        assert main(["ensemble", "--num-members", "2", "--nj", "2", "--out", str(out),
                     "--backend", backend, "--train-data", trd, "--train-ali", tra,
                     "--dev-data", dvd, "--dev-ali", dva, "--test-data", dvd, "--test-ali", dva,
                     "--", *SMALL]) == 0
        results[backend] = json.loads((out / "eval.json").read_text())
    assert results["slurm"]["sets"] == results["local"]["sets"]     # every number, exactly
    members = results["local"]["sets"]["dev"]["members"]
    assert members["m1"]["acc"] != members["m2"]["acc"]             # the seeds did differ
    for m in ("m1", "m2"):
        (w_local, meta_local), (w_slurm, meta_slurm) = (
            load_checkpoint(tmp_path / b / m / "final.pt") for b in ("local", "slurm"))
        assert meta_slurm["train_config"]["seed"] == meta_local["train_config"]["seed"]
        sd_local, sd_slurm = w_local.state_dict(), w_slurm.state_dict()
        assert sd_local.keys() == sd_slurm.keys()
        for k in sd_local:
            assert torch.equal(sd_slurm[k], sd_local[k]), f"{m}: {k} differs"
        assert "Submitted batch job" in (tmp_path / "slurm" / "log" / f"train.{m}.log.submit").read_text()


def test_failure_exit_code_and_literal_percent_in_log_path(slurm, tmp_path):
    logs = tmp_path / "100%j"       # sbatch would expand %j unless it is escaped
    jobs = [Job("akd_ok", [sys.executable, "-c", "import os; print('ok', os.environ['EXTRA'])"],
                logs / "ok.log", env={"EXTRA": "x"}),
            Job("akd_bad", [sys.executable, "-c", "import sys; sys.exit(5)"], logs / "bad.log")]
    with pytest.raises(AcousticKDError) as e:
        run_jobs(jobs, max_parallel=2, backend="slurm")
    assert "akd_bad: exit code 5" in str(e.value) and "bad.log.submit" in str(e.value)
    assert "ok x" in (logs / "ok.log").read_text()
    assert run_jobs(jobs, max_parallel=2, backend="slurm", allow_failures=True) == [0, 5]


def test_interrupted_run_cancels_its_slurm_jobs(slurm, job_env, tmp_path):
    name = f"akd_int_{os.getpid()}"
    code = (f"from acoustic_kd.jobs import Job, run_jobs; "
            f"run_jobs([Job({name!r}, ['sleep', '300'], {str(tmp_path / 'j.log')!r})], "
            f"backend='slurm')")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while "RUNNING" not in _squeue(name):
            assert time.time() < deadline and proc.poll() is None, "the job never started"
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode != 0 and "KeyboardInterrupt" in err
        deadline = time.time() + 30
        while _squeue(name) and time.time() < deadline:
            time.sleep(0.5)
        assert _squeue(name) == [], "the Slurm job outlived the interrupted run"
    finally:
        proc.kill()
        subprocess.run(["scancel", "-n", name], capture_output=True)

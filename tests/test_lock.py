"""The stage lock: one run holds a stage's dir at a time, a second fails at once naming the holder,
and a run that died or had other settings never wedges the next one."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from acoustic_kd.cli import build_parser, main
from acoustic_kd.config import job_from_args
from acoustic_kd.lock import DirLock, LockError, lock_path
from acoustic_kd.nnet.stage import TrainJob, section_options
from acoustic_kd.stage import Stage

from test_distill_e2e import write_set

REPO = Path(__file__).resolve().parents[1]
HOLD = """
import sys
from acoustic_kd.stage import Stage
st = Stage("x", sys.argv[1], {"a": 1})
assert st.begin()
print("held", flush=True)
sys.stdin.readline()
st.finish()
"""


def _holder(d: Path) -> subprocess.Popen:
    """Another process that begins stage 'x' in `d` and holds it until its stdin gets a line."""
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(d)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_second_run_fails_at_once_naming_the_holder_and_runs_once_it_is_gone(tmp_path):
    d = tmp_path / "exp" / "x"
    p = _holder(d)
    try:
        with pytest.raises(LockError) as e:
            Stage("x", d, {"a": 1}).begin()
        msg = str(e.value)
        assert msg.startswith(f"another run holds {d} since ")
        assert f"pid {p.pid} on {socket.gethostname()}; wait for it, or remove " \
               f"{lock_path(d)} if that process is gone" in msg
        assert lock_path(d) == tmp_path / "exp" / ".x.lock"
    finally:
        p.send_signal(signal.SIGKILL)   # the holder dies without releasing anything
        p.wait()
    st = Stage("x", d, {"a": 1})
    assert st.begin()                   # kill -9 released the OS lock
    st.finish()
    assert not lock_path(d).exists() and not Stage("x", d, {"a": 1}).begin()


def test_a_finished_holder_lets_the_next_run_in(tmp_path):
    p = _holder(tmp_path / "x")
    p.communicate("\n")
    assert p.returncode == 0 and not lock_path(tmp_path / "x").exists()
    assert not Stage("x", tmp_path / "x", {"a": 1}).begin()   # its result is kept: up to date


@contextlib.contextmanager
def held_by_another_thread(d: Path):
    """`d`'s lock held by another thread of this process while the block runs."""
    held, done = threading.Event(), threading.Event()

    def hold():
        lock = DirLock(d).acquire()
        held.set()
        done.wait(60)
        lock.release()

    t = threading.Thread(target=hold)
    t.start()
    held.wait(30)
    try:
        yield
    finally:
        done.set()
        t.join()


def test_threads_and_an_abandoned_stage_of_the_same_thread(tmp_path):
    d = tmp_path / "x"
    with held_by_another_thread(d), pytest.raises(LockError, match=f"pid {os.getpid()}"):
        DirLock(d).acquire()
    first = Stage("x", d)
    assert first.begin()                 # ... and its command fails: no finish()
    second = Stage("x", d)
    assert second.begin()                # the same thread's next run takes it over
    second.finish()
    first.finish()                       # (a late finish of the abandoned one is harmless)
    assert not lock_path(d).exists()


def test_a_lock_whose_recorded_holder_is_dead_is_taken_over(tmp_path, caplog):
    d = tmp_path / "x"
    path = lock_path(d)
    # a forked child of a killed run keeps the flock; the recorded holder (its parent) is gone
    child = subprocess.Popen([sys.executable, "-c", "import fcntl, sys; f = open(sys.argv[1], 'a+'); "
                              "fcntl.flock(f, fcntl.LOCK_EX); print('ok', flush=True); sys.stdin.read()",
                              str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ok"
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        path.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(),
                                    "since": "2026-01-01 00:00:00"}))
        lock = DirLock(d).acquire()
        assert f"taking over the lock of pid {dead.pid}" in caplog.text
        assert json.loads(path.read_text())["pid"] == os.getpid()
        lock.release()
    finally:
        child.kill()
        child.wait()


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("lock")
    return {n: write_set(root, n, k, s) for n, k, s in (("train", 30, 1), ("dev", 8, 2))}


def _train(sets, out, hidden: int) -> list[str]:
    return ["train", "--train-data", sets["train"][0], "--train-ali", sets["train"][1],
            "--dev-data", sets["dev"][0], "--dev-ali", sets["dev"][1], "--context", "1", "1",
            "--epochs", "2", "--batch-size", "64", "--log-every", "0", "--num-threads", "1",
            "--layers", "1", "--hidden", str(hidden), "--out", str(out)]


def _train_job(args) -> TrainJob:
    """The TrainJob `acoustic-kd train` makes of these arguments."""
    return job_from_args(TrainJob, args, options=section_options(args))


def test_two_train_runs_into_one_dir(sets, tmp_path, capsys):
    """While one run holds OUT, `train` into OUT with other settings fails at once (exit 1, one
    line); run alone afterwards it trains with its own settings."""
    out = tmp_path / "m1"
    with held_by_another_thread(out):
        assert main(_train(sets, out, 16)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"acoustic-kd train: error: another run holds {out}")
    assert not out.exists()             # it touched nothing
    assert main(_train(sets, out, 16)) == 0
    assert torch.load(out / "final.pt", weights_only=False)["model_config"]["hidden"] == 16


def test_resume_state_of_other_settings_never_wedges_the_next_run(sets, tmp_path, caplog):
    """The state two interleaved runs left: the `.started` signature of one (hidden 24), the
    epoch checkpoints of the other (hidden 16). The next run starts afresh instead of failing
    with a size mismatch on every try."""
    out = tmp_path / "m1"
    assert main(_train(sets, out, 16)) == 0
    st = _train_job(build_parser().parse_args(_train(sets, out, 24))).stage()
    st.marker.unlink()
    (out / "final.pt").unlink()
    st.started.write_text(json.dumps({"stage": st.signature()}))
    assert (out / "epoch-2.pt").exists()
    assert main(_train(sets, out, 24)) == 0
    assert "not resuming: its training state was made with another model config" in caplog.text
    assert torch.load(out / "final.pt", weights_only=False)["model_config"]["hidden"] == 24
    assert main(_train(sets, out, 24)) == 0   # and it is done

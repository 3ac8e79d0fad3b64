"""Job runner: local parallel processes with thread limits, logs, exit codes; Slurm command lines;
worker pools (jobs that serve many calls)."""

from __future__ import annotations

import os
import shlex
import sys
import time

import pytest

from acoustic_kd import jobs as jobs_module
from acoustic_kd.errors import AcousticKDError
from acoustic_kd.jobs import Job, default_threads, run_jobs, slurm_command, tail_waits
from acoustic_kd.pool import WorkerPool


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_parallel_jobs_collect_exit_codes_and_overlap(tmp_path):
    stamp = ("import sys, time; t0 = time.time(); time.sleep(2.0); "
             "open(sys.argv[1], 'w').write(f'{t0} {time.time()}'); sys.exit(int(sys.argv[2]))")
    jobs = [Job(f"j{i}", _py(stamp) + [str(tmp_path / f"t{i}"), str(code)],
                tmp_path / "log" / f"j{i}.log") for i, code in enumerate([0, 3, 0])]
    codes = run_jobs(jobs, max_parallel=3, allow_failures=True)
    assert codes == [0, 3, 0]
    spans = [tuple(map(float, (tmp_path / f"t{i}").read_text().split())) for i in range(3)]
    assert max(s for s, _ in spans) < min(e for _, e in spans)  # all three ran at the same time
    log0 = (tmp_path / "log" / "j0.log").read_text()
    assert log0.startswith(f"# {shlex.join(jobs[0].cmd)}") and "# Ended (code 0)" in log0
    assert "# Ended (code 3)" in (tmp_path / "log" / "j1.log").read_text()


def test_max_parallel_one_runs_in_order(tmp_path):
    code = "import sys; open(sys.argv[1], 'a').write(sys.argv[2])"
    out = tmp_path / "order"
    jobs = [Job(f"j{i}", _py(code) + [str(out), str(i)], tmp_path / f"j{i}.log") for i in range(4)]
    assert run_jobs(jobs, max_parallel=1) == [0, 0, 0, 0]
    assert out.read_text() == "0123"


def test_failing_job_raises_with_its_log(tmp_path):
    jobs = [Job("good", _py("print('fine')"), tmp_path / "good.log"),
            Job("bad", _py("import sys; print('boom', file=sys.stderr); sys.exit(2)"),
                tmp_path / "bad.log")]
    with pytest.raises(AcousticKDError) as e:
        run_jobs(jobs, max_parallel=2)
    assert "bad: exit code 2" in str(e.value) and str(tmp_path / "bad.log") in str(e.value)
    assert "good" not in str(e.value).split("failed:")[1]
    assert "boom" in (tmp_path / "bad.log").read_text()  # stderr goes to the log
    assert "fine" in (tmp_path / "good.log").read_text()


def test_thread_limits_reach_the_job(tmp_path):
    code = ("import os; print(*(os.environ[v] for v in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', "
            "'ACOUSTIC_KD_THREADS')), os.environ['EXTRA'])")
    job = Job("t", _py(code), tmp_path / "t.log", env={"EXTRA": "x"})
    run_jobs([job], threads_per_job=3)
    assert "3 3 3 x" in (tmp_path / "t.log").read_text()
    run_jobs([job], max_parallel=1)
    assert f"{default_threads(1)} {default_threads(1)}" in (tmp_path / "t.log").read_text()
    assert default_threads(10_000) == 1


def test_tail_waits_when_the_running_jobs_end_soon():
    """The last job waits for a running one that is nearly done (then takes both cores), not for
    one that has just begun, nor without a finished job to estimate from."""
    assert tail_waits(1, [95.0], [100.0, 100.0], threads=1, cores=2)        # 5 + 59 < 100
    assert not tail_waits(1, [10.0], [100.0], threads=1, cores=2)           # 90 + 59 > 100
    assert not tail_waits(1, [95.0], [], threads=1, cores=2)                # no estimate yet
    assert not tail_waits(2, [95.0], [100.0], threads=1, cores=2)           # no wider share
    assert not tail_waits(1, [], [100.0], threads=1, cores=2)               # nothing to wait for


def test_last_job_gets_the_freed_cores(tmp_path, monkeypatch):
    """Three jobs two at a time on 2 cores, the rule saying wait: the third waits for the second
    and runs on 2 threads; without widen_tail it runs on 1 as soon as a slot frees."""
    monkeypatch.setattr(jobs_module, "num_cores", lambda: 2)
    monkeypatch.setattr(jobs_module, "tail_waits", lambda *a: True)   # (the rule: the test above)
    code = "import os, time; time.sleep(float(os.environ['NAP'])); print('threads', os.environ['OMP_NUM_THREADS'])"
    for widen, third in ((True, "threads 2"), (False, "threads 1")):
        jobs = [Job(f"j{i}", _py(code), tmp_path / f"{widen}{i}.log", env={"NAP": nap})
                for i, nap in enumerate(("1.0", "1.3", "1.0"))]
        assert run_jobs(jobs, max_parallel=2, widen_tail=widen) == [0, 0, 0]
        got = [(tmp_path / f"{widen}{i}.log").read_text() for i in range(3)]
        assert all("threads 1" in g for g in got[:2]) and third in got[2], (widen, got)


def test_slurm_command_construction(tmp_path):
    job = Job("member1", ["python", "-m", "acoustic_kd.cli", "train", "--out", "exp/m 1"],
              tmp_path / "m1.log")
    cmd = slurm_command(job, "-p gpu --gres=gpu:1 --mem=8G", threads=4)
    assert cmd[:9] == ["sbatch", "--wait", "--job-name", "member1", "--output",
                       str(tmp_path / "m1.log"), "--cpus-per-task", "4", "-p"]
    assert cmd[9:12] == ["gpu", "--gres=gpu:1", "--mem=8G"] and cmd[12] == "--wrap"
    wrapped = shlex.split(cmd[13])
    assert "OMP_NUM_THREADS=4" in wrapped and "ACOUSTIC_KD_THREADS=4" in wrapped
    assert wrapped[-6:] == ["python", "-m", "acoustic_kd.cli", "train", "--out", "exp/m 1"]


def test_bad_arguments(tmp_path):
    job = Job("a", _py("pass"), tmp_path / "a.log")
    with pytest.raises(AcousticKDError, match="backend"):
        run_jobs([job], backend="pbs")
    with pytest.raises(AcousticKDError, match="unique"):
        run_jobs([job, job])
    with pytest.raises(AcousticKDError, match="cannot start"):
        run_jobs([Job("x", ["/nonexistent/binary"], tmp_path / "x.log")])
    t = time.time()
    assert run_jobs([]) == [] and time.time() - t < 1


def test_slurm_log_path_percent_is_literal(tmp_path):
    cmd = slurm_command(Job("j", ["true"], tmp_path / "50%x" / "j.log"))
    assert cmd[cmd.index("--output") + 1] == str(tmp_path / "50%%x" / "j.log")  # not the job name


def _fake_slurm(tmp_path, monkeypatch, sbatch: str) -> Path:
    """sbatch/scancel stand-ins on PATH (unit tests of the runner's side; tests/test_slurm_backend.py
    runs a real Slurm). scancel appends its arguments to the returned file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scancel.calls"
    for name, body in (("sbatch", sbatch), ("scancel", f'echo "$@" >> {calls}')):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return calls


def test_slurm_submit_failure_names_the_submit_log(tmp_path, monkeypatch):
    _fake_slurm(tmp_path, monkeypatch, 'echo "sbatch: error: invalid partition" >&2; exit 1')
    with pytest.raises(AcousticKDError) as e:
        run_jobs([Job("a", ["true"], tmp_path / "a.log")], backend="slurm")
    assert f"{tmp_path / 'a.log'}.submit" in str(e.value)
    assert "invalid partition" in (tmp_path / "a.log.submit").read_text()


def test_interrupted_slurm_run_cancels_submitted_jobs(tmp_path, monkeypatch):
    calls = _fake_slurm(tmp_path, monkeypatch, 'echo "Submitted batch job 4242"; exec sleep 60')
    submit = tmp_path / "a.log.submit"

    class Clock:  # the runner's clock; Ctrl-C arrives once the job is submitted
        time, strftime = staticmethod(time.time), staticmethod(time.strftime)

        @staticmethod
        def sleep(s):
            if "Submitted batch job" in submit.read_text():
                raise KeyboardInterrupt
            time.sleep(s)

    monkeypatch.setattr(jobs_module, "time", Clock)
    t = time.time()
    with pytest.raises(KeyboardInterrupt):
        run_jobs([Job("a", ["sleep", "60"], tmp_path / "a.log")], backend="slurm")
    assert calls.read_text().split() == ["4242"] and time.time() - t < 30


# ------------------------------------------------------------------ worker pools
WORKER = '''
import os, sys
from acoustic_kd.pool import serve

class Scale:
    def __init__(self, k):
        self.k = k
    def times(self, x):
        return self.k * x
    def threads(self):
        return os.environ.get("OMP_NUM_THREADS"), os.getpid()
    def fail(self, part):
        if self.k == part:
            raise ValueError("bad value")
        return self.k
    def crash(self):
        os._exit(3)

sys.exit(serve(Scale))
'''


@pytest.fixture
def worker_module(tmp_path, monkeypatch) -> str:
    (tmp_path / "scale_worker.py").write_text(WORKER)
    from conftest import REPO
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(REPO),
                                                      os.environ.get("PYTHONPATH", "")]))
    return "scale_worker"


def test_worker_pool_serves_many_calls_and_reports_a_failing_worker(tmp_path, worker_module):
    with WorkerPool(worker_module, 2, tmp_path / "log", "scale") as pool:
        pool.each("__init__", [(2,), (3,)])
        assert pool.each("times", [(5,), (7,)]) == [10, 21]
        assert pool.all("times", 1) == [2, 3]
        ids = pool.all("threads")
        assert [omp for omp, _ in ids] == ["1", "1"] and len({pid for _, pid in ids}) == 2
        with pytest.raises(AcousticKDError, match=r"scale worker 2 failed in fail: .*bad value.*"
                                                  r"scale\.2\.log"):
            pool.all("fail", 3)
        assert pool.all("times", 10) == [20, 30]    # the pool is still in step after a failure
    logs = [(tmp_path / "log" / f"scale.{j}.log").read_text() for j in (1, 2)]
    assert all("# Ended (code 0)" in t and "# worker CPU:" in t for t in logs)
    assert "ValueError: bad value" in logs[1]
    assert not list((tmp_path / "log").glob(".*.key"))


def test_worker_pool_names_a_worker_that_died(tmp_path, worker_module):
    t = time.time()
    with WorkerPool(worker_module, 2, tmp_path / "log", "scale") as pool:
        pool.each("__init__", [(1,), (2,)])
        with pytest.raises(AcousticKDError, match=r"scale worker 1 stopped during crash; see "
                                                  r".*scale\.1\.log"):
            pool.all("crash")
        with pytest.raises(AcousticKDError, match=r"scale worker 1 (is gone|stopped)"):
            pool.all("times", 1)          # an error that names the worker, not a BrokenPipeError
    assert time.time() - t < 60


def test_worker_pool_fails_when_a_job_cannot_connect(tmp_path, monkeypatch):
    (tmp_path / "bad_worker.py").write_text("raise SystemExit('no such data')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with pytest.raises(AcousticKDError, match=r"ended before connecting back.*bad\.1\.log"):
        WorkerPool("bad_worker", 1, tmp_path / "log", "bad").start()
    assert "no such data" in (tmp_path / "log" / "bad.1.log").read_text()

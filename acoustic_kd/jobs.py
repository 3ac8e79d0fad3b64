"""Run independent jobs (feature parts, ensemble members) as local processes or Slurm jobs.

Local backend: at most `max_parallel` subprocesses at a time, each with OMP_NUM_THREADS,
MKL_NUM_THREADS, OPENBLAS_NUM_THREADS and ACOUSTIC_KD_THREADS set to `threads_per_job`
(default: cores // max_parallel, at least 1) so that parallel jobs do not oversubscribe the cores.
Each job's stdout and stderr go to its log file, framed Kaldi-style by a `# command` header and an
`# Ended (code N) ...` trailer.

Slurm backend: each job becomes `sbatch --wait --job-name NAME --output LOG --cpus-per-task N
[slurm_opts] --wrap "THREAD_VARS=N ... CMD"` (see `slurm_command`); `--wait` makes sbatch exit
with the job's exit code, so the same scheduler loop collects results. sbatch's own messages go to
`LOG.submit` (a job that could not be submitted is explained there). The job runs in the current
directory with the submitting environment (sbatch's default --export=ALL), so the log directory,
data and Python environment must be on a file system the compute nodes share. When run_jobs is
interrupted, the jobs it submitted are cancelled (`scancel`), not left running.

Worker pools, jobs started once that serve many calls: acoustic_kd/pool.py.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from .errors import AcousticKDError, ConfigError
from .utils import get_logger

log = get_logger(__name__)

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "ACOUSTIC_KD_THREADS")
_POLL_S = 0.02
_SUBMITTED = re.compile(r"Submitted batch job (\d+)")


@dataclass
class Job:
    """One command to run; its combined stdout/stderr go to `log`. `env` adds variables."""

    name: str
    cmd: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.log = Path(self.log)
        self.cmd = [str(c) for c in self.cmd]


def num_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_threads(max_parallel: int) -> int:
    """Threads per job so that `max_parallel` jobs fill, but do not exceed, this machine's cores."""
    return max(1, num_cores() // max(1, max_parallel))


THREAD_EFFICIENCY = 0.85   # speed-up per added thread assumed by `tail_waits` (bench/RESULTS.md: 2-thread runs)


def tail_waits(num_pending: int, elapsed: list[float], durations: list[float], threads: int,
               cores: int) -> bool:
    """Whether the last `num_pending` jobs (fewer than the free slots will be) should wait for the
    running ones (`elapsed` seconds each) to end and then share all `cores`, rather than start now
    with `threads` each: the running ones are expected to end after the mean of `durations`
    (finished jobs), and a job on w threads takes that mean x threads / (w x THREAD_EFFICIENCY)."""
    if not durations or not elapsed or num_pending < 1:
        return False
    wide = cores // num_pending
    if wide <= threads:
        return False
    mean = sum(durations) / len(durations)
    rest = max(max(0.0, mean - e) for e in elapsed)
    return rest + mean * threads / (wide * THREAD_EFFICIENCY) < max(rest, mean)


def thread_env(threads: int) -> dict[str, str]:
    """The environment variables that cap a job's BLAS/OpenMP/torch threads."""
    return {var: str(threads) for var in THREAD_VARS}


def slurm_command(job: Job, slurm_opts: str = "", threads: int = 1) -> list[str]:
    """The `sbatch --wait ... --wrap CMD` command line that runs `job` on Slurm (not executed here)."""
    env = {**job.env, **thread_env(threads)}
    wrapped = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " " + shlex.join(job.cmd)
    # sbatch expands %j, %x, ... in file names; %% is a literal %
    return ["sbatch", "--wait", "--job-name", job.name, "--output", str(job.log).replace("%", "%%"),
            "--cpus-per-task", str(threads), *shlex.split(slurm_opts), "--wrap", wrapped]


def run_jobs(jobs: list[Job], max_parallel: int = 1, threads_per_job: int | None = None,
             backend: str = "local", slurm_opts: str = "", allow_failures: bool = False,
             desc: str = "jobs", stop: threading.Event | None = None,
             ended: dict | None = None, widen_tail: bool = False) -> list[int]:
    """Run `jobs`, at most `max_parallel` at once; return their exit codes in `jobs` order.

    Raises AcousticKDError naming each failed job and its log unless `allow_failures`.
    threads_per_job defaults to cores // max_parallel locally and to 1 on Slurm. For another
    thread: setting `stop` kills (and on Slurm cancels) the running jobs and raises; `ended` gets
    {job index: exit code} as the jobs end. `widen_tail` (local jobs of like size, default threads
    only): the last jobs wait for the running ones when `tail_waits` says that ends sooner, and then
    start with the cores shared among them.
    """
    if backend not in ("local", "slurm"):
        raise ConfigError(f"unknown job backend {backend!r} (use 'local' or 'slurm')")
    if max_parallel < 1:
        raise ConfigError(f"max_parallel must be >= 1, got {max_parallel}")
    widen_tail = widen_tail and backend == "local" and threads_per_job is None
    if threads_per_job is None:
        threads_per_job = default_threads(max_parallel) if backend == "local" else 1
    durations: list[float] = []
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise ConfigError(f"job names must be unique: {names}")
    codes: list[int | None] = [None] * len(jobs)
    running: dict[int, tuple[subprocess.Popen, object, float]] = {}
    pending = list(range(len(jobs)))
    bar = tqdm(total=len(jobs), desc=desc, unit="job", disable=None if stop is None else True)
    try:
        while pending or running:
            if stop is not None and stop.is_set():
                raise AcousticKDError(f"{desc}: stopped")
            while pending and len(running) < max_parallel:
                threads = threads_per_job
                if widen_tail and len(pending) < max_parallel:
                    now = time.time()
                    if running and tail_waits(len(pending), [now - t for _, _, t in running.values()],
                                              durations, threads_per_job, num_cores()):
                        break
                    if not running:
                        threads = max(threads, num_cores() // len(pending))
                i = pending.pop(0)
                running[i] = _start(jobs[i], backend, slurm_opts, threads)
            time.sleep(_POLL_S)
            for i, (proc, fh, t0) in list(running.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                durations.append(time.time() - t0)
                _finish(jobs[i], fh, rc, durations[-1], backend)
                codes[i] = rc
                if ended is not None:
                    ended[i] = rc
                del running[i]
                bar.update(1)
    finally:
        bar.close()
        for i, (proc, fh, _) in running.items():  # interrupted: do not leave orphans behind
            proc.kill()
            proc.wait()
            fh.close()
            if backend == "slurm":  # killing `sbatch --wait` leaves its job queued or running
                _cancel(jobs[i])
    failed = [(j, c) for j, c in zip(jobs, codes) if c != 0]
    if failed and not allow_failures:
        lines = "\n  ".join(f"{j.name}: {_status(c)}, see {_logs(j, backend)}" for j, c in failed)
        raise AcousticKDError(f"{len(failed)} of {len(jobs)} job(s) failed:\n  {lines}")
    return [int(c) for c in codes]  # type: ignore[arg-type]


def _start(job: Job, backend: str, slurm_opts: str,
           threads: int) -> tuple[subprocess.Popen, object, float]:
    job.log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **job.env, **thread_env(threads)}
    cmd = slurm_command(job, slurm_opts, threads) if backend == "slurm" else job.cmd
    path = Path(f"{job.log}.submit") if backend == "slurm" else job.log
    path.write_text(f"# {shlex.join(cmd)}\n# Started at {time.strftime('%c')} with {threads} "
                    f"thread(s)\n", encoding="utf-8")
    fh = open(path, "a", encoding="utf-8")  # O_APPEND: our trailer lands after the child's output
    try:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL)
    except OSError as e:
        fh.close()
        raise AcousticKDError(f"job {job.name}: cannot start {cmd[0]!r}: {e}") from e
    return proc, fh, time.time()


def _status(rc: int) -> str:
    return f"killed by signal {-rc}" if rc < 0 else f"exit code {rc}"


def _logs(job: Job, backend: str) -> str:
    return f"{job.log} (sbatch: {job.log}.submit)" if backend == "slurm" else str(job.log)


def _cancel(job: Job) -> None:
    """scancel the Slurm job that `job`'s sbatch reported in LOG.submit (if it got that far)."""
    try:
        ids = _SUBMITTED.findall(Path(f"{job.log}.submit").read_text(encoding="utf-8"))
    except OSError:
        ids = []
    if not ids:
        return
    try:
        subprocess.run(["scancel", ids[-1]], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=30)
        log.warning("job %s: cancelled Slurm job %s", job.name, ids[-1])
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning("job %s: could not cancel Slurm job %s (%s); run `scancel %s`", job.name,
                    ids[-1], e, ids[-1])


def _finish(job: Job, fh, rc: int, elapsed: float, backend: str = "local") -> None:
    fh.write(f"# Accounting: time={elapsed:.1f}\n"
             f"# Ended (code {rc}) at {time.strftime('%c')}, elapsed time {elapsed:.1f} seconds\n")
    fh.close()
    if rc != 0:
        log.warning("job %s failed (%s); see %s", job.name, _status(rc), _logs(job, backend))

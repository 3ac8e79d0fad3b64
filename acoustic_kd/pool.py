"""Worker pools (`WorkerPool`, `serve`; `forked_imap` for a one-node map): for work done in many short rounds (an EM iteration's
statistics take well under a second, a Python job's start with torch a few), `WorkerPool` starts
its jobs once through `run_jobs` (either backend) and each job serves calls from the starting
process until it is closed: `python -m MODULE --connect HOST:PORT --key-file F --part J` connects
back over TCP (127.0.0.1 locally; the submitting host's name on Slurm, so compute nodes must reach
it), authenticated by a random key in a 0600 file beside the logs. A worker that dies is named with
its log; a worker whose parent dies sees its connection close and exits. Slurm jobs connect to
`socket.gethostname()`, or to $ACOUSTIC_KD_POOL_HOST where the compute nodes know this host by
another name.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import queue
import resource
import secrets
import socket
import sys
import threading
import time
import traceback
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Listener
from pathlib import Path

from .errors import AcousticKDError, ConfigError
from .jobs import Job, run_jobs
from .utils import get_logger

log = get_logger(__name__)


def _log_name(log_path: Path, backend: str) -> str:
    return f"{log_path} (sbatch: {log_path}.submit)" if backend == "slurm" else str(log_path)
class WorkerPool:
    """`n` jobs of `python -m MODULE` (its `main` calls `serve`) that each build one object and
    serve method calls on it until the pool is closed; use as a context manager.

    `each("__init__", [args_1, ...])` builds worker j's object from args_j; `each(method,
    [args_1, ...])` / `all(method, *args)` call a method on every worker at once and return the
    results in worker order. Jobs log to `log_dir/NAME.J.log` and run with one thread each.
    """

    def __init__(self, module: str, n: int, log_dir, name: str, backend: str = "local",
                 slurm_opts: str = ""):
        if backend not in ("local", "slurm"):
            raise ConfigError(f"unknown job backend {backend!r} (use 'local' or 'slurm')")
        self.module, self.n, self.name = module, int(n), name
        self.backend, self.slurm_opts = backend, slurm_opts
        self.log_dir = Path(log_dir)
        self.logs = [self.log_dir / f"{name}.{j + 1}.log" for j in range(self.n)]
        self._conns: list = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._ended: dict[int, int] = {}
        self.calls, self.wait_s = 0, 0.0   # calls made, seconds spent waiting for their replies

    def __enter__(self) -> "WorkerPool":
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, exc_type, *_) -> None:
        self.close(kill=exc_type is not None)

    def start(self) -> None:
        """Submit the jobs and wait until each has connected."""
        key = secrets.token_bytes(32)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        key_file = self.log_dir / f".{self.name}.key"
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        local = self.backend == "local"
        listener = Listener(("127.0.0.1" if local else "", 0), authkey=key, backlog=self.n)
        port = listener.address[1]
        host = "127.0.0.1" if local else os.environ.get("ACOUSTIC_KD_POOL_HOST", socket.gethostname())
        address = f"{host}:{port}"
        jobs = [Job(f"{self.name}.{j + 1}", [sys.executable, "-m", self.module, "--connect", address,
                                            "--key-file", str(key_file), "--part", str(j)],
                    self.logs[j]) for j in range(self.n)]
        self._thread = threading.Thread(target=self._run, args=(jobs,), daemon=True)
        self._thread.start()
        try:
            self._conns = self._accept(listener, port)
        except BaseException:
            self.close(kill=True)
            raise
        finally:
            listener.close()
            key_file.unlink(missing_ok=True)
        log.info("%s: %d worker job(s) connected (%s)", self.name, self.n, self.backend)

    def _run(self, jobs: list[Job]) -> None:
        try:
            run_jobs(jobs, max_parallel=len(jobs), threads_per_job=1, backend=self.backend,
                     slurm_opts=self.slurm_opts, desc=self.name, stop=self._stop,
                     ended=self._ended)
        except BaseException as e:  # noqa: BLE001 - reported by the thread that waits on the jobs
            self._error = e

    def _accept(self, listener: Listener, port: int) -> list:
        """The workers' connections in part order; fails when the jobs end before connecting."""
        got: queue.Queue = queue.Queue()
        done = threading.Event()

        def accept_loop():
            while not done.is_set():
                try:
                    conn = listener.accept()
                except (OSError, EOFError, AuthenticationError):  # a bad handshake; closed
                    continue
                got.put(conn)

        threading.Thread(target=accept_loop, daemon=True).start()
        conns: dict[int, object] = {}
        try:
            while len(conns) < self.n:
                try:
                    conn = got.get(timeout=0.2)
                except queue.Empty:
                    gone = [j for j in self._ended if j not in conns]
                    if gone or not self._thread.is_alive():
                        logs = ", ".join(_log_name(self.logs[j], self.backend)
                                         for j in gone or range(self.n))
                        raise AcousticKDError(f"{self.name}: worker job(s) ended before "
                                              f"connecting back to this process; see {logs}") from None
                    continue
                part = conn.recv()
                conns[int(part)] = conn
        finally:
            done.set()
            try:  # wake the accept loop so that it sees `done`
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                pass
        return [conns[j] for j in range(self.n)]

    def each(self, method: str, args_list: list[tuple]) -> list:
        """worker j runs `method(*args_list[j])`; their results in worker order."""
        if len(args_list) != self.n:
            raise ValueError(f"{len(args_list)} argument tuples for {self.n} workers")
        for j, args in enumerate(args_list):
            self._send(j, method, pickle.dumps((method, tuple(args), {}), pickle.HIGHEST_PROTOCOL))
        return self._replies(method)

    def all(self, method: str, *args, **kwargs) -> list:
        """Every worker runs `method(*args, **kwargs)`; their results in worker order."""
        payload = pickle.dumps((method, args, kwargs), pickle.HIGHEST_PROTOCOL)
        for j in range(self.n):
            self._send(j, method, payload)
        return self._replies(method)

    def _send(self, j: int, method: str, payload: bytes) -> None:
        try:
            self._conns[j].send_bytes(payload)
        except OSError:
            raise AcousticKDError(f"{self.name} worker {j + 1} is gone (before {method}); see "
                                  f"{_log_name(self.logs[j], self.backend)}") from None

    def _replies(self, method: str) -> list:
        """Every worker's reply to `method` (all read, so that the next call starts in step);
        the first failure raised, naming the worker's log."""
        out, errors, t0 = [], [], time.time()
        for j, conn in enumerate(self._conns):
            try:
                status, value = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                status, value = "stopped", None
            out.append(value)
            log_name = _log_name(self.logs[j], self.backend)
            if status == "stopped":
                errors.append(f"{self.name} worker {j + 1} stopped during {method}; see {log_name}")
            elif status != "ok":
                errors.append(f"{self.name} worker {j + 1} failed in {method}: {value} "
                              f"(log: {log_name})")
        self.calls, self.wait_s = self.calls + 1, self.wait_s + time.time() - t0
        if errors:
            raise AcousticKDError(errors[0])
        return out

    def close(self, kill: bool = False) -> None:
        """End the workers (politely, or with `kill` at once) and wait for their jobs."""
        for conn in self._conns:
            try:
                if not kill:
                    conn.send_bytes(pickle.dumps(None))
                conn.close()
            except OSError:
                pass
        if self._conns:
            log.info("%s: %d calls, %.1f s waiting for the %d workers", self.name, self.calls,
                     self.wait_s, self.n)
        self._conns = []
        if self._thread is None:
            return
        if kill:
            self._stop.set()
        self._thread.join(timeout=60)
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(timeout=60)
        if self._error is not None and not self._stop.is_set():
            log.warning("%s: %s", self.name, self._error)
        self._thread = None


class InProcess:
    """The WorkerPool interface over objects built in this process (no job, no start cost)."""

    def __init__(self, factory):
        self.factory = factory
        self.objects: list = []

    def __enter__(self) -> "InProcess":
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def each(self, method: str, args_list: list[tuple]) -> list:
        if method == "__init__":
            self.objects = [self.factory(*a) for a in args_list]
            return [None] * len(args_list)
        return [getattr(o, method)(*a) for o, a in zip(self.objects, args_list)]

    def all(self, method: str, *args, **kwargs) -> list:
        return [getattr(o, method)(*args, **kwargs) for o in self.objects]

    def close(self, kill: bool = False) -> None:
        self.objects = []


_FORKED: dict = {}


def _call_forked(item):
    return _FORKED["fn"](item)


def forked_imap(fn, items, nj: int, chunksize: int = 2):
    """fn(item) of every item, in order: in this process for nj <= 1, else in `nj` forked worker
    processes of this node, which inherit `fn` (items and results are pickled, `fn` is not).
    One forked map at a time per process."""
    if nj <= 1:
        yield from map(fn, items)
        return
    if _FORKED:
        raise RuntimeError("forked_imap: another forked map is running in this process")
    _FORKED["fn"] = fn
    try:
        with mp.get_context("fork").Pool(nj) as pool:
            yield from pool.imap(_call_forked, items, chunksize)
    finally:
        _FORKED.clear()


def serve(factory, argv: list[str] | None = None) -> int:
    """A WorkerPool job's main loop: connect to the pool (--connect HOST:PORT --key-file F --part
    J), build the object with the first call (`factory(*args)`), then run the method calls that
    arrive; a closed connection or None ends it."""
    import argparse

    from .utils import set_num_threads

    ap = argparse.ArgumentParser(description=serve.__doc__)
    ap.add_argument("--connect", required=True, help="the pool's HOST:PORT")
    ap.add_argument("--key-file", required=True, help="file holding the pool's key")
    ap.add_argument("--part", type=int, required=True, help="this worker's index (0-based)")
    args = ap.parse_args(argv)
    set_num_threads(int(os.environ.get("ACOUSTIC_KD_THREADS", "1")))
    host, port = args.connect.rsplit(":", 1)
    conn = Client((host, int(port)), authkey=Path(args.key_file).read_bytes())
    conn.send(args.part)
    try:
        return _serve_calls(conn, factory)
    finally:
        use = resource.getrusage(resource.RUSAGE_SELF)
        print(f"# worker CPU: {use.ru_utime:.1f} s user, {use.ru_stime:.1f} s system, "
              f"{use.ru_maxrss / 1024:.0f} MB peak RSS", file=sys.stderr, flush=True)


def _serve_calls(conn, factory) -> int:
    obj = None
    while True:
        try:
            msg = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return 0
        if msg is None:
            return 0
        method, call_args, kwargs = msg
        try:
            if method == "__init__":
                obj, value = factory(*call_args, **kwargs), None
            else:
                value = getattr(obj, method)(*call_args, **kwargs)
            reply = ("ok", value)
        except AcousticKDError as e:
            reply = ("error", str(e))
        except Exception as e:  # noqa: BLE001 - the pool raises it, naming this log (traceback)
            traceback.print_exc()
            reply = ("error", f"{type(e).__name__}: {e}")
        try:
            conn.send_bytes(pickle.dumps(reply, pickle.HIGHEST_PROTOCOL))
        except OSError:
            return 0

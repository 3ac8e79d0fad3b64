"""One run at a time in a stage's output dir: an exclusive OS lock that names its holder.

The lock of DIR is the file `.<name>.lock` beside it (in DIR's parent, so that a stage which
replaces or deletes DIR as a whole keeps its lock). It is held with `fcntl.flock`, which the
kernel drops when the holding process ends in any way (kill -9 included), so a dead run never
wedges the next one. The file records the holder (pid, host, start time, command) for the message
a second run gets; the holder removes it on release.

If flock is busy although the recorded holder is a dead process on this host (a forked child of a
killed run may keep the lock), the lock is taken over with a warning.

    lock = DirLock(out_dir).acquire()   # LockError when another run holds it
    ...
    lock.release()
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import threading
import time
import weakref
from pathlib import Path

from .errors import AcousticKDError
from .utils import get_logger

log = get_logger("lock")

_HELD: "weakref.WeakValueDictionary[str, DirLock]" = weakref.WeakValueDictionary()  # lock file ->
# the lock this process holds on it (dropped with its owner: a failed stage releases when collected)
_GUARD = threading.Lock()


class LockError(AcousticKDError):
    """Another live run holds the directory."""


def lock_path(directory) -> Path:
    """The lock file of `directory`: `.<name>.lock` in its parent."""
    d = Path(os.path.abspath(directory))
    return d.parent / f".{d.name or 'root'}.lock"


def _holder_text(info: dict, directory) -> str:
    since = info.get("since", "an unknown time")
    return (f"another run holds {directory} since {since}, pid {info.get('pid', '?')} on "
            f"{info.get('host', '?')}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # someone else's live process
        return True
    return True


class DirLock:
    """An exclusive, non-blocking lock on a directory (see the module docstring)."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.path = lock_path(directory)
        self._file = None
        self._thread = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> "DirLock":
        """Take the lock, or raise LockError naming the run that holds it."""
        key = str(self.path)
        with _GUARD:
            other = _HELD.get(key)
            if other is not None and other is not self:
                if other._thread != threading.get_ident():
                    raise LockError(self._busy(other._info()))
                # an earlier stage of this thread that never finished (its command failed)
                self._file, other._file = other._file, None
                self._thread, _HELD[key] = threading.get_ident(), self
                return self
        for _ in range(5):
            if self._try_lock():
                with _GUARD:
                    self._thread, _HELD[key] = threading.get_ident(), self
                return self
        raise LockError(f"{self.path}: could not take the lock of {self.dir} (it keeps changing); "
                        "re-run when the other run has finished")

    def _try_lock(self) -> bool:
        """One attempt: True when locked (holder recorded), False to retry (the file changed)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:   # a file where the dir should be: open() names the path
            pass
        f = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _read_info(f) or (time.sleep(0.1) or _read_info(f))   # (mid-write: once more)
            f.close()
            if not self._stale(info):
                raise LockError(self._busy(info)) from None
            log.warning("%s: taking over the lock of pid %s on %s, which is gone (since %s)",
                        self.dir, info.get("pid"), info.get("host"), info.get("since"))
            _unlink_if_same(self.path, None)
            return False
        if not _same_file(f, self.path):   # released (and removed) by its holder meanwhile
            f.close()
            return False
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                            "command": " ".join(sys.argv)}) + "\n")
        f.flush()
        self._file = f
        return True

    def _stale(self, info: dict) -> bool:
        pid = info.get("pid")
        return (isinstance(pid, int) and info.get("host") == socket.gethostname()
                and pid != os.getpid() and not _alive(pid))

    def _busy(self, info: dict) -> str:
        return (f"{_holder_text(info, self.dir)}; wait for it, or remove {self.path} if that "
                "process is gone")

    def _info(self) -> dict:
        return _read_info(self._file) if self._file is not None else {}

    def release(self) -> None:
        """Remove the lock file and drop the lock (no-op when not held)."""
        f, self._file = self._file, None
        if f is None:
            return
        with _GUARD:
            if _HELD.get(str(self.path)) is self:
                del _HELD[str(self.path)]
        try:
            _unlink_if_same(self.path, f)
        finally:
            f.close()

    def __del__(self):
        try:
            self.release()
        except Exception:   # interpreter shutdown: the kernel drops the lock anyway
            pass


def _read_info(f) -> dict:
    try:
        f.seek(0)
        info = json.loads(f.read() or "{}")
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def _same_file(f, path: Path) -> bool:
    try:
        a, b = os.fstat(f.fileno()), os.stat(path)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _unlink_if_same(path: Path, f) -> None:
    """Remove `path` if it is still the file `f` (any file when `f` is None)."""
    try:
        if f is None or _same_file(f, path):
            path.unlink()
    except FileNotFoundError:
        pass

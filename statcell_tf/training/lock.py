"""One process trains a run folder at a time: an advisory lock file ``RUN/.lock``.

The lock is an `fcntl.flock` on the file, which the kernel releases when the process dies
(even on SIGKILL), so a crashed run never blocks the next one; the file holds the owner's
pid and host, so a refused process can name the holder, and a process that takes over the
lock of a dead one says so.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from statcell_tf.errors import UserError


class RunLock:
    """Exclusive lock on a run folder, as a context manager.

    Args:
        path: str or Path. The lock file (``RUN/.lock``); its folder must exist.
        flag: str. The flag that named the run, for messages.
        announce: callable or None. Receives one line when a stale lock is taken over.
    """

    def __init__(self, path, flag: str = "--out", announce=print):
        self.path = Path(path)
        self.flag = flag
        self.announce = announce
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_owner(fd)
            os.close(fd)
            raise UserError(
                f"{self.flag} {self.path.parent} is being trained by another process ({holder}); "
                "wait for it to finish or stop it first"
            ) from None
        try:
            same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the holder released (and removed) the file between our open and flock
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            return self.acquire()
        previous = _read_owner(fd)
        if previous != "unknown" and self.announce is not None:
            self.announce(f"Taking over the lock of {self.path.parent} left by a process that ended ({previous})")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _read_owner(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "unknown"

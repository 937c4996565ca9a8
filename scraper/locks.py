"""Exclusive locks on files, held by one process or thread at a time.

On POSIX systems the lock is flock(2) on the lock file, taken directly: importing
the filelock package costs more than 10 ms on every run, a large share of a run that
finds the page unchanged. filelock's own Unix lock is the same flock(2) call, so the
two exclude each other. Elsewhere (Windows) filelock provides the lock.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

# Seconds between two attempts to take a lock that another holder has.
POLL_INTERVAL = 0.05


class LockTimeout(Exception):
    """Another process or thread held the lock for longer than the timeout."""


class FileLock:
    """An exclusive lock on the file ``path``, which is created if needed.

    The file stays after the lock is released, because deleting it would let two
    runs lock two different files of the same name. Use ``with FileLock(path,
    timeout):`` or call acquire() and release().
    """

    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._descriptor: int | None = None
        self._portable = None

    def acquire(self) -> None:
        """Take the lock, waiting up to ``timeout`` seconds for another holder.

        Raises LockTimeout when the wait runs out, and OSError when the lock file
        cannot be opened.
        """
        if fcntl is None:
            self._acquire_portable()
            return
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        descriptor = os.open(self.path, flags, 0o644)
        deadline = time.monotonic() + max(self.timeout, 0)
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    os.close(descriptor)
                    raise LockTimeout(self._timeout_message()) from None
                time.sleep(min(POLL_INTERVAL, remaining))
            except BaseException:
                os.close(descriptor)
                raise
        self._descriptor = descriptor

    def release(self) -> None:
        """Release the lock; closing the descriptor ends the flock(2) lock."""
        if self._portable is not None:
            self._portable.release()
            self._portable = None
        if self._descriptor is not None:
            descriptor, self._descriptor = self._descriptor, None
            os.close(descriptor)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def _acquire_portable(self) -> None:
        import filelock

        lock = filelock.FileLock(str(self.path), timeout=self.timeout)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise LockTimeout(self._timeout_message()) from None
        self._portable = lock

    def _timeout_message(self) -> str:
        return f"{self.path}: the lock was held for more than {self.timeout:g} s"

"""The file lock that guards stores, run records and the notification outbox."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import filelock
import pytest

from scraper import locks
from scraper.locks import FileLock, LockTimeout

# Seconds a test waits for a helper thread or process; far above any real wait.
WAIT = 10


def test_lock_creates_and_keeps_file(tmp_path):
    path = tmp_path / ".lock"
    with FileLock(path, timeout=0):
        assert path.exists()
    assert path.exists()


def test_lock_free_again_after_release(tmp_path):
    path = tmp_path / ".lock"
    with FileLock(path, timeout=0):
        pass
    with FileLock(path, timeout=0):
        pass


def test_second_holder_times_out(tmp_path):
    path = tmp_path / ".lock"
    with FileLock(path, timeout=0):
        with pytest.raises(LockTimeout) as raised:
            FileLock(path, timeout=0.2).acquire()
    assert str(raised.value) == f"{path}: the lock was held for more than 0.2 s"


def test_waiter_gets_lock_after_release(tmp_path):
    path = tmp_path / ".lock"
    holder = FileLock(path, timeout=0)
    holder.acquire()
    acquired = threading.Event()

    def wait_for_lock():
        with FileLock(path, timeout=WAIT):
            acquired.set()

    thread = threading.Thread(target=wait_for_lock)
    thread.start()
    time.sleep(0.2)
    assert not acquired.is_set()
    holder.release()
    thread.join(WAIT)
    assert acquired.is_set()


def test_threads_never_overlap(tmp_path):
    path = tmp_path / ".lock"
    inside = []
    overlaps = []

    def work():
        for _ in range(20):
            with FileLock(path, timeout=WAIT):
                inside.append(1)
                if len(inside) > 1:
                    overlaps.append(len(inside))
                time.sleep(0.001)
                inside.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert overlaps == []


def test_excludes_filelock_package(tmp_path):
    # The filelock package takes the same flock(2) lock, so older releases and
    # tools that use it still exclude this one, and the other way round.
    path = tmp_path / ".lock"
    with filelock.FileLock(str(path), timeout=0):
        with pytest.raises(LockTimeout):
            FileLock(path, timeout=0).acquire()
    with FileLock(path, timeout=0):
        with pytest.raises(filelock.Timeout):
            filelock.FileLock(str(path), timeout=0).acquire()


def test_excludes_other_process(tmp_path):
    path = tmp_path / ".lock"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from scraper.locks import FileLock\n"
        "with FileLock(Path(sys.argv[1]), timeout=10):\n"
        "    print('locked', flush=True)\n"
        "    sys.stdin.readline()\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline() == "locked\n"
        with pytest.raises(LockTimeout):
            FileLock(path, timeout=0.1).acquire()
    finally:
        process.stdin.close()
        process.wait(WAIT)
    with FileLock(path, timeout=WAIT):
        pass


def test_missing_folder_raises_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        FileLock(tmp_path / "missing" / ".lock", timeout=0).acquire()


def test_portable_lock_without_fcntl(tmp_path, monkeypatch):
    # Where fcntl does not exist (Windows), the filelock package takes the lock.
    monkeypatch.setattr(locks, "fcntl", None)
    path = tmp_path / ".lock"
    with FileLock(path, timeout=0):
        with pytest.raises(LockTimeout) as raised:
            FileLock(path, timeout=0).acquire()
    assert "the lock was held for more than 0 s" in str(raised.value)
    with FileLock(path, timeout=0):
        pass

"""Atomic file replacement shared by the snapshot store and the run records, and
writes to a command's output path, which may also be a link, a FIFO or a device."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

# mkstemp creates files readable by the owner only. Snapshots are meant to be read
# by other users and programs, so new files get the usual mode under the umask.
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


def replace_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file.

    The data goes to a temporary file in the same folder, is flushed and fsynced,
    then renamed over ``path``. The folder is fsynced too, so the rename survives a
    crash. Raises OSError, leaving no temporary file behind.
    """
    temporary = None
    try:
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
        )
        if hasattr(os, "fchmod"):
            os.fchmod(descriptor, FILE_MODE)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        temporary = None
        _fsync_folder(path.parent)
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def _fsync_folder(folder: Path) -> None:
    # Not every platform can open a folder for fsync; there the rename is not
    # made durable, which is the best those platforms offer.
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


class FileTypeError(OSError):
    """The output path is a kind of file that write_file does not write to.

    ``kind`` names it in words, such as "socket" or "block device".
    """

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__(f"{path} is a {kind}")
        self.path = path
        self.kind = kind


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` in the way that its type of file allows.

    A new path or a regular file is replaced atomically (replace_atomically). A
    symbolic link is followed, so the link stays and the file it resolves to is
    replaced, or created when the link is dangling. A FIFO or a character device is
    opened and written in place, because a rename would take it out of its folder.
    Opening a FIFO blocks until a reader opens it, as a shell redirection does.

    Raises IsADirectoryError for a folder, FileTypeError for a socket or a block
    device (text written over a disk would destroy its file system), and OSError
    when the write fails.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        # A new path, or a symbolic link whose target does not exist yet.
        replace_atomically(_resolved(path), data)
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if stat.S_ISREG(mode):
        # NOTE: /dev/stdout resolves to the file that the shell opened, so with
        # `--out /dev/stdout >> FILE` the whole of FILE is replaced, not appended to.
        replace_atomically(_resolved(path), data)
        return
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        _write_in_place(path, data)
        return
    if stat.S_ISSOCK(mode):
        kind = "socket"
    elif stat.S_ISBLK(mode):
        kind = "block device"
    else:
        kind = "special file"
    raise FileTypeError(path, kind)


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(path)) if os.path.islink(path) else path


def _write_in_place(path: Path, data: bytes) -> None:
    # The flags leave out O_CREAT and O_TRUNC, because the path was a FIFO or a
    # device a moment ago.
    # O_NOCTTY keeps a terminal at ``path`` from becoming the controlling terminal.
    flags = os.O_WRONLY | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    descriptor = os.open(path, flags)
    try:
        is_regular = stat.S_ISREG(os.fstat(descriptor).st_mode)
    except OSError:
        os.close(descriptor)
        raise
    if is_regular:
        # The path was replaced by a regular file after the check above, and
        # writing through this descriptor would leave old bytes past the new end.
        os.close(descriptor)
        replace_atomically(_resolved(path), data)
        return
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)

"""Atomic file replacement shared by the snapshot store and the run records."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def replace_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file.

    The data goes to a temporary file in the same folder, is flushed and fsynced,
    then renamed over ``path``; the folder is fsynced so the rename survives a
    crash. Raises OSError, leaving no temporary file behind.
    """
    temporary = None
    try:
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
        )
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

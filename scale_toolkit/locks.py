"""flock-based locks on scale's output folders: a second writer refuses at once, in one line.

The kernel drops an flock when its holder dies, so a killed run never leaves a stale lock.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from .errors import ScaleError
from .run_files import LOCK_FILE


def try_lock(path: Path, shared: bool = False) -> IO | None:
    """An open handle holding the lock on `path` (created if absent), or None if someone else holds it."""
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def release(handle: IO | None) -> None:
    if handle is not None and not handle.closed:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


class RunLock:
    """RUN/.lock, held by `scale train` from its first write to its end: a second `scale train`
    on the same --out refuses instead of interleaving checkpoints and metrics."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.handle: IO | None = None

    def acquire(self) -> None:
        if self.handle is not None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.handle = try_lock(self.run_dir / LOCK_FILE)
        if self.handle is None:
            raise ScaleError(f"another scale train is already writing {self.run_dir}; wait for it to finish "
                             "(or stop it), or choose another --out")

    def release(self) -> None:
        release(self.handle)
        self.handle = None

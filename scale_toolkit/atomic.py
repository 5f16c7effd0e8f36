"""Atomic writes: a temp file beside the target, fsync, then rename; never a half-written file.

A killed writer leaves at most a hidden `.NAME.XXXX.tmp` beside the target; the target itself
is either the old complete file or the new complete file.
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from .contracts.result import ResultDocument


def temp_beside(path: Path) -> tuple[int, str]:
    """(fd, name) of a new hidden temp file beside ``path``, with the mode a plain ``open`` would
    give it under the user's umask: mkstemp's 0600 would survive the rename, so run files and
    indexes could not be read by the user's group as their other files can."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    return fd, tmp


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temp file for writing; on success it replaces `path`, on error it is removed.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_open(target) as f:
    ...     _ = f.write("done")
    >>> target.read_text()
    'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_open(path) as f:
        f.write(text)
    return Path(path)


def write_json(path: str | os.PathLike, doc: dict) -> Path:
    return write_text(path, json.dumps(doc, indent=2, default=str) + "\n")




def write_result(path: str | os.PathLike, kind: str, doc: dict) -> Path:
    """A command's result document, marked as scale's own `kind` ("probe", "retrieve"): only a file
    so marked is ever replaced by a later `--json` (scale_toolkit/ownership.py)."""
    return write_json(path, ResultDocument(kind, doc).to_json())

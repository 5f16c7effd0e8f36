"""Content fingerprints of files on disk, the one place that hashes them."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

_BLOCK = 1 << 22  # 4 MiB reads: checkpoints and indexes are large, memory stays flat


def file_sha256(path: str | os.PathLike, n_hex: int | None = None) -> str:
    """sha256 of a file's bytes as hex, optionally cut to its first `n_hex` digits.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.bin"
    >>> _ = path.write_bytes(b"abc")
    >>> file_sha256(path, n_hex=12)
    'ba7816bf8f01'
    """
    digest = hashlib.sha256()
    with open(Path(path), "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()[:n_hex] if n_hex else digest.hexdigest()

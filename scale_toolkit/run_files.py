"""Which file of a `scale train` run directory holds its model. The directory's file names are its
contract's (scale_toolkit/contracts/run.py, listed there) and are re-exported here for their many readers.

Plain names and paths only (no torch): `scale info` and the CLI read them cheaply.
"""
from __future__ import annotations

import os
from pathlib import Path

from .contracts.run import (  # noqa: F401  re-exported
    CONFIG_FILE,
    CURVES_FILE,
    LAST_CHECKPOINT,
    LOCK_FILE,
    METRICS_FILE,
    MODEL_FILE,
    OWN_HIDDEN_PREFIXES,
    SNAPSHOT_GLOB,
    STALE_CHECKPOINT_TEMPS,
    SUMMARY_FILE,
    snapshot_name,
)
from .errors import ScaleError


def model_file(path: str | os.PathLike) -> Path:
    """The weights file a run directory (``model.pt``, else ``checkpoint_last.pt``) or a file path resolves to.

    >>> import tempfile
    >>> run = Path(tempfile.mkdtemp())
    >>> (run / LAST_CHECKPOINT).touch()
    >>> model_file(run).name
    'checkpoint_last.pt'
    >>> (run / MODEL_FILE).touch()
    >>> model_file(run).name
    'model.pt'
    """
    given = Path(path)
    if given.is_dir():
        for candidate in (given / MODEL_FILE, given / LAST_CHECKPOINT):
            if candidate.exists():
                return candidate
        raise ScaleError(f"no {MODEL_FILE} or {LAST_CHECKPOINT} in {given}; train a model with `scale train --out {given}`")
    if not given.exists():
        raise ScaleError(f"SCALE model not found: {given}")
    return given

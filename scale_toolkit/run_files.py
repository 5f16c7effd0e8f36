"""The files of a `scale train` run directory, named in one place, and which one holds its model.

    RUN_DIR/config.json                  what was asked and what it resolved to (written at the start)
    RUN_DIR/metrics.jsonl                one JSON line per finished epoch
    RUN_DIR/checkpoint_last.pt           model + optimiser of the last finished epoch (atomic)
    RUN_DIR/checkpoint_epochNNNN.pt      kept every --save-every epochs
    RUN_DIR/curves.png, summary.json, model.pt   at the end
    RUN_DIR/.lock                        held by the `scale train` writing the folder

Plain names and paths only (no torch): ownership checks, `scale info` and the CLI read them cheaply.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import ScaleError

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"
SUMMARY_FILE = "summary.json"
MODEL_FILE = "model.pt"
LAST_CHECKPOINT = "checkpoint_last.pt"
SNAPSHOT_GLOB = "checkpoint_epoch*.pt"
LOCK_FILE = ".lock"
# Hidden names scale leaves inside a run dir: its lock, and the temp files of atomic writes a kill
# interrupted (scale_toolkit.atomic names them .NAME.XXXX.tmp)
OWN_HIDDEN_PREFIXES = (LOCK_FILE, ".checkpoint_",
                       *(f".{name}." for name in (MODEL_FILE, CONFIG_FILE, SUMMARY_FILE, METRICS_FILE)))
STALE_CHECKPOINT_TEMPS = ".checkpoint_*.pt.*.tmp"


def snapshot_name(epoch: int) -> str:
    """The file name of the snapshot kept after ``epoch``.

    >>> snapshot_name(50)
    'checkpoint_epoch0050.pt'
    """
    return f"checkpoint_epoch{epoch:04d}.pt"


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

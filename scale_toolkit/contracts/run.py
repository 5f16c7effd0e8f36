"""A `scale train` run directory: its file names, named in one place.

    RUN_DIR/config.json                  what was asked and what it resolved to (written at the start)
    RUN_DIR/metrics.jsonl                one JSON line per finished epoch
    RUN_DIR/checkpoint_last.pt           model + optimiser of the last finished epoch (atomic)
    RUN_DIR/checkpoint_epochNNNN.pt      kept every --save-every epochs
    RUN_DIR/curves.png, summary.json, model.pt   at the end
    RUN_DIR/.lock                        held by the `scale train` writing the folder
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ._read import json_or_none, plain_dir

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
CONFIG_SECTIONS = ("train", "model")  # what makes a config.json a run's


def snapshot_name(epoch: int) -> str:
    """The file name of the snapshot kept after ``epoch``.

    >>> snapshot_name(50)
    'checkpoint_epoch0050.pt'
    """
    return f"checkpoint_epoch{epoch:04d}.pt"


@dataclass(frozen=True)
class RunFiles:
    """A run directory's files."""

    path: Path
    WHAT: ClassVar[str] = "a scale training run"

    @property
    def config(self) -> Path:
        return self.path / CONFIG_FILE

    @staticmethod
    def is_ours(path: str | os.PathLike[str]) -> bool:
        """A `scale train` run directory: config.json with train/model sections."""
        path = Path(path)
        meta = json_or_none(RunFiles(path).config) if plain_dir(path) else None
        return isinstance(meta, dict) and all(section in meta for section in CONFIG_SECTIONS)

    @staticmethod
    def is_own_hidden(name: str) -> bool:
        """A hidden file scale leaves inside a run directory (its lock, an interrupted atomic write)."""
        return name.startswith(OWN_HIDDEN_PREFIXES)

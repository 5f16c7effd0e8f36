"""The run directory of `scale train` as the trainer writes it: its metrics log and its checkpoints.

The files' names and layout: scale_toolkit.run_files.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from scale_toolkit.atomic import write_text
from scale_toolkit.errors import ScaleError
from scale_toolkit.model.io import atomic_save, non_finite_weights
from scale_toolkit.run_files import (
    CONFIG_FILE,
    LAST_CHECKPOINT,
    METRICS_FILE,
    SNAPSHOT_GLOB,
    STALE_CHECKPOINT_TEMPS,
    snapshot_name,
)
from scale_toolkit.store.attributes import StoreAttrs
from scale_toolkit.store.layout import DONE

CHECKPOINT_FORMAT = "scale-checkpoint"
# train settings a resumed run must share with the checkpoint it continues
RESUME_KEYS = ("split", "batch_size", "lr", "wd", "warmup", "min_lr", "grad_clip", "seed", "precision", "ssl_val", "steps")


def check_start(out: Path, resume: bool) -> None:
    """Refuse to start over a run (without --resume) or to resume nothing (with it)."""
    last = out / LAST_CHECKPOINT
    if last.exists() and not resume:
        raise ScaleError(f"{out} already holds a training run; pass --resume to continue it or choose another --out")
    if resume and not last.exists():
        raise ScaleError(f"nothing to resume: {out} has no {LAST_CHECKPOINT}"
                         + (" (it stopped before its first checkpoint was written)" if (out / CONFIG_FILE).exists() else "")
                         + "; drop --resume to start the run")


class MetricsLog:
    """metrics.jsonl: appended once per epoch; cut back to the checkpoint's epoch on resume."""

    def __init__(self, out: Path) -> None:
        self.path = out / METRICS_FILE

    def start_over(self) -> None:
        self.path.unlink(missing_ok=True)

    def cut_back(self, epoch: int) -> None:
        """Keep the lines of epochs <= ``epoch`` (a killed run may have logged one more, or half of one)."""
        if self.path.exists():
            keep = [ln for ln in self.path.read_text().splitlines() if (e := _epoch_of(ln)) is not None and e <= epoch]
            write_text(self.path, "".join(ln + "\n" for ln in keep))

    def append(self, row: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")

    def last(self) -> dict[str, Any]:
        lines = self.path.read_text().splitlines() if self.path.exists() else []
        return json.loads(lines[-1]) if lines else {}


def write_checkpoint(checkpoint: dict[str, Any], path: Path) -> int:
    """Write ``checkpoint`` to ``path`` atomically; returns the bytes written."""
    atomic_save(checkpoint, path)
    return path.stat().st_size


@dataclass
class Checkpointer:
    """checkpoint_last.pt at most every ``every_s`` seconds (0: after every epoch), after every
    ``every_epochs``-th epoch when set, and at the end; a kept snapshot every ``save_every`` epochs
    (with checkpoint_last.pt rewritten alongside).

    A resumed run repeats the epochs after the last checkpoint bit for bit, so the cadence only
    decides how much work a kill can lose, never the result. ``bytes_written`` counts every byte
    the checkpoints wrote: the whole model and optimiser state each time.

    >>> now = [0.0]
    >>> writer = Checkpointer(Path("run"), save_every=0, every_s=60, clock=lambda: now[0], write=lambda c, p: 1000)
    >>> due = []
    >>> for epoch in range(1, 11):  # 25 s per epoch: written after 75 s, 150 s and at the end
    ...     now[0] += 25.0
    ...     if writer.save(epoch, done=epoch == 10, payload={}):
    ...         due.append(epoch)
    >>> due, writer.writes, writer.bytes_written
    ([3, 6, 9, 10], 4, 4000)
    """

    out: Path
    save_every: int
    every_s: float = 60.0
    every_epochs: int = 0  # also after every N-th epoch (0: by time only)
    clock: Callable[[], float] = time.monotonic
    write: Callable[[dict[str, Any], Path], int] = write_checkpoint  # returns the bytes written
    writes: int = 0
    bytes_written: int = 0
    store_identity: Optional[dict] = None  # of the store trained on, recorded in every checkpoint

    def __post_init__(self) -> None:
        self._last_write = self.clock()  # the run's start: nothing is lost before it

    @property
    def last_path(self) -> Path:
        return self.out / LAST_CHECKPOINT

    def snapshot_due(self, epoch: int) -> bool:
        return self.save_every > 0 and epoch % self.save_every == 0

    def save(self, epoch: int, done: bool, payload: dict[str, Any]) -> bool:
        """Write what is due after ``epoch`` (1-based) finished; ``payload`` is read only then.
        Returns whether anything was written."""
        snapshot = self.snapshot_due(epoch)
        by_epoch = self.every_epochs > 0 and epoch % self.every_epochs == 0
        if not (done or snapshot or by_epoch or self.clock() - self._last_write >= self.every_s):
            return False
        store = (payload.get("train_config") or {}).get("store")
        if self.store_identity is None and store:
            self.store_identity = store_identity(store)
        checkpoint = {"format": CHECKPOINT_FORMAT, "version": 1, "epoch": epoch, **payload,
                      **({"store_identity": self.store_identity} if self.store_identity else {})}
        paths = [self.last_path] + ([self.out / snapshot_name(epoch)] if snapshot else [])
        for path in paths:
            self.bytes_written += self.write(checkpoint, path)
            self.writes += 1
        self._last_write = self.clock()  # the interval runs from the end of a write: slow disks write less often
        return True

    def load_for_resume(self, device: torch.device, train_config: Any, model_config: dict[str, Any]) -> dict[str, Any]:
        """checkpoint_last.pt, checked: same trajectory settings and model, finite weights."""
        checkpoint = _load_checkpoint(self.last_path, device)
        old = checkpoint.get("train_config", {})
        diff = [k for k in RESUME_KEYS if k in old and _jsonable(old[k]) != _jsonable(getattr(train_config, k))]
        if checkpoint.get("model_config") != model_config:
            diff.append("model")
        if diff:
            raise ScaleError(f"cannot resume {self.out}: settings differ from its checkpoint ({', '.join(diff)}); "
                             "use the same flags or a new --out")
        if getattr(train_config, "store", None):
            self._check_same_store(checkpoint, str(train_config.store), getattr(train_config, "split", None))
        bad = non_finite_weights(checkpoint["state_dict"])
        if bad:
            raise ScaleError(f"cannot resume {self.out}: {LAST_CHECKPOINT} holds NaN or inf weights ({bad}); "
                             "train into a new --out (and lower --lr)")
        return checkpoint

    def _check_same_store(self, checkpoint: dict[str, Any], store: str, split: Optional[int]) -> None:
        """A resumed run continues on the data it started on: the store's identity (what it holds and
        its content checksums) must be the one the checkpoint recorded. Runs from before the identity
        was recorded are compared on what their config.json recorded of the store."""
        now = store_identity(store, split)
        recorded = checkpoint.get("store_identity")
        if isinstance(recorded, dict):
            differs = [k for k in ("fingerprint", "content") if recorded.get(k) != now.get(k)]
        else:
            config = _read_json(self.out / CONFIG_FILE).get("store") or {}
            recorded = {"path": config.get("path")}
            differs = [k for k in _RECORDED_STORE_KEYS if k in config and config[k] != now["summary"].get(k)]
        if differs:
            self.store_identity = None
            was = recorded.get("path") or "another store"
            raise ScaleError(f"cannot resume {self.out}: it was trained on {was}, and --store {store} holds other data "
                             f"({', '.join(differs)} differ); resume with the run's own --store, or train into a new --out")
        self.store_identity = now if isinstance(checkpoint.get("store_identity"), dict) else None

    def remove_stale_temporaries(self) -> None:
        for stale in self.out.glob(STALE_CHECKPOINT_TEMPS):  # a write killed before its rename
            stale.unlink(missing_ok=True)


def _load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """checkpoint_last.pt for --resume. It is only ever replaced by an atomic rename, so a file that
    does not load was damaged outside the trainer: refuse (never guess) and name the snapshots."""
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, ...: torch's message spans many lines
        checkpoint, reason = None, f"{type(exc).__name__}"
    else:
        reason = "not a scale training checkpoint"
    if not (isinstance(checkpoint, dict) and checkpoint.get("format") == CHECKPOINT_FORMAT
            and all(k in checkpoint for k in ("epoch", "state_dict", "optimizer"))):
        snaps = sorted(path.parent.glob(SNAPSHOT_GLOB))
        hint = (f"copy the newest snapshot {snaps[-1].name} over it to continue from there"
                if snaps else "delete it to restart the run")
        raise ScaleError(f"cannot resume {path.parent}: {path.name} is unreadable ({reason}; truncated or corrupted); "
                         f"{hint}, or train into a new --out")
    return checkpoint


# what a run's config.json records of its store (trainer's store info) and a resume compares
_RECORDED_STORE_KEYS = ("n_train_videos", "n_clips", "feature_dim", "backbone", "view", "dataset")


def store_identity(store: str | Path, split: Optional[int] = None) -> dict[str, Any]:
    """What identifies the data of a store: its fingerprint (attributes, shape, done rows) and a
    digest of its content - ids, labels, splits, status and the per-block checksums of the data."""
    import hashlib

    import numpy as np

    from scale_toolkit.store import FeatureStore

    fs = FeatureStore.open(store)
    digest = hashlib.sha256()
    digest.update("\0".join(fs.stored_video_ids).encode("utf-8", "surrogateescape"))
    for array in (fs.labels, fs.splits, fs.status):
        digest.update(np.ascontiguousarray(array).tobytes())
    if fs.has_checksums:
        digest.update(np.ascontiguousarray(np.asarray(fs.group["checksums"][:])).tobytes())
    attrs = StoreAttrs.of(fs)
    if split in (1, 2, 3):  # the rows the trainer reads (train/data.py): done train videos, or every done one
        rows = fs.split_indices(split, "train") if fs.has_split_membership() else np.flatnonzero(fs.status == DONE)
        n_train = int(len(rows))
    else:
        n_train = None
    summary = {"n_train_videos": n_train, "n_clips": fs.n_clips, "feature_dim": fs.feature_dim,
               "backbone": attrs.backbone or None, "view": attrs.view, "dataset": attrs.dataset}
    return {"path": str(store), "fingerprint": fs.fingerprint(), "content": digest.hexdigest()[:16], "summary": summary}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _epoch_of(line: str) -> Optional[int]:
    """The epoch of one metrics.jsonl line; None for a blank or half-written (killed) line."""
    try:
        return int(json.loads(line)["epoch"])
    except (ValueError, KeyError, TypeError):
        return None


def _jsonable(x: Any) -> Any:
    return list(x) if isinstance(x, tuple) else x

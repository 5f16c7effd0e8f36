"""The store an extraction writes into: made atomically when absent, else resumed only when it
was made the same way for the same videos (a rerun continues where it stopped)."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ScaleError
from .attributes import StoreAttrs
from .feature_store import DONE, FAILED, PENDING, FeatureStore

# Attributes that must agree before a run may write into an existing store (StoreAttrs fields).
RESUME_KEYS = ("backbone_name", "checkpoint_sha256", "view", "dataset", "seed", "backbone_options")


def create_or_resume(path: str | Path, *, video_ids: Sequence[str], labels: np.ndarray, splits: np.ndarray,
                     class_names: Sequence[str], n_clips: int, feature_dim: int, attrs: dict,
                     rows_per_chunk: int) -> FeatureStore:
    """The store at `path` opened for writing ("r+"): created with every row pending when absent,
    else checked to be the same extraction (RESUME_KEYS) of the same `video_ids`."""
    path = Path(path)
    if not path.exists():
        _create_atomically(path, video_ids=video_ids, labels=labels, splits=splits, class_names=class_names,
                           n_clips=n_clips, feature_dim=feature_dim, attrs=attrs, rows_per_chunk=rows_per_chunk)
    store = FeatureStore.open(path, mode="r+")
    check_resumable(store, StoreAttrs.of(attrs), video_ids)
    return store


def _create_atomically(path: Path, **create_args: Any) -> None:
    """Build the empty store beside `path` and rename it in: a killed or racing creator never
    leaves a half-made store, and of several shards starting at once one wins."""
    if not path.parent.exists():
        raise ScaleError(f"output directory does not exist: {path.parent}")
    if not os.access(path.parent, os.W_OK):
        raise ScaleError(f"cannot write to {path.parent} (read-only?)")
    tmp = path.with_name(f".{path.name}.creating-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        FeatureStore.create(tmp, **create_args)
        os.rename(tmp, path)
    except OSError as exc:
        if not path.exists():  # another shard's rename won: its store is as good as ours
            raise ScaleError(f"cannot create {path}: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_resumable(store: FeatureStore, attrs: StoreAttrs, video_ids: Sequence[str]) -> None:
    """Refuse (ScaleError) to write into a store made with other settings or for other videos."""
    made = StoreAttrs.of(store)
    for key in RESUME_KEYS:
        if getattr(made, key) != getattr(attrs, key):
            raise ScaleError(
                f"{store.path} was made with {key}={getattr(made, key)!r}, not {getattr(attrs, key)!r}; "
                "refusing to mix them: use another --out (or delete the store)"
            )
    if store.video_ids != list(video_ids):
        raise ScaleError(f"{store.path} holds a different list of videos (other --root, --limit or split files); "
                         "use another --out")


@dataclass(frozen=True)
class ShardWork:
    """What a shard's run still has to extract."""

    rows: list[int]  # pending rows of the shard's blocks, in row order (whole blocks are rewritten)
    already_done: int  # done rows of the shard's blocks, kept
    damaged: int  # done rows whose stored data is damaged, extracted again


def shard_work(store: FeatureStore, shard: tuple[int, int], retry_failed: bool = False) -> ShardWork:
    """The rows shard (i, n) extracts: its blocks are b with b % n == i. Rows whose data is damaged
    (checksum, lost or truncated chunk) are redone; failed rows only with `retry_failed` (they turn
    pending here, in memory: the store records them failed until their block is written again)."""
    blocks = range(shard[0], store.n_blocks, shard[1])
    status = store.status_as_stored()
    damaged = 0
    for damage in store.verify(blocks):
        rows = np.array(store.block_rows(damage["block"]))
        if set(damage["arrays"]) & {"status", "reasons"}:  # its record of what was done cannot be trusted: redo it all
            damaged += len(rows)
            status[rows] = PENDING
            continue
        damaged += int((status[rows] == DONE).sum())
        status[rows[status[rows] == DONE]] = PENDING
    if retry_failed:
        status[status == FAILED] = PENDING
    owned = [r for b in blocks for r in store.block_rows(b)]
    return ShardWork(rows=[r for r in owned if status[r] == PENDING], already_done=int((status[owned] == DONE).sum()),
                     damaged=damaged)

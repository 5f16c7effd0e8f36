"""How a new store's arrays are laid out: the shapes it is made with, the per-row arrays chunked in
blocks, the status codes of a row (the contract is in feature_store.py's docstring)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..contracts.store import DEFAULT_ROWS_PER_CHUNK  # noqa: F401  (re-exported: the store's users read it here)
from ..errors import ScaleError
from .integrity import CHECKED, ROW_STATE

if TYPE_CHECKING:  # annotations only: no zarr or numpy at import
    import numpy as np
    import zarr

PENDING, DONE, FAILED = 0, 1, 2  # a row's status
STATUS_NAMES = {PENDING: "pending", DONE: "done", FAILED: "failed"}


def check_layout(n: int, labels: np.ndarray, splits: np.ndarray, n_clips: int, feature_dim: int) -> None:
    """The shapes a new store is made with, before anything is written."""
    if n == 0:
        raise ScaleError("cannot create a feature store with no videos")
    if n_clips <= 0 or feature_dim <= 0:
        raise ScaleError(f"clips per video and feature dim must be positive, got {n_clips} and {feature_dim}")
    if labels.shape != (n,):
        raise ScaleError(f"labels must have shape ({n},), got {labels.shape}")
    if splits.shape != (3, n):
        raise ScaleError(f"splits must have shape (3, {n}), got {splits.shape}")


def create_row_arrays(group: zarr.Group, n: int, n_clips: int, feature_dim: int, chunk: int) -> None:
    """The arrays extraction writes, chunked in blocks of `chunk` rows, every row pending."""
    mk = group.create_array
    mk("features", shape=(n, n_clips, feature_dim), chunks=(chunk, n_clips, feature_dim), dtype="float16", fill_value=0)
    mk("coords", shape=(n, n_clips, 6), chunks=(chunk, n_clips, 6), dtype="float32", fill_value=0)
    mk("boxes", shape=(n, n_clips, 6), chunks=(chunk, n_clips, 6), dtype="int32", fill_value=0)
    mk("flip", shape=(n, n_clips), chunks=(chunk, n_clips), dtype="bool", fill_value=False)
    mk("video_meta", shape=(n, 4), chunks=(chunk, 4), dtype="float32", fill_value=0)
    mk("status", shape=(n,), chunks=(chunk,), dtype="uint8", fill_value=PENDING)
    mk("reasons", shape=(n,), chunks=(chunk,), dtype=str, fill_value="")
    n_blocks = -(-n // chunk)  # one chunk per block: shards never share a checksum chunk
    columns = len(CHECKED) + len(ROW_STATE)
    mk("checksums", shape=(n_blocks, columns), chunks=(1, columns), dtype="int64", fill_value=-1)

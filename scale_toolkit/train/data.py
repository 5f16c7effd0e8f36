"""The only place the trainer touches the feature store."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from scale_toolkit.errors import ScaleError
from scale_toolkit.store.attributes import StoreAttrs
from scale_toolkit.store.layout import DONE

if TYPE_CHECKING:
    from scale_toolkit.store import FeatureStore


def _train_rows(fs: FeatureStore, split: int, allow_incomplete: bool) -> tuple[np.ndarray, str, int]:
    """Rows the trainer may use, what they are (for messages and config.json), and how many pending
    videos are left out. A store without split membership (a folder, or a CSV without a split
    column) has no test videos to protect: every extracted video is SSL training data."""
    if fs.has_split_membership():
        left_out = fs.check_complete(split, ("train",), allow_incomplete)
        return fs.split_indices(split, "train"), f"train videos in split {split}", left_out
    left_out = fs.check_complete(split, None, allow_incomplete)
    return np.flatnonzero(fs.status == DONE), "every video (the store has no split membership)", left_out


@dataclass
class TrainSplit:
    """The train videos of one split as `scale train` reads them from a store."""

    features: np.ndarray  # float16 [n, V, D]
    coords: np.ndarray  # float32 [n, V, 6]
    info: dict[str, Any]  # a small description of the store for the run config
    flip: Optional[np.ndarray] = None  # bool [n, V], read when asked for (the official 7-entry positions need it)


def train_split_rows(store_path: str, split: int, allow_incomplete: bool = False) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """(the open store, the store rows of the train videos of ``split``, a small description of the
    store) without reading any features. A split with videos still pending extraction is refused
    unless ``allow_incomplete``."""
    from scale_toolkit.store import FeatureStore

    fs = FeatureStore.open(store_path)
    idx, videos, left_out = _train_rows(fs, split, allow_incomplete)
    if idx.size == 0:
        raise ScaleError(f"{store_path} has no extracted {videos}; check --split or finish `scale extract` first")
    attrs = StoreAttrs.of(fs)
    info = {"path": str(store_path), "split": split, "videos": videos, "n_train_videos": int(idx.size),
            "n_clips": int(fs.n_clips), "feature_dim": int(fs.feature_dim), "pending_left_out": left_out,
            "backbone": attrs.backbone or None, "view": attrs.view, "dataset": attrs.dataset}
    return fs, idx, info


def load_train_split(store_path: str, split: int, allow_incomplete: bool = False, with_flip: bool = False) -> TrainSplit:
    """The train videos of ``split`` (never its test videos): features, coords, flip flags when
    ``with_flip``, and a small description of the store (see `train_split_rows`)."""
    fs, idx, info = train_split_rows(store_path, split, allow_incomplete)
    data = fs.read(idx, names=("features", "coords", "flip") if with_flip else ("features", "coords"))
    return TrainSplit(np.asarray(data["features"], dtype=np.float16), np.asarray(data["coords"], dtype=np.float32), info,
                      np.asarray(data["flip"], dtype=bool) if with_flip else None)

"""The only place the trainer touches the feature store."""
from __future__ import annotations

from typing import Any

import numpy as np

from scale_toolkit.errors import ScaleError


def load_train_split(store_path: str, split: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Features float16 [n, V, D] and coords float32 [n, V, 6] of the train videos of ``split``
    (never its test videos), plus a small description of the store for the run config.

    A store without split membership (a folder, or a CSV without a split column) has no test
    videos to protect: every extracted video is SSL training data, and the description says so.
    """
    from scale_toolkit.store import DONE, FeatureStore

    fs = FeatureStore.open(store_path)
    if fs.has_split_membership():
        idx, videos = fs.split_indices(split, "train"), f"train videos in split {split}"
    else:
        idx, videos = np.flatnonzero(fs.status == DONE), "every video (the store has no split membership)"
    if idx.size == 0:
        raise ScaleError(f"{store_path} has no extracted {videos}; check --split or finish `scale extract` first")
    data = fs.read(idx, names=("features", "coords"))
    attrs = dict(fs.attrs)
    info = {"path": str(store_path), "split": split, "videos": videos, "n_train_videos": int(idx.size),
            "n_clips": int(fs.n_clips), "feature_dim": int(fs.feature_dim),
            "backbone": attrs.get("backbone"), "view": attrs.get("view"), "dataset": attrs.get("dataset")}
    return np.asarray(data["features"], dtype=np.float16), np.asarray(data["coords"], dtype=np.float32), info


def load_train_flip(store_path: str, split: int):
    """Flip flags bool [n, V] of the same train videos as ``load_train_split`` (the official 7-entry positions need them)."""
    from scale_toolkit.store import FeatureStore

    fs = FeatureStore.open(store_path)
    return np.asarray(fs.read(fs.split_indices(split, "train"), names=("flip",))["flip"], dtype=bool)

"""The only place the trainer touches the feature store."""
from __future__ import annotations

from typing import Any

import numpy as np

from scale_toolkit.errors import ScaleError


def load_train_split(store_path: str, split: int, allow_incomplete: bool = False) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Features float16 [n, V, D] and coords float32 [n, V, 6] of the train videos of ``split``
    (never its test videos), plus a small description of the store for the run config. A split
    with videos still pending extraction is refused unless ``allow_incomplete``."""
    from scale_toolkit.store import FeatureStore

    fs = FeatureStore.open(store_path)
    left_out = fs.check_complete(split, ("train",), allow_incomplete)
    idx = fs.split_indices(split, "train")
    if idx.size == 0:
        raise ScaleError(f"{store_path} has no extracted train videos in split {split}; "
                         "check --split or finish `scale extract` first")
    data = fs.read(idx, names=("features", "coords"))
    attrs = dict(fs.attrs)
    info = {"path": str(store_path), "split": split, "n_train_videos": int(idx.size), "n_clips": int(fs.n_clips),
            "feature_dim": int(fs.feature_dim), "pending_left_out": left_out,
            "backbone": attrs.get("backbone"), "view": attrs.get("view"), "dataset": attrs.get("dataset")}
    return np.asarray(data["features"], dtype=np.float16), np.asarray(data["coords"], dtype=np.float32), info

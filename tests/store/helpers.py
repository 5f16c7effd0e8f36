"""Small synthetic stores for tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from scale_toolkit.store import FeatureStore


def random_arrays(n: int = 10, v: int = 4, d: int = 8, classes: int = 3, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    lo = rng.random((n, v, 3)) * 0.5
    return {
        "features": rng.standard_normal((n, v, d)).astype(np.float16),
        "coords": np.concatenate([lo, lo + 0.5], axis=2).astype(np.float32),
        "boxes": rng.integers(0, 300, (n, v, 6)).astype(np.int32),
        "flip": rng.random((n, v)) > 0.5,
        "labels": (np.arange(n) % classes).astype(np.int32),
        "splits": np.stack([np.where(np.arange(n) % 3 == s, 2, 1) for s in range(3)]).astype(np.int8),
        "video_ids": [f"class{i % classes}/video {i}.avi" for i in range(n)],
        "class_names": [f"class{c}" for c in range(classes)],
    }


def make_store(path: Path, arrays: dict | None = None, rows_per_chunk: int = 4, **kw) -> FeatureStore:
    a = arrays or random_arrays(**kw)
    n, v, d = a["features"].shape
    fs = FeatureStore.create(
        path, video_ids=a["video_ids"], labels=a["labels"], splits=a["splits"], class_names=a["class_names"],
        n_clips=v, feature_dim=d, attrs={"view": {"name": "eval15", "clips": v}}, rows_per_chunk=rows_per_chunk,
    )
    fs.write_rows(np.arange(n), features=a["features"], coords=a["coords"], boxes=a["boxes"], flip=a["flip"])
    return fs

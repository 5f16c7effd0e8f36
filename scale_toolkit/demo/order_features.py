"""Synthetic clip features whose classes differ only by the temporal ORDER of two sub-actions.

No videos and no backbone: a pair of feature stores (train16 with random clip times, eval15 with
the 5 x 3 evaluation clips) built directly, for tests and benchmarks of the SSL objective. Class
(g, AB) and class (g, BA) contain the same two sub-actions of group g, in opposite order. The eval
windows cover both halves of a video equally, so the clip-averaged feature of an AB video and of a
BA video have the same expectation: clip-averaging probes can find the group but not the order
(their ceiling is 50 %), while a model that uses the clips' time coordinates can.

Like real backbone features, every clip shares a large common vector (``offset``) and each video
adds its own nuisance vector (background, actor, camera) to all its clips.

Example:
    >>> a = order_features(OrderSpec(groups=2, train_per_class=4, test_per_class=2))
    >>> a["train_features"].shape, a["eval_features"].shape, sorted(set(a["labels"].tolist()))
    ((24, 16, 64), (24, 15, 64), [0, 1, 2, 3])
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..store import FeatureStore


@dataclass(frozen=True)
class OrderSpec:
    groups: int = 4  # classes = 2 x groups (each sub-action pair in both orders)
    train_per_class: int = 40
    test_per_class: int = 10
    dim: int = 64
    clip_len: float = 1 / 3  # a clip covers this fraction of the video (tiny backbone on the demo: 16 of 48 frames)
    offset: float = 4.0  # scale of the common vector: offset * |N(0, 1)| per dimension (sub-actions are N(0, 1))
    nuisance: float = 0.5  # std of the per-video vector, per dimension
    noise: float = 0.3  # std of the per-clip noise, per dimension
    seed: int = 0


def _clip_features(spec: OrderSpec, protos: np.ndarray, orders: np.ndarray, t0: np.ndarray,
                   nuisance: np.ndarray, offset: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[n, V, D]: each clip mixes the two sub-actions by its overlap with each half of the video."""
    first = np.clip(0.5 - t0, 0, spec.clip_len) / spec.clip_len  # fraction of the clip in the first half
    a = protos[np.arange(len(orders)), orders]  # sub-action shown first
    b = protos[np.arange(len(orders)), 1 - orders]
    f = first[..., None] * a[:, None] + (1 - first[..., None]) * b[:, None]
    return f + offset + nuisance[:, None] + spec.noise * rng.standard_normal(f.shape)


def order_features(spec: OrderSpec = OrderSpec()) -> dict[str, np.ndarray]:
    """Arrays of both views: ``train_features`` [N,16,D], ``train_coords``, ``eval_features`` [N,15,D],
    ``eval_coords``, ``labels`` [N] (class = 2 * group + order) and ``is_test`` [N]."""
    rng = np.random.default_rng(spec.seed)
    d, n_cls = spec.dim, 2 * spec.groups
    protos = rng.standard_normal((spec.groups, 2, d))
    offset = spec.offset * np.abs(rng.standard_normal(d))
    per = spec.train_per_class + spec.test_per_class
    labels = np.repeat(np.arange(n_cls), per)
    is_test = np.tile(np.arange(per) >= spec.train_per_class, n_cls)
    n = len(labels)
    group_protos = protos[labels // 2]
    orders = labels % 2
    nuisance = spec.nuisance * rng.standard_normal((n, d))
    span = 1 - spec.clip_len
    t_train = rng.random((n, 16)) * span
    side = rng.uniform(0.6, 0.9, (n, 16))
    y0, x0 = rng.random((n, 16)) * (1 - side), rng.random((n, 16)) * (1 - side)
    t_eval = np.tile(np.repeat(np.linspace(0, span, 5), 3), (n, 1))
    x_eval = np.tile(np.tile([0.0, 0.125, 0.25], 5), (n, 1))

    def coords(t0, y, x, h, w):
        return np.stack([y, x, t0, y + h, x + w, t0 + spec.clip_len], axis=-1).astype(np.float32)

    return {
        "train_features": _clip_features(spec, group_protos, orders, t_train, nuisance, offset, rng).astype(np.float16),
        "train_coords": coords(t_train, y0, x0, side, side),
        "eval_features": _clip_features(spec, group_protos, orders, t_eval, nuisance, offset, rng).astype(np.float16),
        "eval_coords": coords(t_eval, np.zeros_like(x_eval), x_eval, np.ones_like(x_eval), np.full_like(x_eval, 0.75)),
        "labels": labels.astype(np.int32), "is_test": is_test,
    }


def order_feature_stores(root: str | Path, spec: OrderSpec = OrderSpec(), **overrides) -> tuple[Path, Path]:
    """Write ``root/train16.zarr`` and ``root/eval15.zarr`` (split 1: the test videos of each class
    are test, the rest train; splits 2 and 3 the same) and return their paths."""
    if overrides:
        spec = OrderSpec(**{**spec.__dict__, **overrides})
    arr = order_features(spec)
    root = Path(root)
    n = len(arr["labels"])
    splits = np.where(arr["is_test"], 2, 1).astype(np.int8)[None].repeat(3, 0)
    names = [f"g{c // 2}_{'ab' if c % 2 == 0 else 'ba'}" for c in range(2 * spec.groups)]
    paths = []
    for view, clips in (("train16", 16), ("eval15", 15)):
        key = "train" if view == "train16" else "eval"
        path = root / f"{view}.zarr"
        fs = FeatureStore.create(path, video_ids=[f"v{i:05d}" for i in range(n)], labels=arr["labels"], splits=splits,
                                 class_names=names, n_clips=clips, feature_dim=spec.dim, overwrite=True,
                                 attrs={"backbone": {"name": "synthetic-order"}, "view": {"name": view}, "dataset": "order"})
        fs.write_rows(np.arange(n), features=arr[f"{key}_features"], coords=arr[f"{key}_coords"])
        paths.append(path)
    return paths[0], paths[1]

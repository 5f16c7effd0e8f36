"""Synthetic training stores for the trainer tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from scale_toolkit.store import FeatureStore

TINY_MODEL = dict(hidden=32, heads=4, head_hidden=48, proj_dim=16, pos_hidden=32)


def order_dataset(n: int, classes: int = 4, phases: int = 8, v: int = 16, d: int = 24, noise: float = 0.15,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Videos whose class is the temporal order of ``phases`` motion prototypes.

    Clip i covers [t0, t0 + 1/phases] of the video; its feature is the prototype that the
    video's class puts at that time, plus a per-video code and noise. Predicting a masked
    clip therefore needs its time coordinate and the class read from the other clips' order.
    """
    rng = np.random.default_rng(1234)  # prototypes and orders are fixed across calls
    protos = rng.standard_normal((phases, d))
    orders = np.stack([rng.permutation(phases) for _ in range(classes)])
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    t0 = rng.random((n, v)) * (1 - 1 / phases)
    phase = np.minimum(((t0 + 0.5 / phases) * phases).astype(int), phases - 1)
    feats = protos[orders[labels][np.arange(n)[:, None], phase]]
    feats = feats + 0.5 * rng.standard_normal((n, 1, d)) + noise * rng.standard_normal((n, v, d))
    y0, x0 = rng.random((n, v)) * 0.3, rng.random((n, v)) * 0.3
    coords = np.stack([y0, x0, t0, y0 + 0.7, x0 + 0.7, t0 + 1 / phases], axis=-1)
    return feats.astype(np.float16), coords.astype(np.float32), labels.astype(np.int32)


def make_train_store(path: Path, n: int = 48, test_every: int = 4, d: int = 24, seed: int = 0, **kw) -> FeatureStore:
    """Store of ``order_dataset`` videos; every ``test_every``-th video is in the test part of split 1;
    split 3 has no training videos."""
    feats, coords, labels = order_dataset(n, d=d, seed=seed, **kw)
    splits = np.ones((3, n), np.int8)
    splits[0, ::test_every] = 2
    splits[2, :] = 2  # split 3 has no train videos (empty-split errors)
    fs = FeatureStore.create(path, video_ids=[f"v{i}" for i in range(n)], labels=labels, splits=splits,
                             class_names=[f"c{c}" for c in range(labels.max() + 1)], n_clips=feats.shape[1],
                             feature_dim=d, attrs={"backbone": {"name": "synthetic"}, "view": {"name": "train16"}})
    fs.write_rows(np.arange(n), features=feats, coords=coords)
    return fs


def assert_same_weights(a: dict, b: dict, rtol: float = 1e-4, atol: float = 2e-5, what: str = "") -> None:
    """Two state dicts hold the same weights. The key part of each ``qkv.bias`` gets an exactly zero
    gradient (softmax ignores a constant added to every key), so AdamW turns float rounding noise
    into updates there (up to lr * 1e-2 per step with eps 1e-8): that slice is compared loosely."""
    import torch

    for k, v in a.items():
        w = b[k]
        if k.endswith("qkv.bias"):
            c = v.shape[0] // 3
            assert torch.allclose(v[c:2 * c], w[c:2 * c], atol=1e-3), (what, k, "key bias")
            v, w = torch.cat([v[:c], v[2 * c:]]), torch.cat([w[:c], w[2 * c:]])
        assert torch.allclose(v, w, atol=atol, rtol=rtol), (what, k, float((v - w).abs().max()))

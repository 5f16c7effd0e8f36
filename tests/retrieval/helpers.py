"""Random labelled stores, a tiny SCALE run directory, and a brute-force numpy R@k reference."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from scale_toolkit.store import FeatureStore


def make_store(path: Path, n: int = 60, v: int = 5, d: int = 16, classes: int = 6, seed: int = 0,
               attrs: dict | None = None, test_every: int = 3, class_spread: float = 1.0) -> tuple[FeatureStore, dict]:
    """A store whose features are class centres plus noise; split s: every `test_every`-th video tests."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n).astype(np.int32)
    centres = rng.standard_normal((classes, d)) * class_spread
    feats = (centres[labels][:, None, :] + rng.standard_normal((n, v, d))).astype(np.float16)
    lo = rng.random((n, v, 3)) * 0.5
    coords = np.concatenate([lo, lo + 0.5], axis=2).astype(np.float32)
    splits = np.stack([np.where((np.arange(n) + s) % test_every == 0, 2, 1) for s in range(3)]).astype(np.int8)
    ids = [f"class{labels[i]}/v_{i:03d}.avi" for i in range(n)]
    fs = FeatureStore.create(path, video_ids=ids, labels=labels, splits=splits,
                             class_names=[f"class{c}" for c in range(classes)], n_clips=v, feature_dim=d,
                             attrs=attrs if attrs is not None
                             else {"backbone_name": "tiny", "view": {"name": "eval15", "clips": v}},
                             rows_per_chunk=8)
    fs.write_rows(np.arange(n), features=feats, coords=coords)
    return fs, {"features": feats, "coords": coords, "labels": labels, "splits": splits, "video_ids": ids}


def make_model_dir(path: Path, input_dim: int = 16, hidden: int = 32, seed: int = 0) -> Path:
    """A randomly initialised SCALE model saved as a run directory."""
    import torch

    from scale_toolkit.model import ScaleConfig, ScaleModel, save_model

    torch.manual_seed(seed)
    model = ScaleModel(ScaleConfig(input_dim=input_dim, hidden=hidden, heads=4, layers=1, pos_hidden=16,
                                   head_hidden=32, proj_dim=16))
    save_model(model, path, extra={})
    return path


def reference_recall(q: np.ndarray, q_labels: np.ndarray, g: np.ndarray, g_labels: np.ndarray,
                     ks, center: bool) -> dict[str, float]:
    """Brute force in float64: (centre each side by its own mean,) L2-normalise, full sort, any-hit@k."""
    q = np.asarray(q, np.float64)
    g = np.asarray(g, np.float64)
    if center:
        q = q - q.mean(0)
        g = g - g.mean(0)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    g = g / np.linalg.norm(g, axis=1, keepdims=True)
    order = np.argsort(-(q @ g.T), axis=1, kind="stable")
    out = {}
    for k in ks:
        hits = [(g_labels[order[i, :k]] == q_labels[i]).any() for i in range(len(q))]
        out[str(k)] = 100.0 * float(np.mean(hits))
    return out

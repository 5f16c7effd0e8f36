"""Synthetic feature stores with known structure for the probe tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scale_toolkit.store import FeatureStore

T_POS, S_POS = 5, 3  # the 5x3 eval layout: 5 temporal positions x 3 spatial crops


def eval_coords(n: int, t_pos: int = T_POS, s_pos: int = S_POS) -> np.ndarray:
    """Eq. 5 coords [n, t_pos*s_pos, 6] of a uniform temporal x spatial grid (clip index = t * s_pos + s)."""
    c = np.zeros((t_pos * s_pos, 6), np.float32)
    for t in range(t_pos):
        for s in range(s_pos):
            c[t * s_pos + s] = [0.0, 0.25 * s, t / t_pos, 1.0, 0.25 * s + 0.5, (t + 1) / t_pos]
    return np.broadcast_to(c, (n, *c.shape)).copy()


def make_splits(labels: np.ndarray, seed: int, test_fraction: float = 0.3) -> np.ndarray:
    """Three different class-stratified train (1) / test (2) splits."""
    rng = np.random.default_rng(seed)
    splits = np.ones((3, len(labels)), np.int8)
    for s in range(3):
        for c in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == c))
            splits[s, members[: max(1, int(round(test_fraction * len(members))))]] = 2
    return splits


def make_features(kind: str, labels: np.ndarray, dim: int, seed: int, n_clips: int = T_POS * S_POS) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n, n_classes = len(labels), int(labels.max()) + 1
    if kind == "separable":
        means = rng.normal(size=(n_classes, dim)) * 3.0
        return means[labels][:, None, :] + rng.normal(size=(n, n_clips, dim))
    if kind == "temporal":
        # classes differ only by the temporal order of two motions: class 0 does +u then -u, class 1 -u then +u.
        # Per clip (and so per clip-average) the two classes have the same distribution.
        u = rng.normal(size=dim)
        u /= np.linalg.norm(u)
        t = np.arange(n_clips) // S_POS
        order = np.where(t < 2, 1.0, np.where(t > 2, -1.0, 0.0))  # +1, +1, 0, -1, -1 over the 5 positions
        sign = np.where(labels == 0, 1.0, -1.0)
        base = rng.normal(size=(n, 1, dim))
        return base + 4.0 * (sign[:, None] * order[None, :])[..., None] * u + 0.3 * rng.normal(size=(n, n_clips, dim))
    if kind == "random":
        return rng.normal(size=(n, n_clips, dim))
    raise ValueError(kind)


def build_store(path: Path, kind: str = "separable", n_classes: int = 4, per_class: int = 20, dim: int = 16,
                seed: int = 0, backbone: dict | None = None, view: str = "eval15", video_ids=None,
                labels=None, splits=None, n_clips: int = T_POS * S_POS, feature_scale: float = 1.0,
                feature_offset: float = 0.0) -> FeatureStore:
    labels = np.repeat(np.arange(n_classes), per_class) if labels is None else np.asarray(labels)
    n = len(labels)
    video_ids = [f"c{labels[i]}/v{i:04d}.avi" for i in range(n)] if video_ids is None else video_ids
    splits = make_splits(labels, seed) if splits is None else splits
    fs = FeatureStore.create(
        path, video_ids=video_ids, labels=labels, splits=splits,
        class_names=[f"class{c}" for c in range(int(labels.max()) + 1)], n_clips=n_clips, feature_dim=dim,
        attrs={"backbone": backbone or {"name": "tiny", "family": "tiny", "feature_dim": dim},
               "checkpoint_sha256": "0" * 64, "view": {"name": view, "clips": n_clips}, "dataset": f"synthetic-{kind}"},
        overwrite=True,
    )
    feats = make_features(kind, labels, dim, seed, n_clips) * feature_scale + feature_offset
    coords = (eval_coords(n) if n_clips == T_POS * S_POS
              else np.random.default_rng(seed).random((n, n_clips, 6)).astype(np.float32))
    fs.write_rows(np.arange(n), features=feats.astype(np.float16), coords=coords)
    return fs


@pytest.fixture
def make_store(tmp_path):
    counter = {"i": 0}

    def make(kind: str = "separable", **kw) -> FeatureStore:
        counter["i"] += 1
        return build_store(tmp_path / f"{kind}{counter['i']}.zarr", kind, **kw)

    return make


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The probe tests train many tiny heads; one thread avoids oversubscription on shared CI cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def save_tiny_model(run_dir: Path, input_dim: int, backbone_name: str = "tiny", split: int = 1, seed: int = 0, **cfg) -> Path:
    """A small SCALE model saved as a run dir (random weights: enough to exercise every model path)."""
    import torch

    from scale_toolkit.model import ScaleConfig, ScaleModel, save_model

    torch.manual_seed(seed)
    config = ScaleConfig(**{"input_dim": input_dim, "hidden": 32, "heads": 2, "layers": 1, "pos_hidden": 32,
                            "head_hidden": 64, "proj_dim": 16, **cfg})
    save_model(ScaleModel(config), run_dir, extra={"store": {"backbone": {"name": backbone_name}, "split": split}})
    return run_dir

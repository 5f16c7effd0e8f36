"""Small synthetic stores, run directories and files for the reliability tests."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from scale_toolkit.store import FeatureStore


def make_store(path: Path, *, view: str = "eval15", n: int = 24, dim: int = 16, backbone: str = "tiny",
               classes: int = 3, splits: np.ndarray | None = None, seed: int = 0) -> FeatureStore:
    """A done store with ``view``'s clip count (train16: 16, eval15: 15) and separable random features."""
    v = 16 if view == "train16" else 15
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % classes).astype(np.int32)
    centres = rng.standard_normal((classes, dim)) * 3
    feats = (centres[labels][:, None, :] + rng.standard_normal((n, v, dim))).astype(np.float16)
    lo = rng.random((n, v, 3)) * 0.5
    coords = np.concatenate([lo, lo + 0.5], axis=2).astype(np.float32)
    if splits is None:
        splits = np.stack([np.where((np.arange(n) + s) % 3 == 0, 2, 1) for s in range(3)]).astype(np.int8)
    fs = FeatureStore.create(path, video_ids=[f"c{labels[i]}/v{i:03d}.avi" for i in range(n)], labels=labels,
                             splits=splits, class_names=[f"c{c}" for c in range(classes)], n_clips=v, feature_dim=dim,
                             attrs={"backbone": {"name": backbone, "feature_dim": dim}, "backbone_name": backbone,
                                    "view": {"name": view, "clips": v}, "dataset": "synthetic"},
                             rows_per_chunk=8)
    fs.write_rows(np.arange(n), features=feats, coords=coords)
    return fs


def make_model_dir(path: Path, input_dim: int = 16, backbone: str = "tiny", hidden: int = 32) -> Path:
    """A randomly initialised SCALE model saved as a run directory, 'trained' on ``backbone`` features."""
    import torch

    from scale_toolkit.model import ScaleConfig, ScaleModel, save_model

    torch.manual_seed(0)
    model = ScaleModel(ScaleConfig(input_dim=input_dim, hidden=hidden, heads=4, layers=1, pos_hidden=16,
                                   head_hidden=32, proj_dim=16))
    save_model(model, path, extra={"store": {"backbone": {"name": backbone}, "split": 1}})
    return path


def import_arrays(n: int = 6, v: int = 4, d: int = 8, classes: int = 2) -> dict:
    rng = np.random.default_rng(0)
    lo = rng.random((n, v, 3)) * 0.5
    return {"features": rng.standard_normal((n, v, d)).astype(np.float32),
            "coords": np.concatenate([lo, lo + 0.5], axis=2).astype(np.float32),
            "labels": (np.arange(n) % classes).astype(np.int32),
            "video_ids": np.array([f"v{i}" for i in range(n)]),
            "class_names": np.array([f"c{c}" for c in range(classes)]),
            "splits": np.ones((3, n), np.int8)}


def tree(path: Path) -> set[str]:
    """Every file and folder below ``path`` (relative names), to prove a command wrote nothing."""
    return {str(p.relative_to(path)) for p in Path(path).rglob("*")}


# what a long command prints while it works: the precision it chose, progress lines in a log, and
# training's warnings (e.g. a warm-up longer than a test's few epochs)
_STATUS_LINE = re.compile(r"^(precision: |warning[ :(]|\d\d:\d\d:\d\d [\w ]+: )")


def message_lines(err: str) -> list[str]:
    """The non-empty stderr lines that are not the command's status lines: what a failure says."""
    return [ln for ln in err.splitlines() if ln.strip() and not _STATUS_LINE.match(ln)]


REPO = Path(__file__).resolve().parents[2]


def scale(*args, timeout: float = 600, cwd: Path | None = None):
    """The real `scale` CLI in a child process (`python -m cli.main ARGS`): (exit status, stdout, stderr).
    Names travel as bytes (os.fsencode), so a test can pass any byte sequence a file name may hold."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "400"}
    argv = [sys.executable, "-m", "cli.main", *(os.fsencode(a) if isinstance(a, (str, Path)) else a for a in args)]
    res = subprocess.run(argv, capture_output=True, timeout=timeout, cwd=cwd or REPO, env=env)
    return res.returncode, res.stdout.decode("utf-8", "replace"), res.stderr.decode("utf-8", "replace")

"""Video subsets for the probe protocol: the class-stratified validation hold-out and low-shot subsets.

Both work on *train* video rows only and are seeded, so the same call gives the same subset.

Example:
    >>> import numpy as np
    >>> rows, labels = np.arange(20), np.repeat([0, 1], 10)
    >>> fit, val = stratified_holdout(rows, labels, 0.2, seed=0)
    >>> len(fit), len(val), np.bincount(labels[val]).tolist()
    (16, 4, [2, 2])
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ScaleError


def stratified_holdout(rows: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split train `rows` (with their `labels`, aligned) into (fit, validation), class by class.

    Each class with n >= 2 videos gives round(fraction * n) videos (at least 1, at most n - 1) to
    the validation part; a class with a single video stays in the fit part. Both parts are
    returned sorted. Only the rows given are ever used, so a test video cannot enter either part.
    """
    rows = np.asarray(rows)
    labels = np.asarray(labels)
    if rows.shape != labels.shape:
        raise ValueError("rows and labels must be aligned")
    if not 0.0 < fraction < 1.0:
        raise ScaleError(f"--val-fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    val: list[np.ndarray] = []
    for c in np.unique(labels):
        members = rows[labels == c]
        n = len(members)
        if n < 2:
            continue
        n_val = min(max(1, int(round(fraction * n))), n - 1)
        val.append(rng.permutation(members)[:n_val])
    val_rows = np.sort(np.concatenate(val)) if val else np.zeros(0, rows.dtype)
    fit_rows = np.setdiff1d(rows, val_rows)
    if len(val_rows) == 0:
        raise ScaleError("the train split is too small to carve a validation hold-out (every class has one video): "
                         "trained probes (--linear, --mlp, --transformer, --ft) need at least 2 train videos in some "
                         "class; run only --knn on so few videos, or extract more")
    return fit_rows, val_rows


def class_balanced_subset(rows: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Low-shot subset of train `rows`: ceil(fraction * n_c) videos (at least 1) of every class c.

    Example:
        >>> import numpy as np
        >>> sub = class_balanced_subset(np.arange(30), np.repeat([0, 1, 2], 10), 0.1, seed=3)
        >>> len(sub)
        3
    """
    rows = np.asarray(rows)
    labels = np.asarray(labels)
    if not 0.0 < fraction <= 1.0:
        raise ScaleError(f"--low-shot must be in (0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        members = rows[labels == c]
        k = max(1, math.ceil(fraction * len(members)))
        keep.append(rng.choice(members, size=min(k, len(members)), replace=False))
    return np.sort(np.concatenate(keep))

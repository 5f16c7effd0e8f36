"""Top-k accuracy of video-level class scores."""
from __future__ import annotations

import numpy as np


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Percent of rows whose label is among the k highest scores (ties broken by class index).

    Example:
        >>> topk_accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1]), ks=(1,))
        {'top1': 50.0}
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if len(labels) == 0:
        return {f"top{k}": float("nan") for k in ks}
    # stable ranking: a class outranks another if its score is higher, or equal with a lower index
    order = np.argsort(-scores, axis=1, kind="stable")
    out = {}
    for k in ks:
        hit = (order[:, : min(k, scores.shape[1])] == labels[:, None]).any(axis=1)
        out[f"top{k}"] = float(100.0 * hit.mean())
    return out

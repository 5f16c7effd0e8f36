"""What `scale probe --json OUT` draws next to OUT: the best row's confusion matrix and per-class top-1."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from ..figures import agg_figure, matrix_with_counts, save_png
from .options import ROW_LABELS


def leaf_predictions(result: dict) -> Optional[tuple[list[int], list[int]]]:
    """(test rows, predicted classes) of a row's result; with several splits or seeds, the first one's.

    >>> leaf_predictions({"top1": 50.0, "per_split": {"1": {"test_rows": [3], "predictions": [1]}}})
    ([3], [1])
    """
    if "test_rows" in result:
        return result["test_rows"], result["predictions"]
    for key in ("per_split", "per_seed"):
        for entry in result.get(key, {}).values():
            found = leaf_predictions(entry)
            if found is not None:
                return found
    return None


def best_row(results: dict[str, dict]) -> Optional[str]:
    """The row with the highest top-1 among those that kept per-video predictions."""
    rows = [row for row, res in results.items() if leaf_predictions(res) is not None]
    return max(rows, key=lambda row: results[row]["top1"]) if rows else None


def per_class_top1(true: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Top-1 % of each class over its test videos (NaN for a class without test videos).

    >>> per_class_top1(np.array([0, 0, 1]), np.array([0, 1, 1]), 3).tolist()
    [50.0, 100.0, nan]
    """
    hits = np.bincount(true, weights=(true == predicted).astype(float), minlength=n_classes)
    count = np.bincount(true, minlength=n_classes).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, 100.0 * hits / count, np.nan)


def probe_picture(doc: Mapping[str, Any], labels: np.ndarray, class_names: list[str], path: str | Path) -> Optional[Path]:
    """Row-normalised confusion matrix and per-class top-1 of the best row, as one PNG at ``path``.

    ``labels`` are the store's labels (indexed by store row). Returns the path, or None when no row
    kept per-video predictions. Cell counts and class names are drawn only where they stay legible
    (UCF101's 101 classes get a plain matrix and an unlabelled, sorted bar chart).
    """
    row = best_row(doc["results"])
    if row is None:
        return None
    found = leaf_predictions(doc["results"][row])
    assert found is not None  # best_row picks among the rows with predictions
    rows, predicted = (np.asarray(x, dtype=np.int64) for x in found)
    true = np.asarray(labels)[rows]
    n = max(len(class_names), int(true.max()) + 1, int(predicted.max()) + 1)
    names = list(class_names) + [str(i) for i in range(len(class_names), n)]
    counts = np.zeros((n, n), int)
    np.add.at(counts, (true, predicted), 1)
    side = min(12.0, 3.0 + 0.3 * n)
    fig = agg_figure(figsize=(2 * side + 1, side))
    matrix_ax, bars_ax = fig.subplots(1, 2)
    matrix_with_counts(matrix_ax, counts, show_counts=n <= 12)
    if n <= 40:
        matrix_ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=7)
        matrix_ax.set_yticks(range(n), names, fontsize=7)
    matrix_ax.set_xlabel("predicted")
    matrix_ax.set_ylabel("true")
    matrix_ax.set_title(f"{ROW_LABELS.get(row, row)}: {100 * np.mean(true == predicted):.1f}% top-1, {len(true)} test videos")
    accuracy = per_class_top1(true, predicted, n)
    present = np.flatnonzero(~np.isnan(accuracy))
    order = present[np.argsort(accuracy[present], kind="stable")]
    bars_ax.barh(range(len(order)), accuracy[order], color="tab:blue")
    if len(order) <= 60:
        bars_ax.set_yticks(range(len(order)), [names[c] for c in order], fontsize=7)
    bars_ax.set_xlim(0, 100)
    bars_ax.set_xlabel("top-1 % of the class's test videos")
    bars_ax.set_title(f"per class, worst first ({len(order)} classes with test videos)")
    fig.tight_layout()
    save_png(fig, path, dpi=90)
    return Path(path)


def write_probe_picture(doc: Mapping[str, Any], path: str | Path) -> Optional[Path]:
    """``probe_picture`` of a result document, with the labels and class names of its store."""
    from ..store import FeatureStore

    store = FeatureStore.open(doc["store"]["path"])
    return probe_picture(doc, store.labels, store.class_names, path)

"""The demo's pictures: a confusion matrix and a retrieval strip (PNG, matplotlib Figure on an Agg canvas)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..figures import agg_figure, matrix_with_counts, save_png


def _save(fig, path: Path) -> None:
    save_png(fig, path, dpi=110, bbox_inches="tight")


def confusion_png(panels: list[tuple[str, np.ndarray, np.ndarray]], class_names: list[str], path: Path) -> Path:
    """Row-normalised confusion matrices side by side, one per (title, true, predicted), counts in the cells."""
    n = len(class_names)
    fig = agg_figure(figsize=(len(panels) * (2.5 + 0.75 * n), 1.2 + 0.7 * n))
    axes = fig.subplots(1, len(panels), squeeze=False)
    fig.subplots_adjust(wspace=0.6)
    for ax, (title, true, pred) in zip(axes[0], panels):
        counts = np.zeros((n, n), int)
        np.add.at(counts, (np.asarray(true), np.asarray(pred)), 1)
        matrix_with_counts(ax, counts)
        ax.set_xticks(range(n), class_names, rotation=40, ha="right")
        ax.set_yticks(range(n), class_names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{title}: {100 * np.mean(np.asarray(true) == np.asarray(pred)):.0f}% top-1")
    _save(fig, path)
    return path


def motion_picture(frames: np.ndarray) -> np.ndarray:
    """One image of a clip's motion: later frames brighter, so the direction of travel shows."""
    weights = np.linspace(0.25, 1.0, len(frames))[:, None, None, None]
    return (frames.astype(np.float32) * weights).max(axis=0).astype(np.uint8)


def retrieval_strip_png(queries: list[dict], path: Path, title: str) -> Path:
    """Rows: a query and its nearest gallery videos. Each item: {"image", "label", "ok" (neighbours)}."""
    cols = max(len(q["neighbours"]) for q in queries) + 1
    fig = agg_figure(figsize=(2.1 * cols, 1.9 * len(queries)))
    axes = fig.subplots(len(queries), cols, squeeze=False)
    for r, q in enumerate(queries):
        items = [dict(q, ok=None)] + q["neighbours"]
        for c in range(cols):
            ax = axes[r][c]
            ax.axis("off")
            if c >= len(items):
                continue
            item = items[c]
            ax.imshow(item["image"])
            colour = "black" if item["ok"] is None else ("tab:green" if item["ok"] else "tab:red")
            prefix = "query: " if c == 0 else f"#{c} "
            ax.set_title(prefix + item["label"], fontsize=7, color=colour)
    fig.suptitle(title, fontsize=9)
    _save(fig, path)
    return path

"""Training-curve PNG from metrics.jsonl (matplotlib Figure on an Agg canvas)."""
from __future__ import annotations

import json
from pathlib import Path

from scale_toolkit.figures import agg_figure, save_png


def plot_curves(metrics_path: str | Path, png_path: str | Path) -> None:
    rows = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line.strip()]
    if not rows:
        return
    ep = [r["epoch"] for r in rows]
    fig = agg_figure(figsize=(13, 3.6))
    axes = fig.subplots(1, 3)
    for key in ("loss", "mcm_loss", "set_loss"):
        axes[0].plot(ep, [r[key] for r in rows], label=key)
    axes[0].set_title("loss")
    axes[0].legend()
    for key in ("mcm_acc", "set_acc"):
        line, = axes[1].plot(ep, [r[key] for r in rows], label=f"{key} (train batches)")
        held = [(r["epoch"], r[f"val_{key}"]) for r in rows if f"val_{key}" in r]
        if held:  # the held-out videos' curve in the same colour, dashed
            axes[1].plot(*zip(*held), linestyle="--", color=line.get_color(), label=f"{key} (held-out)")
    axes[1].set_title("top-1 (in-batch retrieval)")
    axes[1].set_ylim(0, 1)
    axes[1].legend(fontsize=7)
    axes[2].plot(ep, [r["lr"] for r in rows])
    axes[2].set_title("learning rate")
    for ax in axes:
        ax.set_xlabel("epoch")
    fig.tight_layout()
    save_png(fig, png_path, dpi=90)

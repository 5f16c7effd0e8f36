"""Training-curve PNG from metrics.jsonl (matplotlib Figure on an Agg canvas)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from scale_toolkit.figures import agg_figure, save_png

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

ACCURACIES = ("mcm_acc", "set_acc")


def chance_levels(batch: int, held_out_batch: int, clips_per_video: int) -> dict[str, float]:
    """Top-1 of a guess among each accuracy's candidates: SET picks its video's other SET token among
    the batch's, MCM a masked clip among the clips of the batch's pool (``clips_per_video`` per video:
    the set size, or both sets' with ``mcm_pool_sets``).
    Training batches and held-out batches differ in size, so their chance levels differ too.

    >>> chance_levels(batch=16, held_out_batch=10, clips_per_video=8)["val_set_acc"]
    0.1
    """
    levels = {"set_acc": 1 / batch, "mcm_acc": 1 / (batch * clips_per_video)}
    if held_out_batch:
        levels.update(val_set_acc=1 / held_out_batch, val_mcm_acc=1 / (held_out_batch * clips_per_video))
    return levels


def plot_curves(metrics_path: str | Path, png_path: str | Path, chance: Optional[dict[str, float]] = None) -> None:
    """curves.png of a metrics.jsonl (nothing while it has no line)."""
    rows = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line.strip()]
    if rows:
        save_png(curves_figure(rows, chance), png_path, dpi=90)


def curves_figure(rows: list[dict], chance: Optional[dict[str, float]] = None) -> "Figure":
    """Losses, top-1 accuracies (training batches solid, held-out videos dashed; their chance levels
    dotted and in the legend when ``chance`` gives them) and the learning rate, per epoch."""
    chance = chance or {}
    ep = [r["epoch"] for r in rows]
    fig = agg_figure(figsize=(13, 4.4))
    axes = fig.subplots(1, 3)
    for key in ("loss", "mcm_loss", "set_loss"):
        axes[0].plot(ep, [r[key] for r in rows], label=key)
    axes[0].set_title("loss")
    axes[0].legend()
    for key in ACCURACIES:
        line, = axes[1].plot(ep, [r[key] for r in rows], label=f"{key} (train batches){_chance_label(chance.get(key))}")
        colour = line.get_color()
        held = [(r["epoch"], r[f"val_{key}"]) for r in rows if f"val_{key}" in r]
        if held:  # the held-out videos' curve in the same colour, dashed
            axes[1].plot(*zip(*held), linestyle="--", color=colour,
                         label=f"{key} (held-out){_chance_label(chance.get(f'val_{key}'))}")
        for level in {chance.get(key), chance.get(f"val_{key}") if held else None} - {None}:
            axes[1].axhline(level, color=colour, linestyle=":", linewidth=0.9, alpha=0.8)
    axes[1].set_title("top-1 (in-batch retrieval; dotted: chance)" if chance else "top-1 (in-batch retrieval)")
    axes[1].set_ylim(-0.02, 1.05)  # a curve at 1.0 stays inside the frame, not on its edge
    # under the panels, in the figure: never over a curve, and the panels keep equal widths
    fig.legend(*axes[1].get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=8, frameon=False)
    axes[2].plot(ep, [r["lr"] for r in rows])
    axes[2].set_title("learning rate")
    for ax in axes:
        ax.set_xlabel("epoch")
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    return fig


def _chance_label(level: Optional[float]) -> str:
    return "" if level is None else f", chance {level:.3g} = 1/{round(1 / level)}"

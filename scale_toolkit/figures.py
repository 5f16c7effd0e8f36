"""Matplotlib figures drawn without pyplot: no global backend switch, no figure registry to leak into."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .atomic import atomic_open

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


def agg_figure(figsize: tuple[float, float]) -> "Figure":
    """A figure on its own Agg canvas; the process's matplotlib backend stays whatever the caller chose."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize)
    FigureCanvasAgg(figure)
    return figure


def save_png(figure: "Figure", path: str | os.PathLike, dpi: int, **savefig_options) -> None:
    """Write `figure` as a PNG atomically (a reader never sees half a picture)."""
    with atomic_open(path, "wb") as f:
        figure.savefig(f, format="png", dpi=dpi, **savefig_options)


def text_colour_on(rgba: tuple[float, ...]) -> str:
    """Black or white, whichever contrasts more with a cell of colour ``rgba`` (WCAG relative luminance:
    black above 0.179, where both contrast ratios are equal).

    >>> text_colour_on((0.97, 0.98, 1.0, 1.0)), text_colour_on((0.03, 0.19, 0.42, 1.0))
    ('black', 'white')
    """
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgba[:3])
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.179 else "white"


def matrix_with_counts(ax, counts, cmap: str = "Blues", show_counts: bool = True) -> None:
    """A row-normalised confusion matrix on ``ax`` with each non-zero count written in the colour
    that reads on its own cell (a fixed colour is invisible on half of them)."""
    import numpy as np
    from matplotlib import colormaps

    counts = np.asarray(counts)
    fractions = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    ax.imshow(fractions, cmap=cmap, vmin=0, vmax=1)
    if not show_counts:
        return
    colours = colormaps[cmap]
    for i, j in zip(*np.nonzero(counts)):
        ax.text(j, i, counts[i, j], ha="center", va="center", color=text_colour_on(colours(fractions[i, j])))

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

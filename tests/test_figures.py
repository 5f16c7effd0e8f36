"""Confusion-matrix counts readable on every cell (issue #30): the text colour follows the cell's luminance."""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib import colormaps

from scale_toolkit.figures import agg_figure, matrix_with_counts


def _luminance(rgb) -> float:
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb[:3]]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a, b) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@pytest.mark.parametrize("cmap", ["Blues", "viridis"])
def test_every_count_has_at_least_wcag_aa_contrast_with_its_cell(cmap):
    from matplotlib.colors import to_rgb

    rng = np.random.default_rng(0)
    counts = rng.integers(0, 12, size=(8, 8)) + np.diag(rng.integers(0, 200, size=8))  # pale, mid and dark cells
    fig = agg_figure(figsize=(5, 5))
    ax = fig.subplots()
    matrix_with_counts(ax, counts, cmap=cmap)
    fractions = counts / counts.sum(1, keepdims=True)
    texts = ax.texts
    assert len(texts) == np.count_nonzero(counts)
    seen = set()
    for text in texts:
        j, i = (int(round(v)) for v in text.get_position())
        assert int(text.get_text()) == counts[i, j]
        cell = colormaps[cmap](fractions[i, j])
        colour = to_rgb(text.get_color())
        seen.add(colour)
        assert _contrast(colour, cell) >= 4.5, (i, j, fractions[i, j], text.get_color())
    assert len(seen) == 2, "a matrix with pale and dark cells needs both text colours"

"""Position vectors the positional MLP reads: Eq. 5's stored 6-vector, or the official code's 7-vector.

The official code encodes each clip as ``[flip, y0, x0, y1, x1, t0, t1]``, every entry min-max
scaled over the clips of its own video. Min-max scaling is invariant to the per-axis division of
Eq. 5, so the stored coords give the same vector as the source boxes. Where all clips of a video
share a value (e.g. none is flipped) the official code divides 0 by 0 (NaN); we write 0 there.

Example:
    >>> c = np.array([[[0, 0, 0, .5, .5, .1], [.5, .5, .5, 1, 1, .6]]], np.float32)
    >>> official_positions(c, np.array([[True, False]]))[0].tolist()
    [[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]]
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from scale_toolkit.errors import ScaleError

# Eq. 5 order [y0, x0, t0, y1, x1, t1] -> the official order's box and time entries [y0, x0, y1, x1, t0, t1]
_OFFICIAL_ORDER = [0, 1, 3, 4, 2, 5]


def official_positions(coords: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """[N, V, 6] Eq. 5 coords and [N, V] flip flags -> [N, V, 7] float32, min-max scaled per video."""
    coords = np.asarray(coords, dtype=np.float64)
    flip = np.asarray(flip)
    if coords.ndim != 3 or coords.shape[-1] != 6 or flip.shape != coords.shape[:2]:
        raise ScaleError(f"expected coords [N,V,6] and flip [N,V], got {coords.shape} and {flip.shape}")
    raw = np.concatenate([flip[..., None].astype(np.float64), coords[..., _OFFICIAL_ORDER]], axis=-1)
    lo, hi = raw.min(axis=1, keepdims=True), raw.max(axis=1, keepdims=True)
    span = hi - lo
    out = np.where(span > 0, (raw - lo) / np.where(span > 0, span, 1.0), 0.0)
    return out.astype(np.float32)


def model_positions(pos_input: str, coords: np.ndarray, flip: Optional[np.ndarray]) -> np.ndarray:
    """The position vectors a model with ``pos_input`` reads, from a store's coords (and flip flags)."""
    if pos_input == "eq5":
        return np.asarray(coords, dtype=np.float32)
    if flip is None:
        raise ScaleError("this model reads the official 7-entry positions, which need the store's flip flags")
    return official_positions(coords, flip)

"""Reading more rows than memory holds: a random order of a store's blocks, cut into windows.

Training and the probes both stream data over their memory budget this way: every row once per
pass, whole blocks at a time (a read touches only the blocks it needs), in an order drawn from the
caller's generator, so a rerun with the same seed reads the same windows.

Example:
    >>> import numpy as np
    >>> order = block_shuffled(np.array([0, 1, 2, 5, 6, 9]), rows_per_chunk=4, rng=np.random.default_rng(0))
    >>> sorted(order.tolist()), [w.tolist() for w in windows(np.array([3, 1, 2]), 2)]
    ([0, 1, 2, 5, 6, 9], [[1, 3], [2]])
"""
from __future__ import annotations

from typing import Iterator

import numpy as np


def block_shuffled(rows: np.ndarray, rows_per_chunk: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted store `rows` reordered block by block: the blocks in a random order, rows inside a
    block kept together (consecutive in the result, so a window reads whole blocks)."""
    blocks = rows // rows_per_chunk
    starts = np.flatnonzero(np.r_[True, blocks[1:] != blocks[:-1]])
    ends = np.r_[starts[1:], len(rows)]
    return np.concatenate([rows[starts[b]:ends[b]] for b in rng.permutation(len(starts))]) if len(rows) else rows


def windows(order: np.ndarray, window: int) -> Iterator[np.ndarray]:
    """`order` cut into consecutive windows of `window` rows, each sorted (the order a store reads)."""
    for first in range(0, len(order), window):
        yield np.sort(order[first:first + window])

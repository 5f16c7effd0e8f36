"""Training data larger than the memory budget: read from the store one window of videos at a time.

The train split is resident (read once, sampled by index on the device) when it fits
``--max-memory``; above it, each epoch visits the split's store blocks in a random order, cuts
the rows of that order into windows of ``window`` videos (a multiple of the batch), shuffles each
window and trains on it before reading the next. Every video is still seen once an epoch, a batch
mixes videos of ~window/16 blocks from all over the store, and memory holds one window. The order
comes from the seed and the epoch alone, so a resumed run repeats it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

import numpy as np

from scale_toolkit.model.positions import model_positions
from scale_toolkit.store.windows import block_shuffled, windows

# a streamed window takes at most this part of the data budget (fit_window)
WINDOW_SHARE = 3

if TYPE_CHECKING:
    from scale_toolkit.store import FeatureStore


@dataclass
class StreamedSplit:
    """The train videos of a store, read a window at a time (see module doc)."""

    store_path: str
    rows: np.ndarray  # sorted store rows of the training videos (held-out ones excluded)
    n_clips: int
    feature_dim: int
    pos_input: str  # "eq5": the stored coords; else the official positions, built per window
    window: int = 0  # videos per window, set by `fit_window`
    _store: "FeatureStore | None" = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.rows), self.n_clips, self.feature_dim)

    def fit_window(self, budget: int, batch: int) -> None:
        """The largest multiple of `batch` videos whose features and positions fit a third of the
        budget (the window trained on, the next one being read, and the read's own blocks: measured at
        50k videos, a half overshot the process bound by 65 MB; the step's memory is kept back from
        the budget already, memory.py)."""
        per_video = self.n_clips * (2 * self.feature_dim + 4 * 7)
        self.window = max(batch, (budget // WINDOW_SHARE // per_video) // batch * batch)

    def epoch_windows(self, seed: int, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """This epoch's windows: (store rows, sorted, as `read` wants them; the order to train on
        them, a permutation of their positions). Blocks come in a random order."""
        rng = np.random.default_rng([seed, epoch, 0x5CA1E])
        for rows in windows(block_shuffled(self.rows, self.store.rows_per_chunk, rng), self.window):
            yield rows, rng.permutation(len(rows))

    def read(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(features float16 [m, V, D], positions float32 [m, V, P]) of sorted store rows."""
        names = ("features", "coords") if self.pos_input == "eq5" else ("features", "coords", "flip")
        data = self.store.read(rows, names=names)
        positions = data["coords"] if self.pos_input == "eq5" else model_positions(self.pos_input, data["coords"], data["flip"])
        return data["features"], np.asarray(positions, dtype=np.float32)

    def windows_in_store_order(self) -> Iterator[np.ndarray]:
        """Every training row once, in store order, a window at a time (for statistics)."""
        for first in range(0, len(self.rows), self.window):
            yield self.rows[first:first + self.window]

    @property
    def store(self) -> "FeatureStore":
        if self._store is None:
            from scale_toolkit.store import FeatureStore

            self._store = FeatureStore.open(self.store_path)
        return self._store

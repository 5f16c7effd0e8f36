"""Training data larger than the memory budget: read from the store one window of videos at a time.

The train split is resident (read once, sampled by index on the device) when it fits
``--max-memory``; above it, each epoch visits the split's store blocks in a random order, cuts
the rows of that order into windows of ``window`` videos (a multiple of the batch), shuffles each
window and trains on it before reading the next. Every video is still seen once an epoch, a batch
mixes videos of ~window/16 blocks from all over the store, and memory holds one window. The order
comes from the seed and the epoch alone, so a resumed run repeats it.

Example:
    >>> parse_size("16G"), parse_size("1.5GiB"), parse_size("512M"), parse_size("1000")
    (17179869184, 1610612736, 536870912, 1000)
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

import numpy as np

from scale_toolkit.errors import ScaleError

if TYPE_CHECKING:
    from scale_toolkit.store import FeatureStore

DEFAULT_FRACTION = 0.5  # of the memory available when training starts: the rest is the model's and the OS's
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_size(text: str) -> int:
    """Bytes from "16G", "1.5GiB", "512M", "1000" (binary units)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", str(text).lower())
    if not match:
        raise ScaleError(f"--max-memory must be a size such as 16G, 1.5GiB or 512M, got {text!r}")
    value = float(match.group(1)) * _UNITS[match.group(2)]
    if value < 1:
        raise ScaleError(f"--max-memory must be positive, got {text!r}")
    return int(value)


def available_bytes() -> int:
    """Memory the system can give this process now (MemAvailable), or the physical total where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_budget(max_memory: str) -> tuple[int, str]:
    """The budget for the training videos in bytes, and where it came from."""
    if max_memory:
        return parse_size(max_memory), f"--max-memory {max_memory}"
    return int(DEFAULT_FRACTION * available_bytes()), f"{DEFAULT_FRACTION:.0%} of the memory available at start"


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
        """The largest multiple of `batch` videos whose features and positions fit half the budget
        (the other half: the window being read while the last one is freed, the step's activations)."""
        per_video = self.n_clips * (2 * self.feature_dim + 4 * 7)
        self.window = max(batch, (budget // 2 // per_video) // batch * batch)

    def epoch_windows(self, seed: int, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """This epoch's windows: (store rows, sorted, as `read` wants them; the order to train on
        them, a permutation of their positions). Blocks come in a random order."""
        rng = np.random.default_rng([seed, epoch, 0x5CA1E])
        blocks = self.rows // self.store.rows_per_chunk
        starts = np.flatnonzero(np.r_[True, blocks[1:] != blocks[:-1]])
        ends = np.r_[starts[1:], len(self.rows)]
        order = np.concatenate([self.rows[starts[b]:ends[b]] for b in rng.permutation(len(starts))])
        for first in range(0, len(order), self.window):
            rows = np.sort(order[first:first + self.window])
            yield rows, rng.permutation(len(rows))

    def read(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(features float16 [m, V, D], positions float32 [m, V, P]) of sorted store rows."""
        from scale_toolkit.model.positions import model_positions

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

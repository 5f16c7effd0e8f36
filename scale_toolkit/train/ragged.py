"""Training on a ragged store: videos with any number of clips (store/ragged.py).

The train split is resident as its clips concatenated (features [C, D], positions [C, 6]) with each
video's offset and count: nothing is padded. Each step draws, for every video of the batch, two
sets of K clips from however many clips it has, the way the paper splits its 16 cached clips into
two random sets of 8 ("we sample 2 x K clips. We divide the clips into two sets randomly"):

* a video with at least 2K clips: 2K distinct clips at random, the first K one set, the rest the
  other (two disjoint sets, as in the paper);
* a video with fewer: a random order of all its clips, repeated until 2K slots are filled; so
  with K..2K-1 clips each set has K distinct clips and the two sets share as few as they can
  (2K - n clips), and with fewer than K clips clips repeat within a set. A video of one clip
  gives two identical sets: it still trains the MCM loss's context but its SET pair is trivial.

The step itself is unchanged: the concatenated clips are the store of one "video" [1, C, D] and
the drawn sets are row numbers into it (`flat_views`).

The held-out videos of the health metrics are drawn once (fixed seed) as 2K clips each by the same
rule, a fixed-shape [n, 2K, D] the metrics read like a train16 split.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from scale_toolkit.errors import ScaleError
from scale_toolkit.model.config import ScaleConfig
from scale_toolkit.store.ragged import RaggedStore
from scale_toolkit.train.stream import WINDOW_SHARE, StreamedSplit


def sample_ragged_sets(counts: torch.Tensor, set_size: int, generator: torch.Generator | None = None,
                       sets: int = 2) -> torch.Tensor:
    """Clip positions [B, sets, K] within each video (0 <= pos < count) by the rule of the module doc
    (with ``sets=1``: K distinct clips, or a video's fewer clips repeated; the set-classifier probes').

    >>> g = torch.Generator().manual_seed(0)
    >>> s = sample_ragged_sets(torch.tensor([40, 3]), 4, g)
    >>> len(set(s[0].flatten().tolist())), sorted(set(s[1].flatten().tolist()))
    (8, [0, 1, 2])
    """
    counts = counts.clamp(min=1)
    batch, slots = counts.shape[0], sets * set_size
    width = int(counts.max()) if batch else 1
    keys = torch.rand(batch, width, generator=generator, device=counts.device)
    keys = keys.masked_fill(torch.arange(width, device=counts.device)[None, :] >= counts[:, None], 2.0)
    order = keys.argsort(dim=1)  # a random order of each video's own clips first, padding after
    take = torch.arange(slots, device=counts.device)[None, :] % counts[:, None]
    return order.gather(1, take).view(batch, sets, set_size)


@dataclass
class RaggedSplit:
    """The train videos of a ragged store, resident: clips concatenated, no padding."""

    features: np.ndarray  # float16 [C, D]
    positions: np.ndarray  # float32 [C, 6]
    offsets: np.ndarray  # int64 [n] first clip of each video
    counts: np.ndarray  # int64 [n]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(videos, longest video's clips, D): what the run plan reads."""
        return (len(self.counts), int(self.counts.max()), int(self.features.shape[1]))


@dataclass
class StreamedRaggedSplit(StreamedSplit):
    """A ragged store's train videos over the memory budget: each epoch visits them a window of videos
    at a time in the fixed-count stream's order (train/stream.py), a window's clips read unpadded."""

    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # clips of each of `rows`
    capacity: int = 0  # the most clips a window can hold, set by `fit_window`

    def fit_window(self, budget: int, batch: int) -> None:
        """The largest multiple of `batch` videos whose clips fit a third of the budget (as
        `StreamedSplit.fit_window`) even when they are the split's longest videos; `capacity` their
        clip count (the buffer the windows are read into)."""
        per_clip = 2 * self.feature_dim + 4 * 6
        longest_first = np.cumsum(np.sort(self.counts)[::-1])
        fits = int(np.searchsorted(longest_first, budget // WINDOW_SHARE // per_clip, side="right"))
        self.window = max(batch, fits // batch * batch)
        self.capacity = int(longest_first[min(self.window, len(longest_first)) - 1])

    def read(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[override]
        """(features float16 [C, D], coords float32 [C, 6]) of the videos ``rows``, concatenated in that order."""
        data, _ = self.store.read_clips(rows, ("features", "coords"))
        return np.asarray(data["features"], np.float16), np.asarray(data["coords"], np.float32)

    def counts_of(self, rows: np.ndarray) -> np.ndarray:
        return self.counts[np.searchsorted(self.rows, rows)]


class RaggedSampler:
    """Draws a batch's two sets per video on the device and turns them into rows of the flat store."""

    def __init__(self, offsets: np.ndarray, counts: np.ndarray, device: torch.device) -> None:
        self.device = device
        self.use(offsets, counts)

    def use(self, offsets: np.ndarray, counts: np.ndarray) -> None:
        """The videos the sets are drawn from (a streamed split: the window now in its buffer)."""
        self.offsets = torch.from_numpy(np.asarray(offsets, np.int64)).to(self.device)
        self.counts = torch.from_numpy(np.asarray(counts, np.int64)).to(self.device)

    def flat_views(self, cfg: ScaleConfig, videos: torch.Tensor,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(video index 0 for every row, clip rows [B, 2, K] of the flat store, masks [B, 2, K])."""
        from scale_toolkit.model.masking import sample_mask

        sets = sample_ragged_sets(self.counts[videos], cfg.set_size, generator) + self.offsets[videos][:, None, None]
        mask = sample_mask(videos.shape[0] * 2, cfg.set_size, cfg.mask_ratio, cfg.mask_mode, generator,
                           videos.device, cfg.mask_min_one)
        return torch.zeros_like(videos), sets, mask.view(videos.shape[0], 2, cfg.set_size)


def load_ragged_split(fs: RaggedStore, idx: np.ndarray, info: dict[str, Any], pos_input: str, set_size: int,
                      val_rows: np.ndarray, train_rows: np.ndarray, seed: int
                      ) -> tuple[RaggedSplit, tuple[np.ndarray, np.ndarray] | None, dict[str, Any]]:
    """(the resident train videos, the held-out ones as [n, 2K, ...] or None, the store description)."""
    check_ragged_positions(info, pos_input)
    data, counts = fs.read_clips(idx[train_rows], ("features", "coords"))
    counts = counts.astype(np.int64)
    split = RaggedSplit(np.asarray(data["features"], np.float16), np.asarray(data["coords"], np.float32),
                        starts(counts), counts)
    return split, ragged_held_out(fs, idx[val_rows], set_size, seed), ragged_info(fs, idx, info)


def check_ragged_positions(info: dict[str, Any], pos_input: str) -> None:
    if pos_input != "eq5":
        raise ScaleError(f"{info.get('path')} has videos of any length (a ragged store): train it with the Eq. 5 "
                         f"positions (pos_input eq5), not {pos_input}")


def ragged_info(fs: RaggedStore, idx: np.ndarray, info: dict[str, Any]) -> dict[str, Any]:
    return {**info, "layout": "ragged", "clips_per_video": fs.clips_summary(idx),
            "sets": "2K clips drawn per step from each video's own; fewer than 2K: its clips in a random order, repeated"}


def starts(counts: np.ndarray) -> np.ndarray:
    """Each video's first clip in its clips concatenated."""
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


def ragged_held_out(fs: RaggedStore, rows: np.ndarray, set_size: int, seed: int
                    ) -> tuple[np.ndarray, np.ndarray] | None:
    """The held-out videos ``rows`` as 2K clips each, drawn once (fixed seed) by the sets' rule: [n, 2K, ...]."""
    if not len(rows):
        return None
    vdata, vcounts = fs.read_clips(rows, ("features", "coords"))
    g = torch.Generator().manual_seed(int(seed) ^ 0x0DD5)
    pick = (sample_ragged_sets(torch.from_numpy(vcounts.astype(np.int64)), set_size, g).view(len(vcounts), -1).numpy()
            + starts(vcounts)[:, None])
    return np.asarray(vdata["features"], np.float16)[pick], np.asarray(vdata["coords"], np.float32)[pick]

"""What a set classifier (Transformer, SCALE_ft) reads: each video of a batch as a set of clips.

* ``FixedSets`` (stores with a fixed number of clips per video): the set is every clip of the video
  (the 15 evaluation clips), for training and prediction alike.
* ``RaggedSets`` (stores of videos of any length, store/ragged.py): a set is K clips, the model's
  ``set_size``, as SCALE is trained. A training step draws K clips from each video of the batch by
  the SSL trainer's rule (train/ragged.py: K distinct clips at random; a video with fewer repeats
  its clips in a random order). A prediction averages the per-clip class probabilities of each of
  the video's interleaved K-clip subsets in time order (model/long_sets.py), then over the
  subsets: every clip counts once, nothing is padded to the longest video, and the cost grows
  linearly with the video's length.

Example:
    >>> clips = FlatClips(torch.arange(14.).view(7, 2).half(), torch.zeros(7, 6),
    ...                   offsets=torch.tensor([0, 5]), counts=torch.tensor([5, 2]))
    >>> sets = RaggedSets(clips, torch.tensor([0, 1]), set_size=3)
    >>> x, pos = sets.batch(torch.tensor([0, 1]), torch.Generator().manual_seed(0))
    >>> x.shape, sorted(set(x[1, :, 0].tolist()))  # video 1 has two clips: they repeat to fill K
    (torch.Size([2, 3, 2]), [10.0, 12.0])
"""
from __future__ import annotations

from typing import Iterator, Optional, Protocol

import numpy as np
import torch
from torch import nn

from ..model.long_sets import interleaved_subsets
from ..train.ragged import sample_ragged_sets
from .data import FlatClips

__all__ = ["FixedSets", "FlatClips", "RaggedSets", "SetInputs"]


class SetInputs(Protocol):
    """A split's videos as a set classifier trains and predicts on them."""

    n_videos: int
    device: torch.device

    def batch(self, idx: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(features [b, V, D], positions [b, V, P]) float32 of the videos ``idx``."""
        ...

    def probabilities(self, clf: nn.Module, batch_videos: int) -> torch.Tensor:
        """Video-level class probabilities [n, C] (per-clip softmax averaged over the video's clips)."""
        ...

    def pieces(self, videos: int = 4096) -> Iterator[torch.Tensor]:
        """Every clip feature of the videos, in pieces (for statistics over all of them)."""
        ...


class FixedSets:
    """Every clip of each video is its set (rows of a view's tensors, not copies)."""

    def __init__(self, features, positions) -> None:  # RowsOf (fit.py) of the view's features and positions
        self.features, self.positions = features, positions
        self.n_videos, self.device = int(features.shape[0]), features.device

    def batch(self, idx: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features[idx].float(), self.positions[idx].float()

    def logits(self, clf: nn.Module, batch_videos: int) -> Iterator[torch.Tensor]:
        """Per-clip logits [b, V, C] float32, `batch_videos` videos at a time (the official protocol
        scores them in three aggregations; `probabilities` in one)."""
        for start in range(0, self.n_videos, batch_videos):
            sl = slice(start, start + batch_videos)
            yield clf(self.features[sl].float(), self.positions[sl].float()).float()

    def probabilities(self, clf: nn.Module, batch_videos: int) -> torch.Tensor:
        out = [logits.softmax(-1).mean(1).cpu() for logits in self.logits(clf, batch_videos)]
        return torch.cat(out) if out else torch.zeros((0, 0))

    def pieces(self, videos: int = 4096) -> Iterator[torch.Tensor]:
        return self.features.pieces(videos)


class RaggedSets:
    """Sets of K clips from videos of any length (see module doc); ``idx`` picks the view's rows."""

    def __init__(self, clips: FlatClips, idx: torch.Tensor, set_size: int) -> None:
        self.clips, self.set_size, self.device = clips, int(set_size), clips.features.device
        idx = idx.to(self.device)
        self.offsets, self.counts = clips.offsets[idx], clips.counts[idx]
        self.n_videos = int(idx.shape[0])

    def batch(self, idx: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        drawn = sample_ragged_sets(self.counts[idx].cpu(), self.set_size, generator, sets=1)[:, 0]
        rows = (drawn.to(self.device) + self.offsets[idx][:, None])  # [b, K] rows of the flat clips
        return self.clips.features[rows].float(), self.clips.coords[rows].float()

    def _subsets(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(video of each subset [S], its flat clip rows [S, K], which slots hold a clip [S, K])."""
        starts = self.clips.coords[:, 2].cpu().numpy()
        videos, rows, ok = [], [], []
        for v, (first, count) in enumerate(zip(self.offsets.tolist(), self.counts.tolist())):
            own = first + np.argsort(starts[first:first + count], kind="stable")  # its clips in time order
            subsets = own[interleaved_subsets(count, self.set_size)]
            padded = np.zeros((len(subsets), self.set_size), np.int64)
            padded[:, :subsets.shape[1]] = subsets
            videos.append(np.full(len(subsets), v, np.int64))
            rows.append(padded)
            ok.append(np.arange(self.set_size)[None, :].repeat(len(subsets), 0) < subsets.shape[1])
        if not videos:
            return np.zeros(0, np.int64), np.zeros((0, self.set_size), np.int64), np.zeros((0, self.set_size), bool)
        return np.concatenate(videos), np.concatenate(rows), np.concatenate(ok)

    def probabilities(self, clf: nn.Module, batch_videos: int) -> torch.Tensor:
        videos, rows, ok = (torch.from_numpy(a).to(self.device) for a in self._subsets())
        total: Optional[torch.Tensor] = None
        batch_sets = max(1, batch_videos)
        for start in range(0, len(videos), batch_sets):
            v, r, m = (t[start:start + batch_sets] for t in (videos, rows, ok))
            logits = clf(self.clips.features[r].float(), self.clips.coords[r].float(), valid=None if bool(m.all()) else m)
            p = logits.float().softmax(-1)  # [s, K, C], or [s, 1, C] for a head on the SET token
            w = m.float()[..., None] if p.shape[1] == self.set_size else torch.ones_like(p[..., :1])
            per_subset = (p * w).sum(1) / w.sum(1)
            if total is None:
                total = torch.zeros(self.n_videos, per_subset.shape[1], device=self.device)
            total.index_add_(0, v, per_subset)
        if total is None:
            return torch.zeros((0, 0))
        return (total / torch.bincount(videos, minlength=self.n_videos).clamp(min=1)[:, None].float()).cpu()

    def pieces(self, videos: int = 4096) -> Iterator[torch.Tensor]:
        for start in range(0, self.n_videos, videos):
            offsets, counts = self.offsets[start:start + videos], self.counts[start:start + videos]
            rows = torch.cat([torch.arange(int(o), int(o) + int(c), device=self.device) for o, c in zip(offsets, counts)])
            yield self.clips.features[rows]

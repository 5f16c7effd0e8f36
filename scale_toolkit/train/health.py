"""Held-out SSL health: which train-split videos are held out, and when their metrics stall."""
from __future__ import annotations

from typing import Optional

import numpy as np

MAX_VAL_VIDEOS = 1024  # enough for stable in-batch accuracies; evaluating more only costs time
MIN_VAL_VIDEOS = 4
VAL_KEYS = ("val_mcm_loss", "val_set_loss", "val_mcm_acc", "val_set_acc")
# below this many held-out videos the accuracies move in steps too coarse to call a plateau: the
# demo's 5 stalled for 20 epochs twice, then SET top-1 rose from 0.80 to 1.00; curves are still logged
MIN_VIDEOS_TO_WARN = 16
MAX_HELD_OUT_SCORES = 100  # points on the held-out curve per run; more only costs time


def held_out_due(epoch: int, epochs: int) -> bool:
    """Whether the held-out videos are scored after ``epoch`` (1-based): the first and last epochs and
    every ``ceil(epochs / MAX_HELD_OUT_SCORES)``-th, so a long run on a small set (the demo: hundreds of
    epochs of 2 steps) does not spend a third of its time scoring 5 videos.

    >>> [e for e in range(1, 301) if held_out_due(e, 300)][:4], sum(held_out_due(e, 300) for e in range(1, 301))
    ([1, 3, 6, 9], 101)
    """
    every = -(-epochs // MAX_HELD_OUT_SCORES)
    return epoch == 1 or epoch == epochs or epoch % every == 0


def holdout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, held-out rows) of ``n`` train-split videos: ``round(fraction * n)`` videos, at
    least ``MIN_VAL_VIDEOS`` and at most ``MAX_VAL_VIDEOS``, drawn with ``seed``; none when
    ``fraction`` is 0 or fewer than 2 training videos would remain.

    Example:
        >>> tr, va = holdout_split(100, 0.1, seed=0)
        >>> len(tr), len(va), len(set(tr) & set(va))
        (90, 10, 0)
    """
    k = 0 if fraction <= 0 else min(MAX_VAL_VIDEOS, max(MIN_VAL_VIDEOS, int(round(fraction * n))))
    if n - k < 2:
        k = 0
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[k:]), np.sort(perm[:k])


class PlateauMonitor:
    """Warns once when the held-out MCM and SET accuracies stop improving in the first half of a run.

    A window of ``max(10, epochs // 5)`` epochs counts as stalled when neither accuracy rose above its
    best before the window by more than ``min_gain`` (absolute). Checked from the second window on,
    up to half the run: later, a flat curve is the expected end of training. Never with fewer than
    ``MIN_VIDEOS_TO_WARN`` held-out videos. Windows are counted in epochs, so scores need not come
    every epoch (``held_out_due``).
    """

    def __init__(self, epochs: int, n_videos: int = MIN_VIDEOS_TO_WARN, min_gain: float = 0.005):
        self.epochs = epochs
        self.too_few = n_videos < MIN_VIDEOS_TO_WARN
        self.window = max(10, epochs // 5)
        self.min_gain = min_gain
        self.history: list[tuple[int, float, float]] = []
        self.warned = False

    def update(self, epoch: int, mcm_acc: float, set_acc: float) -> Optional[str]:
        """Record one epoch's held-out accuracies; returns the warning text the first time they stall."""
        self.history.append((epoch, mcm_acc, set_acc))
        w = self.window
        if self.warned or self.too_few or epoch < 2 * w or epoch > self.epochs // 2:
            return None
        scores = np.array(self.history)
        before, recent = scores[scores[:, 0] <= epoch - w], scores[scores[:, 0] > epoch - w]
        gain = recent[:, 1:].max(0) - before[:, 1:].max(0)
        if (gain > self.min_gain).any():
            return None
        self.warned = True
        return (f"held-out SSL accuracies stopped improving: no gain over the last {w} epochs "
                f"(epoch {epoch} of {self.epochs}; MCM top-1 {100 * mcm_acc:.1f} %, SET top-1 {100 * set_acc:.1f} %). "
                "The model may not be learning: check the feature scaling (in_norm), the learning rate, "
                "and the number of steps (--steps)")

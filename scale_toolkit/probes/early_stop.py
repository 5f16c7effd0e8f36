"""Early stopping of a probe's grid points on the validation hold-out (the `small` grids' rule).

A grid point is scored on the validation videos after every epoch; once its validation top-1 has
been 100 % for ``patience`` epochs, it stops there, scored as it stopped. The refit on the full
train split then runs the selected point's schedule (the same cosine over the grid's epochs) for as
many epochs as that point ran: it repeats, on more videos, the training that selection judged.

Why only at 100 %: grid points are ranked by validation top-1, ties by NLL. A point at 100 % cannot
rise on the first key and no point can pass it there, so stopping it can only move the NLL
tie-break between points that all reach 100 %; a point below 100 % runs its whole schedule, as
without the rule. A plateau below 100 % would be the classic rule and would fire on real data too,
but measured on the probe test stores (benchmarks/RESULTS.md, issue #28) it changed the selected
point and the top-1 wherever validation sits at chance, so it is not the rule here. Checking does
not touch training (no gradient, no random draw): a point that never stops trains exactly as
without the rule.

Example:
    >>> import numpy as np
    >>> stop = PlateauStop(patience=2, labels=np.array([0, 1]))
    >>> right, wrong = np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([[0.1, 0.9], [0.2, 0.8]])
    >>> [stop.check(0, epoch, p) for epoch, p in enumerate([wrong, right, right, right], start=1)]
    [False, False, False, True]
    >>> stop.epochs_run
    {0: 4}
    >>> [stop.check(1, epoch, wrong) for epoch in range(1, 9)]  # 50 % for ever: never stopped
    [False, False, False, False, False, False, False, False]
"""
from __future__ import annotations

import numpy as np

from .fit import validation_score

PERFECT = 100.0  # validation top-1 (%) at which a grid point can no longer gain on the selection's first key


class PlateauStop:
    """Per grid point (by index): the epoch its validation top-1 reached 100 % (and stayed there), and
    the epoch it stopped at."""

    def __init__(self, patience: int, labels: np.ndarray) -> None:
        if patience < 1:
            raise ValueError("patience must be at least one epoch")
        self.patience = int(patience)
        self.labels = np.asarray(labels)
        self.perfect_since: dict[int, int] = {}
        self.epochs_run: dict[int, int] = {}  # the points that stopped early, and after how many epochs

    def check(self, index: int, epoch: int, val_probs: np.ndarray) -> bool:
        """After ``epoch`` (1-based) epochs of point ``index``, with its validation probabilities: stop it now?"""
        if validation_score(val_probs, self.labels)[0] < PERFECT:
            self.perfect_since.pop(index, None)
            return False
        since = self.perfect_since.setdefault(index, epoch)
        if epoch - since >= self.patience:
            self.epochs_run[index] = epoch
            return True
        return False

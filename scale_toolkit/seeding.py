"""Seeded random initialisation, done one way everywhere: backbones, the SCALE model, probe heads."""
from __future__ import annotations

from typing import Callable, TypeVar

import torch

Built = TypeVar("Built")


def seeded(build: Callable[[], Built], seed: int, restore: bool = True) -> Built:
    """``build()`` with torch's RNG seeded by ``seed``: the same initial weights on every run.

    ``restore`` (default) puts the caller's RNG back afterwards: a backbone or model built on the
    side draws nothing from the caller's stream. ``restore=False`` leaves the seeded stream
    running, so what is drawn next (the dropout of the training that follows) comes from
    ``seed`` too, as the probes train the head they just built.

    >>> a = seeded(lambda: torch.nn.Linear(4, 2), 0)
    >>> b = seeded(lambda: torch.nn.Linear(4, 2), 0, restore=False)
    >>> torch.equal(a.weight, b.weight)
    True
    >>> _ = torch.manual_seed(1); before = torch.rand(1); _ = torch.manual_seed(1)
    >>> _ = seeded(lambda: torch.nn.Linear(4, 2), 0)
    >>> torch.equal(torch.rand(1), before)
    True
    """
    if not restore:
        torch.manual_seed(seed)
        return build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()

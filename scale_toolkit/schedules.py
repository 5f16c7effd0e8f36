"""The learning-rate schedule and the weight-decay rule every trained part of scale uses: SSL training
(train/trainer.py), the probes' heads and classifiers and the official protocol's classifiers (both
through probes/fit.py's cosine_schedule; probes/official_fit.py takes the official variants).

The schedule is a linear warm-up, then a half cosine to a floor. The official evaluation code starts its
warm-up at 0 and runs its cosine unclamped over the SSL run's length (`official=True`); ours starts the
warm-up at the first step's share and holds the floor after ``total``.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import torch


def warmup_cosine(step: int, total: int, warm: float, base: float = 1.0, floor: float = 0.0,
                  official: bool = False) -> float:
    """The learning rate (or, with the default base 1 and floor 0, the factor on it) at ``step``.

    >>> [round(warmup_cosine(s, total=10, warm=2), 3) for s in (0, 1, 2, 6, 10, 20)]
    [0.5, 1.0, 1.0, 0.5, 0.0, 0.0]
    >>> [round(warmup_cosine(s, total=10, warm=2, official=True), 3) for s in (0, 1, 2, 6, 10)]
    [0.0, 0.5, 1.0, 0.5, 0.0]
    """
    if official:  # as the official code writes it (its exact arithmetic kept: results stay bit-identical)
        if warm <= 0:
            return 0.5 * (1.0 + math.cos(math.pi * step / total))
        if step <= warm:
            return step / warm
        return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / (total - warm)))
    if step < warm:
        return base * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return floor + 0.5 * (base - floor) * (1.0 + math.cos(math.pi * min(1.0, t)))


def param_groups(params: torch.nn.Module | Iterable[tuple[str, torch.nn.Parameter]], weight_decay: float
                 ) -> list[dict[str, Any]]:
    """AdamW groups of a module's (or of named) parameters: no weight decay on biases, norm weights and
    learned tokens (every tensor of fewer than 2 dims, and names ending in "token"); parameters that are
    not trained are left out."""
    named = params.named_parameters() if isinstance(params, torch.nn.Module) else params
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in named:
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or name.endswith("token") else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

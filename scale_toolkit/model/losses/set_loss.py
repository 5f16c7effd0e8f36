"""SET loss (paper Eq. 7): symmetric InfoNCE between the CLS/[SET] tokens of the two
disjoint clip sets of each video; the other videos of the minibatch are the negatives."""
from __future__ import annotations

import torch

from scale_toolkit.model.losses.infonce import symmetric_infonce


def set_loss(u1: torch.Tensor, u2: torch.Tensor, tau: float, sym_reduction: str = "sum") -> tuple[torch.Tensor, torch.Tensor]:
    """L_SET = L_ctr(CLS^1, CLS^2) with L2-normalised projected tokens ``u1``, ``u2`` [B, d].

    Returns (loss, accuracy of CLS^1 retrieving its own video's CLS^2).
    """
    return symmetric_infonce(u1, u2, tau, sym_reduction)

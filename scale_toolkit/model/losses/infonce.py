"""InfoNCE (paper Eqs. 2-4) on L2-normalised embeddings."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def infonce_rows(a: torch.Tensor, b: torch.Tensor, positive: torch.Tensor, tau: float,
                 with_correct: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One direction of Eq. 2 for each row of ``a``.

    ``a`` [N, d] and ``b`` [M, d] are L2-normalised; ``positive[i]`` is the row of ``b``
    paired with ``a[i]``. Returns the per-row loss ``-log softmax(a_i . b / tau)[positive_i]``
    (float32, [N]) and whether the positive has the highest similarity ([N] bool; None when
    ``with_correct`` is False).

    The logits are computed in float32; ``1/tau`` scales the [N, d] rows of ``a`` before the
    product instead of the [N, M] logits (same value up to float32 rounding, N*M/(N*d) times
    fewer divisions, and one [N, M] tensor less).
    """
    logits = (a.float() / tau) @ b.float().t()
    loss = F.cross_entropy(logits, positive, reduction="none")
    correct = logits.argmax(dim=1) == positive if with_correct else None
    return loss, correct


def symmetric_infonce(a: torch.Tensor, b: torch.Tensor, tau: float, sym_reduction: str = "sum") -> tuple[torch.Tensor, torch.Tensor]:
    """Eqs. 2-4 for paired sets: mean over i of l~(A,B)_i + l~(B,A)_i.

    ``sym_reduction="sum"`` adds the two directions as Eq. 3 writes; ``"mean"`` averages them.
    Returns (scalar loss, accuracy of the A->B direction).

    Example:
        >>> a = F.normalize(torch.randn(4, 8), dim=1)
        >>> loss, acc = symmetric_infonce(a, a, tau=0.1)
    """
    target = torch.arange(a.shape[0], device=a.device)
    l_ab, correct = infonce_rows(a, b, target, tau)
    l_ba, _ = infonce_rows(b, a, target, tau, with_correct=False)
    per_row = l_ab + l_ba
    if sym_reduction == "mean":
        per_row = per_row / 2
    return per_row.mean(), correct.float().mean()

"""InfoNCE (paper Eqs. 2-4) on L2-normalised embeddings."""
from __future__ import annotations

from typing import Literal, overload

import torch
import torch.nn.functional as F


def infonce_logits(a: torch.Tensor, b: torch.Tensor, tau: float) -> torch.Tensor:
    """float32 logits ``a . b / tau`` [N, M] of L2-normalised rows ``a`` [N, d] and ``b`` [M, d].

    ``1/tau`` scales the [N, d] rows of ``a`` before the product instead of the [N, M] logits
    (same value up to float32 rounding, N*M/(N*d) times fewer divisions, one [N, M] tensor less).
    """
    return (a.float() / tau) @ b.float().t()


@overload
def rows_loss(logits: torch.Tensor, positive: torch.Tensor,
              with_correct: Literal[True] = ...) -> tuple[torch.Tensor, torch.Tensor]: ...
@overload
def rows_loss(logits: torch.Tensor, positive: torch.Tensor,
              with_correct: bool) -> tuple[torch.Tensor, torch.Tensor | None]: ...
def rows_loss(logits: torch.Tensor, positive: torch.Tensor,
              with_correct: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One direction of Eq. 2 for each row of ``logits`` [N, M]: ``-log softmax(row)[positive]``
    (float32, [N]) and whether the positive scores highest ([N] bool; None unless ``with_correct``)."""
    loss = F.cross_entropy(logits, positive, reduction="none")
    correct = logits.argmax(dim=1) == positive if with_correct else None
    return loss, correct


@overload
def infonce_rows(a: torch.Tensor, b: torch.Tensor, positive: torch.Tensor, tau: float,
                 with_correct: Literal[True] = ...) -> tuple[torch.Tensor, torch.Tensor]: ...
@overload
def infonce_rows(a: torch.Tensor, b: torch.Tensor, positive: torch.Tensor, tau: float,
                 with_correct: bool) -> tuple[torch.Tensor, torch.Tensor | None]: ...
def infonce_rows(a: torch.Tensor, b: torch.Tensor, positive: torch.Tensor, tau: float,
                 with_correct: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One direction of Eq. 2 for each row of ``a``.

    ``a`` [N, d] and ``b`` [M, d] are L2-normalised; ``positive[i]`` is the row of ``b``
    paired with ``a[i]``. Returns the per-row loss ``-log softmax(a_i . b / tau)[positive_i]``
    (float32, [N]) and whether the positive has the highest similarity ([N] bool; None when
    ``with_correct`` is False).
    """
    return rows_loss(infonce_logits(a, b, tau), positive, with_correct)


def symmetric_infonce(a: torch.Tensor, b: torch.Tensor, tau: float,
                      sym_reduction: str = "sum") -> tuple[torch.Tensor, torch.Tensor]:
    """Eqs. 2-4 for paired sets: mean over i of l~(A,B)_i + l~(B,A)_i.

    ``sym_reduction="sum"`` adds the two directions as Eq. 3 writes; ``"mean"`` averages them.
    Returns (scalar loss, accuracy of the A->B direction).

    Example:
        >>> a = F.normalize(torch.randn(4, 8), dim=1)
        >>> loss, acc = symmetric_infonce(a, a, tau=0.1)
    """
    target = torch.arange(a.shape[0], device=a.device)
    logits = infonce_logits(a, b, tau)
    l_ab, correct = rows_loss(logits, target)
    l_ba, _ = rows_loss(logits.t(), target, with_correct=False)  # b_i . a_j: the same products
    per_row = l_ab + l_ba
    if sym_reduction == "mean":
        per_row = per_row / 2
    return per_row.mean(), correct.float().mean()

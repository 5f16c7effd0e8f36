"""Masked clip modelling loss (paper Eq. 6).

For every masked clip i, the prediction a_i (prediction head on the predictor output)
must be closer to the projected original feature b_i of that clip (target head on the
frozen backbone feature) than to the projected features of every other clip in the
pool: the other clips of the same video (hard negatives) and the clips of all other
videos of the minibatch. The symmetric term (Eq. 3) contrasts b_i against the
predictions of the pool; with output sparsity only the masked positions have predictions.
"""
from __future__ import annotations

import torch

from scale_toolkit.model.losses.infonce import infonce_logits, infonce_rows, rows_loss


def mcm_terms(pred: torch.Tensor, target: torch.Tensor, target_index: torch.Tensor, tau: float,
              symmetric: bool = True, sym_reduction: str = "sum",
              pred_pool: torch.Tensor | None = None, pred_pool_index: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-masked-clip MCM loss l^i of Eq. 3 and the prediction accuracy.

    Args:
        pred: [M, d] L2-normalised predictions at the masked positions.
        target: [N, d] L2-normalised projected original features of every clip in the pool.
        target_index: [M] row of ``target`` that holds the clip masked at each prediction.
        symmetric: add the reverse direction l~(B, A) (Eq. 3).
        pred_pool: predictions the reverse direction contrasts against; default ``pred``
            (output sparsity: only masked positions have predictions).
        pred_pool_index: [M] row of ``pred_pool`` holding each masked prediction (default arange).

    Returns:
        ([M] float32 loss per masked clip, [M] bool: target ranked first among the pool).
    """
    logits = infonce_logits(pred, target, tau)
    loss, correct = rows_loss(logits, target_index)
    if symmetric:
        if pred_pool is None:  # b_i . a_j are the masked targets' columns of the same products
            rev_logits = logits.index_select(1, target_index).t()
            rev, _ = rows_loss(rev_logits, torch.arange(pred.shape[0], device=pred.device), with_correct=False)
        else:
            if pred_pool_index is None:  # the documented default
                pred_pool_index = torch.arange(pred.shape[0], device=pred.device)
            rev, _ = infonce_rows(target[target_index], pred_pool, pred_pool_index, tau, with_correct=False)
        loss = loss + rev
        if sym_reduction == "mean":
            loss = loss / 2
    return loss, correct


def mcm_loss(per_clip: list[torch.Tensor], correct: list[torch.Tensor], n_videos: int,
             reduction: str = "paper") -> tuple[torch.Tensor, torch.Tensor]:
    """Reduce the per-masked-clip terms of one or more pools (e.g. set 1 and set 2).

    ``reduction="paper"``: Eq. 6 sums over the masked clips of a video (both sets);
    the minibatch mean is taken over videos, i.e. ``sum / n_videos``.
    ``reduction="mean"``: mean over all masked clips.
    Returns (loss, accuracy).
    """
    losses = torch.cat(per_clip)
    hits = torch.cat(correct).float()
    if losses.numel() == 0:  # no clip masked in the whole batch (Bernoulli without the >=1 rule): no MCM term
        zero = losses.sum()
        return zero, zero.detach()
    if reduction == "paper":
        loss = losses.sum() / n_videos
    else:
        loss = losses.mean()
    return loss, hits.mean()

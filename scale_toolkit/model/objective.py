"""The SCALE SSL objective (Eq. 8): weighted MCM (Eq. 6) + SET (Eq. 7) from projected embeddings."""
from __future__ import annotations

import torch

from scale_toolkit.model.config import ScaleConfig
from scale_toolkit.model.losses.mcm import mcm_loss, mcm_terms
from scale_toolkit.model.losses.set_loss import set_loss


def pooled_positions(pos: torch.Tensor, set_index: int, set_size: int) -> torch.Tensor:
    """Map flat positions ``b*K + k`` within one set to ``b*2K + s*K + k`` in the pool of both sets."""
    return (pos // set_size) * (2 * set_size) + set_index * set_size + pos % set_size


def ssl_loss(cfg: ScaleConfig, u1: torch.Tensor, u2: torch.Tensor, target: torch.Tensor,
             pred: list[torch.Tensor] | torch.Tensor, pos: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Total loss and its parts for one (global) minibatch.

    Args:
        u1, u2: [B, d] normalised projected SET tokens of set 1 / set 2.
        target: [B, 2, K, d] normalised projected original features.
        pred: per set, [M_s, d] normalised predictions at the masked clips (ordered as ``pos``);
            or [B, 2, K, d] predictions at every clip when ``cfg.pred_all_tokens``.
        pos: per set, long [M_s] flat positions ``b*K + k`` of the masked clips.
    Returns:
        dict with "loss", "mcm_loss", "set_loss", "mcm_acc", "set_acc" (0-d tensors).
    """
    b, _, k, d = target.shape
    terms, hits = [], []
    for pool_targets, positions, set_index in _mcm_pools(cfg, target, pos):
        idx = torch.cat(positions)
        # a tensor exactly when cfg.pred_all_tokens: the reverse direction contrasts against every clip's prediction
        if isinstance(pred, torch.Tensor):
            pred_pool = pred.reshape(b * 2 * k, d) if set_index is None else pred[:, set_index].reshape(b * k, d)
            masked_pred, pred_pool_index = pred_pool[idx], idx
        else:
            masked_pred = torch.cat(pred) if set_index is None else pred[set_index]
            pred_pool, pred_pool_index = None, None
        loss_terms, correct = mcm_terms(masked_pred, pool_targets, idx, cfg.tau, cfg.mcm_symmetric, cfg.sym_reduction,
                                        pred_pool, pred_pool_index)
        terms.append(loss_terms)
        hits.append(correct)
    l_mcm, acc_mcm = mcm_loss(terms, hits, n_videos=b, reduction=cfg.mcm_reduction)
    l_set, acc_set = set_loss(u1, u2, cfg.tau_set, cfg.sym_reduction)
    total = cfg.mcm_weight * l_mcm + cfg.set_weight * l_set
    if cfg.normalize_loss_weights:
        total = total / (cfg.mcm_weight + cfg.set_weight)
    return {"loss": total, "mcm_loss": l_mcm.detach(), "set_loss": l_set.detach(),
            "mcm_acc": acc_mcm.detach(), "set_acc": acc_set.detach()}


def _mcm_pools(cfg: ScaleConfig, target: torch.Tensor, pos: list[torch.Tensor]
               ) -> list[tuple[torch.Tensor, list[torch.Tensor], int | None]]:
    """The MCM candidate pools: (targets [n, d], masked positions in them, set index or None for both sets)."""
    b, _, k, d = target.shape
    if cfg.mcm_pool_sets:
        return [(target.reshape(b * 2 * k, d), [pooled_positions(set_pos, s, k) for s, set_pos in enumerate(pos)], None)]
    return [(target[:, s].reshape(b * k, d), [pos[s]], s) for s in range(2)]

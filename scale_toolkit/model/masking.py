"""Random set splits and clip masks, drawn on the device from an explicit generator."""
from __future__ import annotations

import math

import torch


def n_masked(set_size: int, ratio: float) -> int:
    """Number of masked clips per set in ``fixed`` mode: round(ratio * K), at least 1, at most K-1."""
    return min(set_size - 1, max(1, int(math.floor(ratio * set_size + 0.5))))


def sample_mask(batch: int, set_size: int, ratio: float, mode: str, generator: torch.Generator | None = None,
                device: torch.device | str = "cpu", min_one: bool = True) -> torch.Tensor:
    """Bool mask [batch, set_size]; True = masked. At least one clip of every set is masked
    unless ``min_one=False`` (bernoulli only: a set may then have none, as in the official code).

    ``fixed``: exactly ``n_masked(set_size, ratio)`` clips at random positions.
    ``bernoulli``: each clip independently with probability ``ratio``; a set that drew no
    masked clip gets one at a random position.

    Example:
        >>> m = sample_mask(4, 8, 0.25, "fixed")
        >>> m.sum(1).tolist()
        [2, 2, 2, 2]
    """
    noise = torch.rand(batch, set_size, generator=generator, device=device)
    if mode == "fixed":
        k = n_masked(set_size, ratio)
        rank = noise.argsort(dim=1).argsort(dim=1)
        return rank < k
    mask = noise < ratio
    if not min_one:
        return mask
    fallback = torch.nn.functional.one_hot(noise.argmin(dim=1), set_size).bool()
    empty = ~mask.any(dim=1, keepdim=True)
    return mask | (fallback & empty)


def sample_sets(batch: int, n_clips: int, set_size: int, generator: torch.Generator | None = None,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """Clip indices [batch, 2, set_size] of two disjoint random sets per video (a fresh split every call)."""
    perm = torch.rand(batch, n_clips, generator=generator, device=device).argsort(dim=1)
    return perm[:, : 2 * set_size].reshape(batch, 2, set_size)


def masked_slots(mask: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``count`` masked positions of each row of ``mask`` [S, K], in increasing order.

    Returns positions (long [S, count]) and whether each slot is a masked clip (bool [S, count]);
    rows with fewer masked clips are padded with unmasked positions (``False`` slots).

    Example:
        >>> masked_slots(torch.tensor([[False, True, False, True], [True, False, False, False]]), 2)
        (tensor([[1, 3],
                [0, 1]]), tensor([[ True,  True],
                [ True, False]]))
    """
    pos = torch.sort((~mask).to(torch.uint8), dim=1, stable=True).indices[:, :count]
    return pos, mask.gather(1, pos)

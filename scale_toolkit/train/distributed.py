"""torchrun / DDP helpers: environment detection and all-gather with gradient."""
from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from scale_toolkit.runtime import DistInfo, dist_from_env

__all__ = ["DistInfo", "dist_from_env", "gather_rows", "init_process_group"]


def init_process_group(info: DistInfo, device: torch.device) -> bool:
    """Initialise the default group (nccl on CUDA, gloo otherwise) if needed; True if this call created it."""
    if not info.enabled or dist.is_initialized():
        return False
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=info.rank, world_size=info.world_size)
    return True


class _GatherCat(torch.autograd.Function):
    """Concatenate a tensor's rows over all ranks; the gradient of every rank's (identical)
    loss is summed across ranks and each rank keeps the slice of its own rows."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:  # type: ignore[override]
        world_size, rank = dist.get_world_size(), dist.get_rank()
        pad = x.new_zeros((max(sizes),) + tuple(x.shape[1:]))
        pad[: x.shape[0]] = x
        bufs = [torch.empty_like(pad) for _ in range(world_size)]
        dist.all_gather(bufs, pad.contiguous())
        ctx.offset = sum(sizes[:rank])
        ctx.n = x.shape[0]
        return torch.cat([bufs[r][: sizes[r]] for r in range(world_size)])

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        g = g.contiguous()
        dist.all_reduce(g)
        return g[ctx.offset: ctx.offset + ctx.n], None


def gather_rows(x: torch.Tensor, sizes: list[int] | None = None) -> torch.Tensor:
    """All-gather (with gradient) along dim 0; ``sizes`` per rank if they differ (else equal sizes assumed)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    if sizes is None:
        sizes = [x.shape[0]] * dist.get_world_size()
    gathered: torch.Tensor = _GatherCat.apply(x, sizes)
    return gathered

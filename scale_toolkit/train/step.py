"""One SSL minibatch on the device: draw two clip sets and masks, forward, losses.

Everything is indexed on the device from the resident float16 store: no per-sample Python.
"""
from __future__ import annotations

from contextlib import contextmanager
from functools import partial
from typing import Callable, Iterator

import torch
from torch import nn

from scale_toolkit.model.config import ScaleConfig
from scale_toolkit.model.masking import n_masked, sample_mask, sample_sets
from scale_toolkit.model.objective import ssl_loss
from scale_toolkit.model.scale import ScaleModel
from scale_toolkit.train.distributed import gather_rows


class SSLForward(nn.Module):
    """``ScaleModel.ssl_embeddings`` as a module forward (what DDP wraps)."""

    def __init__(self, model: ScaleModel):
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor, coords: torch.Tensor, mask: torch.Tensor  # type: ignore[override]
                ) -> dict[str, torch.Tensor]:
        return self.model.ssl_embeddings(features, coords, mask)


def draw_views(cfg: ScaleConfig, batch: int, n_clips: int, generator: torch.Generator,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip indices [B, 2, K] of two disjoint random sets and their masks [B, 2, K]."""
    sets = sample_sets(batch, n_clips, cfg.set_size, generator, device)
    mask = sample_mask(batch * 2, cfg.set_size, cfg.mask_ratio, cfg.mask_mode, generator, device, cfg.mask_min_one)
    return sets, mask.view(batch, 2, cfg.set_size)


def masked_positions(mask: torch.Tensor, cfg: ScaleConfig) -> torch.Tensor:
    """Flat positions (row-major) of the True entries of ``mask`` [B, K]; no host sync in fixed mode."""
    flat = mask.reshape(-1)
    if cfg.mask_mode == "fixed":
        try:
            return torch.nonzero_static(flat, size=mask.shape[0] * n_masked(cfg.set_size, cfg.mask_ratio)).squeeze(1)
        except (NotImplementedError, RuntimeError):  # a backend without nonzero_static
            pass
    return flat.nonzero().squeeze(1)


def ssl_batch_losses(fwd: nn.Module, cfg: ScaleConfig, feats: torch.Tensor, coords: torch.Tensor,
                     idx: torch.Tensor, sets: torch.Tensor, mask: torch.Tensor, lo: int, hi: int,
                     world_size: int = 1, autocast_dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Losses of the global minibatch ``idx`` (rows ``lo:hi`` computed on this rank).

    ``feats`` [N, V, D] float16 and ``coords`` [N, V, pos_dim] are the resident store; ``sets`` and
    ``mask`` [B, 2, K] are drawn for the whole global batch (identically on every rank).
    """
    k = cfg.set_size
    local_videos, local_sets, local_mask = idx[lo:hi], sets[lo:hi], mask[lo:hi]
    b = local_videos.shape[0]
    clip = local_sets.reshape(b, 2 * k)
    batch_feats = feats[local_videos[:, None], clip].view(b, 2, k, -1)
    batch_coords = coords[local_videos[:, None], clip].view(b, 2, k, coords.shape[-1])
    pos_local = [masked_positions(local_mask[:, s], cfg) for s in range(2)]
    with torch.autocast(feats.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        emb = fwd(batch_feats, batch_coords, local_mask)
    pos_global = [masked_positions(mask[:, s], cfg) for s in range(2)] if world_size > 1 else pos_local
    gather = gather_rows if world_size > 1 else (lambda x, sizes=None: x)  # one process (held-out metrics under DDP too)
    u1, u2, target = gather(emb["u1"]), gather(emb["u2"]), gather(emb["target"])
    if cfg.pred_all_tokens:
        pred = gather(emb["pred"])
    else:
        n0 = pos_local[0].shape[0]
        pred_sets = [emb["pred"][:n0], emb["pred"][n0:]]
        if world_size > 1:
            if cfg.mask_mode == "fixed":
                sizes = [[b * n_masked(k, cfg.mask_ratio)] * world_size] * 2
            else:
                counts = mask.view(world_size, b, 2, k).sum(dim=(1, 3)).tolist()  # [W][2]
                sizes = [[int(r[s]) for r in counts] for s in range(2)]
            pred_sets = [gather_rows(set_pred, set_sizes) for set_pred, set_sizes in zip(pred_sets, sizes)]
        pred = pred_sets
    return ssl_loss(cfg, u1, u2, target, pred, pos_global)


def make_loss_fn(fwd: nn.Module, cfg: ScaleConfig, feats: torch.Tensor, coords: torch.Tensor,
                 compile: bool = False) -> Callable[..., dict[str, torch.Tensor]]:
    """``ssl_batch_losses`` bound to the model and the resident store: call it with
    ``(idx, sets, mask, lo, hi, world_size, autocast_dtype)``.

    ``compile=True`` hands the whole forward and loss to ``torch.compile`` (single process): it
    fuses the element-wise work around the matmuls (GELU, layer norms, normalisation, softmax):
    0-15 % off a CPU step at the paper's size, after a one-time compile of up to a minute.
    """
    fn = partial(ssl_batch_losses, fwd, cfg, feats, coords)
    return torch.compile(fn) if compile else fn


@contextmanager
def fp32_matmul_precision(device: torch.device, autocast_dtype: torch.dtype | None) -> Iterator[None]:
    """Hold around a bf16 CPU step (forward and backward): lets oneDNN run the fp32 matmuls that
    autocast leaves, the InfoNCE logits, which MKL runs at half its fp32 rate on these [1024, 256] x
    [256, 4096] shapes. oneDNN may use bf16 inputs (fp32 accumulation) where the CPU favours it,
    as the bf16 step already does for every other matmul; measured on AMD EPYC: logits equal to
    2e-6 and 2x faster. fp32 runs and other devices are left as they are."""
    if device.type != "cpu" or autocast_dtype != torch.bfloat16:
        yield
        return
    # the process-wide setting ("medium" = oneDNN bf16 on CPU): torch refuses to read it back
    # (torch.compile does) once the per-backend API has set a different value
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)

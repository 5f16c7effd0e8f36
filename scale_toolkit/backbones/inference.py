"""Running a frozen backbone on clip batches: no grad, the module's device, optional bf16 autocast."""
from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

from ..errors import ScaleError

COMPUTE_DTYPES = ("fp32", "bf16")  # resolved precisions (scale_toolkit.precision turns "auto" into one)
# bf16 autocast vs fp32: relative L2 error of the clip feature; measured 0.002-0.005 on random-weight ViT,
# TimeSformer, Slow-R50 and per-frame models (cosine > 0.9999), so 0.02 leaves a 4x margin. It is
# ||f_bf16 - f_fp32|| / ||f_fp32||, checked by tests/backbones/test_backbone_registry.py.
BF16_RELATIVE_TOLERANCE = 0.02


def autocast_context(device: torch.device, precision: str):
    if precision not in COMPUTE_DTYPES:
        raise ScaleError(f"unknown precision '{precision}'; choose one of {', '.join(COMPUTE_DTYPES)}")
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def embed_clips(module: nn.Module, clips: torch.Tensor, batch_size: int = 8, precision: str = "fp32") -> torch.Tensor:
    """Features [N, D] (float32, on CPU) for normalised clips [N, 3, T, H, W], computed in batches.

    >>> from scale_toolkit.backbones import load_backbone
    >>> bb = load_backbone("tiny")
    >>> embed_clips(bb.module, torch.zeros(3, 3, 8, 64, 64), batch_size=2).shape
    torch.Size([3, 64])
    """
    if clips.ndim != 5 or clips.shape[1] != 3:
        raise ScaleError(f"clips must be [N, 3, T, H, W]; got {tuple(clips.shape)}")
    first = next(module.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    outputs = []
    with torch.inference_mode(), autocast_context(device, precision):
        for start in range(0, clips.shape[0], batch_size):
            batch = clips[start:start + batch_size].to(device, dtype=torch.float32, non_blocking=True)
            outputs.append(module(batch).float().cpu())
    return torch.cat(outputs) if outputs else torch.empty(0, 0)

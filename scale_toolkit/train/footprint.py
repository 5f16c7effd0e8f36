"""What one SSL training step holds besides the data: what `--max-memory` keeps back for it.

An estimate from the model's shape, fitted on this machine's measurements (peak RSS growth of
three steps, `/proc/self/status` VmHWM, fp32, AMD EPYC AVX2) over batches 64-512, D 384-2048,
hidden 64-512, 1-4 layers, head widths 512-1024: it was 1.0-1.26x the measured growth for every
one of them (benchmarks/RESULTS.md, "--max-memory bounds the process"). Per clip token it counts
the gathered and normalised input, the target head's hidden layers and the transformer blocks
(activations kept for the backward pass and their gradients); per set the InfoNCE logits of the
masked clips against the pool (logits, softmax, gradient); per parameter its gradient and AdamW's
two moments; and a fixed part for the allocator and threads; then 20 % for the heap's growth
over an epoch.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from scale_toolkit.model.config import ScaleConfig
from scale_toolkit.model.masking import n_masked

_FIXED = 64 << 20
# the heap grows a little over an epoch's steps (it is not trimmed while training, host_memory.py): a
# 13-step epoch at 10k videos grew 713 MiB where three steps grew 553 and the one-step estimate is 625
_OVER_AN_EPOCH = 1.2


def parameter_count(cfg: ScaleConfig) -> int:
    """The model's parameters, counted on the meta device (no memory)."""
    from scale_toolkit.model.scale import ScaleModel

    with torch.device("meta"):
        return sum(p.numel() for p in ScaleModel(cfg).parameters())


def ssl_step_bytes(cfg: ScaleConfig, batch: int, input_dim: int) -> int:
    """Bytes one training step of `batch` videos (this process's share) needs at its peak.

    >>> small = ssl_step_bytes(ScaleConfig(input_dim=768, hidden=64, layers=1, heads=2), 512, 768)
    >>> 713 <= small / 2**20 < 800  # measured: 553 MiB over three steps, 713 over a 13-step epoch
    True
    """
    cfg = replace(cfg, input_dim=input_dim)
    tokens = batch * 2 * cfg.set_size
    masked = batch * n_masked(cfg.set_size, cfg.mask_ratio)  # per set (bernoulli: the same on average)
    pool = batch * cfg.set_size * (2 if cfg.mcm_pool_sets else 1)
    per_token = (12 * input_dim + 16 * cfg.head_hidden * max(0, cfg.head_layers - 1)
                 + int(20 * cfg.mlp_ratio * cfg.hidden) * cfg.layers)
    one_step = _FIXED + 16 * parameter_count(cfg) + tokens * per_token + 2 * 12 * masked * pool
    return int(_OVER_AN_EPOCH * one_step)

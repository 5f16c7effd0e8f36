"""MLP probe: the nonlinear baseline on frozen clip features, softmax-averaged over a video's clips.

One hidden layer (Linear -> GELU -> Dropout -> Linear), behind a BatchNorm without affine
parameters or the fixed input scale of `linear.InputScale`. Width and dropout are grid entries (default width 1024, dropout 0).

Example:
    >>> import torch
    >>> mlp_head(768, 51, hidden=512)(torch.randn(3, 768)).shape
    torch.Size([3, 51])
"""
from __future__ import annotations

from torch import nn

from .linear import input_norm


def mlp_head(in_dim: int, n_classes: int, hidden: int = 1024, dropout: float = 0.0, batchnorm: bool = False) -> nn.Sequential:
    return nn.Sequential(
        input_norm(in_dim, batchnorm),
        nn.Linear(in_dim, hidden),
        nn.GELU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, n_classes),
    )

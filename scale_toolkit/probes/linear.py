"""Linear probe: a per-clip linear softmax classifier whose probabilities are averaged over a video's clips.

The Linear baseline feeds it the frozen clip feature C_i; SCALE_linear feeds it the concatenation
[C_i || SET] (or [C̃_i || SET], [C_i || C̃_i || SET] with refined clip features C̃_i). An optional
BatchNorm without affine parameters sits in front, as the paper found beneficial for MAE-family
backbones; without it, a fixed global scalar (1 / RMS of the training inputs) does, so the
learning-rate grid means the same on every backbone.

Example:
    >>> import torch
    >>> head = linear_head(768, 101, batchnorm=True)
    >>> head(torch.randn(4, 768)).shape
    torch.Size([4, 101])
"""
from __future__ import annotations

import torch
from torch import nn


class InputScale(nn.Module):
    """Multiply by one fixed scalar (a buffer, not learned): 1 / RMS of the training inputs' entries.

    Used in front of a clip head when BatchNorm is off, so that learning rates and weight decays
    mean the same on every backbone whatever its feature magnitude. A global scalar does not change
    the set of functions a linear (or MLP) head can represent, only the units of its optimisation.
    """

    scale: torch.Tensor  # the buffer

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(()))

    @torch.no_grad()
    def fit_mean_square(self, mean_square: torch.Tensor) -> "InputScale":
        """The scale from the inputs' mean squared entry (ClipTable.mean_square): 1 / RMS."""
        self.scale.fill_(float(1.0 / mean_square.clamp_min(1e-12).sqrt()))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def input_norm(in_dim: int, batchnorm: bool) -> nn.Module:
    """BatchNorm1d without affine parameters (cumulative statistics), or the fixed InputScale."""
    return nn.BatchNorm1d(in_dim, affine=False, momentum=None) if batchnorm else InputScale()


def linear_head(in_dim: int, n_classes: int, batchnorm: bool = False, official: bool = False) -> nn.Sequential:
    """[BatchNorm1d(affine=False)] -> Linear(in_dim, n_classes); weights N(0, 0.01), zero bias (as DINO).

    The BatchNorm keeps a cumulative average of the batch statistics (momentum=None), so with
    full-batch training its eval statistics are exactly those of the training clips. Without it,
    an `InputScale` (fitted by the training loop) puts the inputs on unit RMS.

    ``official``: the head of the official eval code (probes/official_fit.py) instead: PyTorch's default
    Linear init, and its BatchNorm with the default momentum (0.1) or no input normalisation at all.
    """
    linear = nn.Linear(in_dim, n_classes)
    if official:
        return nn.Sequential(nn.BatchNorm1d(in_dim, affine=False) if batchnorm else nn.Identity(), linear)
    nn.init.normal_(linear.weight, std=0.01)
    nn.init.zeros_(linear.bias)
    return nn.Sequential(input_norm(in_dim, batchnorm), linear)

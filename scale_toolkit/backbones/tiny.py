"""`tiny`: a small, fast 3-D conv net with fixed seeded weights, for tests and the demo."""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from ..seeding import seeded
from .builder import build_backbone, single_file_filter
from .registry import register_backbone
from .spec import KINETICS_MEAN, KINETICS_STD, BackboneSpec, LoadedBackbone

TINY_SPEC = BackboneSpec(
    name="tiny",
    family="tiny",
    frames=8,
    stride=2,
    crop_size=64,
    mean=KINETICS_MEAN,
    std=KINETICS_STD,
    feature_dim=64,
    pooling="global average pool",
    checkpoint_formats=("state_dict (.pt)",),
    weights_hint="built in; seeded random weights, no download",
)


class TinyVideoNet(nn.Module):
    """Conv3d stem with a temporal kernel, so features see motion, then global pooling."""

    def __init__(self, dim: int = 64) -> None:
        super().__init__()
        self.stem = nn.Conv3d(3, 24, kernel_size=(3, 7, 7), stride=(1, 4, 4), padding=(1, 3, 3))
        self.block = nn.Conv3d(24, 48, kernel_size=(3, 3, 3), stride=(2, 2, 2), padding=1)
        self.proj = nn.Linear(48 * 2, dim)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(clips))
        x = torch.relu(self.block(x))
        # mean and max pooling both: cheap, and keeps where-in-time information in the max
        pooled = torch.cat([x.mean(dim=(2, 3, 4)), x.amax(dim=(2, 3, 4))], dim=1)
        return self.proj(pooled)


def build_tiny(seed: int = 0) -> TinyVideoNet:
    return seeded(lambda: TinyVideoNet(TINY_SPEC.feature_dim), seed)


@register_backbone("tiny", TINY_SPEC, needs_checkpoint=False)
def make_tiny(checkpoint=None, random_init=False, strict=True, **options) -> LoadedBackbone:
    loaded = build_backbone(TINY_SPEC, build_tiny, checkpoint, single_file_filter(dict, "tiny checkpoint"), strict)
    if checkpoint is None:  # its seeded weights are the built-in tiny backbone, not an accident of --random-init
        loaded = replace(loaded, checkpoint_sha256="builtin-tiny-seed0")
    return loaded

"""What the rest of the toolkit needs to know about a backbone, and what loading one returns."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    """How clips must be sampled and normalised for a backbone, and what it returns.

    The backbone module always takes float clips `[B, 3, T, H, W]` already normalised
    with `mean`/`std` (channels RGB, values in [0, 1] before normalisation) and returns
    features `[B, feature_dim]`; any other layout is handled inside the module.
    """

    name: str
    family: str
    frames: int
    stride: int
    crop_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    feature_dim: int
    pooling: str
    checkpoint_formats: tuple[str, ...] = ()  # the first is the format the authors publish
    weights_hint: str = ""
    input_layout: str = "[B, 3, T, H, W] float, RGB, normalised with mean/std"
    options: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        d["checkpoint_formats"] = list(self.checkpoint_formats)
        return d


@dataclass
class LoadedBackbone:
    """A frozen backbone ready for extraction."""

    module: torch.nn.Module
    spec: BackboneSpec
    checkpoint_sha256: str  # "random-init" when no checkpoint was loaded
    skipped_keys: list[str] = field(default_factory=list)  # only with strict=False

"""ρBYOL Slow-R50 (PySlowFast): a 3-D ResNet-50 with PySlowFast's layer names, feature = GAP of res5 (2048-d).

Weights: facebookresearch/SlowFast projects/contrastive_ssl (BYOL_SlowR50_{8x8,16x4}_T*_epoch_00200.pyth).
A checkpoint's `model_state` holds the online encoder under `backbone.` and the momentum encoder under
`backbone_hist.`; SCALE used the momentum encoder, SlowFast's own linear evaluation the online one.
"""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from ..errors import ScaleError
from .builder import build_backbone, single_file_filter
from .checkpoint import preview_keys, strip_prefix, unwrap_state
from .registry import register_backbone
from .spec import KINETICS_MEAN, KINETICS_STD, BackboneSpec, LoadedBackbone

# PySlowFast "slow" arch: temporal kernel of conv1 and of the first conv of each block in res2..res5
TEMPORAL_KERNELS = {"s1": 1, "s2": 1, "s3": 1, "s4": 3, "s5": 3}
# (blocks, inner width, output width, spatial stride) for res2..res5 of ResNet-50
STAGES = {"s2": (3, 64, 256, 1), "s3": (4, 128, 512, 2), "s4": (6, 256, 1024, 2), "s5": (3, 512, 2048, 2)}
BN_EPS = 1e-5
VARIANT_SAMPLING = {"16x4": (16, 4), "8x8": (8, 8)}
ENCODER_PREFIXES = {"momentum": "backbone_hist.", "online": "backbone."}

SPEC = BackboneSpec(
    name="rhobyol",
    family="slow_r50",
    frames=16,
    stride=4,
    crop_size=224,
    mean=KINETICS_MEAN,
    std=KINETICS_STD,
    feature_dim=2048,
    pooling="global average pool of res5",
    checkpoint_formats=(
        "pyslowfast (.pyth ['model_state'], backbone_hist.* momentum / backbone.* online)",
        "encoder state dict (s1.* .. s5.*)",
    ),
    weights_hint="ρBYOL Slow-R50 BYOL_SlowR50_16x4_T4_epoch_00200.pyth (or 8x8) from "
    "dl.fbaipublicfiles.com/pyslowfast/videomoco_models/, listed in facebookresearch/SlowFast "
    "projects/contrastive_ssl/README.md",
    options={"variant": "16x4", "encoder": "momentum"},
)


class Stem(nn.Module):
    """conv 1x7x7 stride (1,2,2), BN, ReLU, max-pool 1x3x3 stride (1,2,2)."""

    def __init__(self) -> None:
        super().__init__()
        t = TEMPORAL_KERNELS["s1"]
        self.conv = nn.Conv3d(3, 64, (t, 7, 7), stride=(1, 2, 2), padding=(t // 2, 3, 3), bias=False)
        self.bn = nn.BatchNorm3d(64, eps=BN_EPS)
        self.pool_layer = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool_layer(torch.relu(self.bn(self.conv(x))))


class Bottleneck(nn.Module):
    """PySlowFast BottleneckTransform: a (Tx1x1) -> b (1x3x3, spatial stride) -> c (1x1x1)."""

    def __init__(self, dim_in: int, dim_inner: int, dim_out: int, temporal_kernel: int, stride: int) -> None:
        super().__init__()
        t = temporal_kernel
        self.a = nn.Conv3d(dim_in, dim_inner, (t, 1, 1), padding=(t // 2, 0, 0), bias=False)
        self.a_bn = nn.BatchNorm3d(dim_inner, eps=BN_EPS)
        self.b = nn.Conv3d(dim_inner, dim_inner, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False)
        self.b_bn = nn.BatchNorm3d(dim_inner, eps=BN_EPS)
        self.c = nn.Conv3d(dim_inner, dim_out, 1, bias=False)
        self.c_bn = nn.BatchNorm3d(dim_out, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.a_bn(self.a(x)))
        x = torch.relu(self.b_bn(self.b(x)))
        return self.c_bn(self.c(x))


class ResBlock(nn.Module):
    def __init__(self, dim_in: int, dim_inner: int, dim_out: int, temporal_kernel: int, stride: int) -> None:
        super().__init__()
        if dim_in != dim_out or stride != 1:
            self.branch1 = nn.Conv3d(dim_in, dim_out, 1, stride=(1, stride, stride), bias=False)
            self.branch1_bn = nn.BatchNorm3d(dim_out, eps=BN_EPS)
        else:
            self.branch1 = None
        self.branch2 = Bottleneck(dim_in, dim_inner, dim_out, temporal_kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.branch1 is None else self.branch1_bn(self.branch1(x))
        return torch.relu(shortcut + self.branch2(x))


class _Pathway(nn.Module):
    """A module whose children are named `pathway0_<suffix>{i}`, PySlowFast's single-pathway naming."""

    def __init__(self, suffix: str, modules: list[nn.Module]) -> None:
        super().__init__()
        if suffix == "stem":
            self.add_module("pathway0_stem", modules[0])
        else:
            for i, module in enumerate(modules):
                self.add_module(f"pathway0_res{i}", module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.children():
            x = module(x)
        return x


class SlowR50(nn.Module):
    """Slow-only ResNet-50; no temporal downsampling, so any frame count works. Returns [B, 2048]."""

    def __init__(self) -> None:
        super().__init__()
        self.s1 = _Pathway("stem", [Stem()])
        dim_in = 64
        for stage, (blocks, inner, out, stride) in STAGES.items():
            layers = [
                ResBlock(dim_in if i == 0 else out, inner, out, TEMPORAL_KERNELS[stage], stride if i == 0 else 1)
                for i in range(blocks)
            ]
            self.add_module(stage, _Pathway("res", layers))
            dim_in = out
        # PySlowFast's pathway0_pool after s2 is a 1x1x1 max-pool for the slow arch: an identity, omitted

    feature_dim = 2048

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        x = clips.to(self.s1.pathway0_stem.conv.weight.dtype)
        for stage in (self.s1, self.s2, self.s3, self.s4, self.s5):
            x = stage(x)
        return x.mean(dim=(2, 3, 4)).float()


def encoder_state(raw: dict, encoder: str) -> dict:
    """The res-net part (s1..s5) of one encoder from a PySlowFast checkpoint or a bare encoder state dict."""
    state = unwrap_state(raw)
    prefix = ENCODER_PREFIXES[encoder]
    if any(k.startswith(("backbone.", "backbone_hist.")) for k in state):
        picked = strip_prefix(state, prefix)
        if not picked:
            other = "online" if encoder == "momentum" else "momentum"
            raise ScaleError(
                f"checkpoint has no {encoder} encoder ({prefix}* keys); use --encoder {other}"
            )
    elif any(k.startswith("module.") for k in state):
        picked = strip_prefix(state, "module.")
    else:
        picked = state
    # heads, projection/predictor MLPs, queues and kNN memories are not part of the clip feature
    encoder_keys = {k: v for k, v in picked.items() if k.split(".", 1)[0] in TEMPORAL_KERNELS}
    if not encoder_keys:
        raise ScaleError(
            f"no Slow-R50 layers (s1.* .. s5.*) in the checkpoint (keys: {preview_keys(picked)}); "
            "expected a PySlowFast ρBYOL .pyth file"
        )
    return encoder_keys


@register_backbone("rhobyol", SPEC)
def make_rhobyol(
    checkpoint=None, random_init=False, strict=True, variant="16x4", encoder="momentum", **options
) -> LoadedBackbone:
    """ρBYOL Slow-R50; `variant` 16x4 (default) or 8x8 sets the clip sampling, `encoder` momentum|online."""
    if options:
        raise ScaleError(f"backbone 'rhobyol' does not take {', '.join(sorted(options))}; it takes variant, encoder")
    if variant not in VARIANT_SAMPLING:
        raise ScaleError(f"unknown rhobyol variant '{variant}'; choose one of {', '.join(VARIANT_SAMPLING)}")
    if encoder not in ENCODER_PREFIXES:
        raise ScaleError(f"unknown encoder '{encoder}'; choose momentum (as SCALE) or online (as SlowFast's eval)")
    frames, stride = VARIANT_SAMPLING[variant]
    spec = replace(SPEC, frames=frames, stride=stride, options={"variant": variant, "encoder": encoder})
    keep_encoder = single_file_filter(lambda raw: encoder_state(raw, encoder), f"ρBYOL {encoder} encoder in")
    return build_backbone(spec, SlowR50, checkpoint, keep_encoder, strict)

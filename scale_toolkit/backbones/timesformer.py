"""SVT: TimeSformer ViT-B/16 with divided space-time attention; feature = CLS token after the final norm.

Weights: kahnchana/svt release v1.0 `kinetics400_vitb_ssl.pth`, a flat dict whose encoder keys carry a
`backbone.` prefix next to the DINO projection head (`head.*`, dropped). DINO-style {'teacher', 'student'}
files are read too (teacher first, as DINO's own evaluation does).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ScaleError
from .builder import build_backbone, single_file_filter
from .checkpoint import preview_keys, strip_prefix, unwrap_state
from .registry import register_backbone
from .spec import KINETICS_MEAN, KINETICS_STD, BackboneSpec, LoadedBackbone
from .video_vit import Attention, Mlp

# 8x32 is SVT's own evaluation sampling (TimeSformer_divST_8x32_224); 16x4 is what SCALE fed it
VARIANT_SAMPLING = {"8x32": (8, 32), "16x4": (16, 4)}

SPEC = BackboneSpec(
    name="svt",
    family="timesformer",
    frames=8,
    stride=32,
    crop_size=224,
    mean=KINETICS_MEAN,
    std=KINETICS_STD,
    feature_dim=768,
    pooling="CLS token after the final norm",
    checkpoint_formats=("svt release (.pth, backbone.* + DINO head.*)", "TimeSformer state dict (no prefix)"),
    weights_hint="SVT kinetics400_vitb_ssl.pth from github.com/kahnchana/svt/releases/tag/v1.0",
    options={"variant": "8x32"},
)


@dataclass(frozen=True)
class TimeSformerConfig:
    width: int = 768
    depth: int = 12
    heads: int = 12
    mlp_hidden: int = 3072
    patch_size: int = 16
    frames: int = 8
    image_size: int = 224
    norm_eps: float = 1e-6


class DividedBlock(nn.Module):
    """Temporal attention (per spatial location), then spatial attention (per frame, with the CLS), then MLP."""

    def __init__(self, cfg: TimeSformerConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.attn = Attention(cfg.width, cfg.heads, "qkv")
        self.temporal_norm1 = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.temporal_attn = Attention(cfg.width, cfg.heads, "qkv")
        self.temporal_fc = nn.Linear(cfg.width, cfg.width)
        self.norm2 = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.mlp = Mlp(cfg.width, cfg.mlp_hidden)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        batch, length, width = x.shape
        places = (length - 1) // frames  # spatial positions; tokens are ordered (place, time)
        cls, tokens = x[:, :1], x[:, 1:]
        along_time = tokens.reshape(batch * places, frames, width)
        temporal = self.temporal_attn(self.temporal_norm1(along_time)).reshape(batch, places * frames, width)
        tokens = tokens + self.temporal_fc(temporal)

        per_frame = tokens.reshape(batch, places, frames, width).transpose(1, 2).reshape(batch * frames, places, width)
        cls_per_frame = cls.expand(batch, frames, width).reshape(batch * frames, 1, width)
        spatial = self.attn(self.norm1(torch.cat([cls_per_frame, per_frame], dim=1)))
        # the CLS update is the mean of its per-frame updates
        cls_update = spatial[:, 0].reshape(batch, frames, width).mean(dim=1, keepdim=True)
        patch_update = spatial[:, 1:].reshape(batch, frames, places, width).transpose(1, 2).reshape(batch, -1, width)
        x = torch.cat([cls, tokens], dim=1) + torch.cat([cls_update, patch_update], dim=1)
        return x + self.mlp(self.norm2(x))


class PatchEmbed2d(nn.Module):
    def __init__(self, width: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size)


class TimeSformer(nn.Module):
    """Divided space-time ViT on clips [B, 3, T, H, W]; returns the normed CLS token [B, width]."""

    def __init__(self, cfg: TimeSformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        grid = cfg.image_size // cfg.patch_size
        self.patch_embed = PatchEmbed2d(cfg.width, cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, cfg.width))
        self.time_embed = nn.Parameter(torch.zeros(1, cfg.frames, cfg.width))
        self.blocks = nn.ModuleList(DividedBlock(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)

    @property
    def feature_dim(self) -> int:
        return self.cfg.width

    def _spatial_positions(self, h: int, w: int) -> torch.Tensor:
        table = self.pos_embed[:, 1:]
        side = int(round(table.shape[1] ** 0.5))
        if (h, w) == (side, side):
            return table
        # nearest resampling, as TimeSformer/SVT do for other input sizes
        grid = table.reshape(1, side, side, -1).permute(0, 3, 1, 2)
        return F.interpolate(grid, size=(h, w), mode="nearest").flatten(2).transpose(1, 2)

    def _time_positions(self, frames: int) -> torch.Tensor:
        if frames == self.time_embed.shape[1]:
            return self.time_embed
        return F.interpolate(self.time_embed.transpose(1, 2), size=frames, mode="nearest").transpose(1, 2)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        clips = clips.to(self.patch_embed.proj.weight.dtype)
        batch, _, frames, height, width_px = clips.shape
        images = clips.transpose(1, 2).reshape(batch * frames, 3, height, width_px)
        patches = self.patch_embed.proj(images)  # [B*T, D, h, w]
        h, w = patches.shape[2:]
        patches = patches.flatten(2).transpose(1, 2) + self._spatial_positions(h, w)  # [B*T, h*w, D]
        dim = patches.shape[-1]
        # to (place, time) order and add the time embedding
        tokens = patches.reshape(batch, frames, h * w, dim).transpose(1, 2) + self._time_positions(frames)[:, None]
        tokens = tokens.reshape(batch, h * w * frames, dim)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(batch, -1, -1)
        x = torch.cat([cls.to(tokens.dtype), tokens], dim=1)
        for block in self.blocks:
            x = block(x, frames)
        return self.norm(x)[:, 0].float()


def svt_encoder_state(raw: dict) -> dict:
    """TimeSformer weights from an SVT release file: keep `backbone.*`, drop the DINO head and any classifier."""
    for key in ("teacher", "student"):
        if isinstance(raw.get(key), dict):
            raw = raw[key]
            break
    state = unwrap_state(raw)
    if any(k.startswith("module.") for k in state):
        state = strip_prefix(state, "module.")
    if any(k.startswith("backbone.") for k in state):
        state = strip_prefix(state, "backbone.")
    elif not any(k.startswith("blocks.") for k in state):
        raise ScaleError(
            f"not an SVT/TimeSformer checkpoint (keys: {preview_keys(state)}); expected backbone.* or blocks.* keys"
        )
    return {k: v for k, v in state.items() if not k.startswith("head.")}


@register_backbone("svt", SPEC)
def make_svt(checkpoint=None, random_init=False, strict=True, variant="8x32", **options) -> LoadedBackbone:
    """SVT TimeSformer; `variant` 8x32 (SVT's eval sampling) or 16x4 (as SCALE, time embedding interpolated)."""
    if options:
        raise ScaleError(f"backbone 'svt' does not take {', '.join(sorted(options))}; it takes variant")
    if variant not in VARIANT_SAMPLING:
        raise ScaleError(f"unknown svt variant '{variant}'; choose one of {', '.join(VARIANT_SAMPLING)}")
    frames, stride = VARIANT_SAMPLING[variant]
    spec = replace(SPEC, frames=frames, stride=stride, options={"variant": variant})
    keep_encoder = single_file_filter(svt_encoder_state, "SVT checkpoint")
    return build_backbone(spec, lambda: TimeSformer(TimeSformerConfig()), checkpoint, keep_encoder, strict)

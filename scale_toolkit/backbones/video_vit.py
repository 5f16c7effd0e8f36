"""The one video ViT (VideoMAE / CrossVideoMAE / MAE-ST family): tubelet embedding, pre-LN blocks, pooling.

Parameter names follow the original VideoMAE fine-tune layout (`patch_embed.proj`, `blocks.{i}.attn.qkv`,
`attn.q_bias`/`attn.v_bias`, `norm` or `fc_norm`); checkpoint adapters in `videomae.py` map every public
layout onto these names.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

QKV_BIAS_STYLES = ("qv", "qkv", "none")  # VideoMAE: q and v bias only; MAE-ST/timm: full bias; or none
POSITION_STYLES = ("sincos", "learned", "learned_separable")
POOLINGS = {
    "norm_mean": "mean of tokens after the final norm",
    "mean_fc_norm": "mean of tokens, then fc_norm",
    "mean": "mean of tokens (no final norm)",
}


@dataclass(frozen=True)
class VideoViTConfig:
    """Architecture of a video ViT; `frames` and `image_size` fix the native token grid."""

    width: int = 768
    depth: int = 12
    heads: int = 12
    mlp_hidden: int = 3072
    patch_size: int = 16
    tubelet: int = 2
    frames: int = 16
    image_size: int = 224
    qkv_bias: str = "qv"
    norm_eps: float = 1e-6
    fc_norm_eps: float = 1e-6
    pooling: str = "norm_mean"
    position: str = "sincos"
    cls_token: bool = False
    layer_scale: bool = False

    @property
    def grid(self) -> tuple[int, int, int]:
        return (self.frames // self.tubelet, self.image_size // self.patch_size, self.image_size // self.patch_size)


def sincos_table(num_positions: int, dim: int) -> torch.Tensor:
    """VideoMAE's fixed 1-D sinusoid table [1, N, D] (even dims sin, odd dims cos), computed in float64."""
    position = torch.arange(num_positions, dtype=torch.float64)[:, None]
    exponent = (2 * (torch.arange(dim) // 2)).to(torch.float64) / dim
    angles = position / torch.pow(torch.tensor(10000.0, dtype=torch.float64), exponent)[None, :]
    table = torch.empty_like(angles)
    table[:, 0::2] = torch.sin(angles[:, 0::2])
    table[:, 1::2] = torch.cos(angles[:, 1::2])
    return table.to(torch.float32)[None]


def resize_grid_table(table: torch.Tensor, grid: tuple[int, int, int], new_grid: tuple[int, int, int]) -> torch.Tensor:
    """Trilinearly resample a [1, t*h*w, D] token table from one (t, h, w) grid to another."""
    if tuple(grid) == tuple(new_grid):
        return table
    dim = table.shape[-1]
    volume = table.reshape(1, *grid, dim).permute(0, 4, 1, 2, 3).float()
    volume = F.interpolate(volume, size=new_grid, mode="trilinear", align_corners=False)
    return volume.permute(0, 2, 3, 4, 1).reshape(1, -1, dim).to(table.dtype)


class PatchEmbed3d(nn.Module):
    """Non-overlapping tubelets (tubelet x patch x patch) projected by one Conv3d."""

    def __init__(self, width: int, patch_size: int, tubelet: int) -> None:
        super().__init__()
        kernel = (tubelet, patch_size, patch_size)
        self.proj = nn.Conv3d(3, width, kernel_size=kernel, stride=kernel)

    def forward(self, clips: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        x = self.proj(clips)  # [B, D, t, h, w]
        grid = tuple(x.shape[2:])
        return x.flatten(2).transpose(1, 2), grid  # tokens in (t, h, w) order, as every public layout


class Attention(nn.Module):
    """Multi-head self-attention over one fused qkv projection, run with scaled_dot_product_attention."""

    def __init__(self, width: int, heads: int, qkv_bias: str = "qkv") -> None:
        super().__init__()
        if qkv_bias not in QKV_BIAS_STYLES:
            raise ValueError(f"qkv_bias must be one of {QKV_BIAS_STYLES}")
        if width % heads:
            raise ValueError(f"width {width} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=qkv_bias == "qkv")
        if qkv_bias == "qv":
            # VideoMAE learns q and v biases only; the k bias is a constant zero
            self.q_bias = nn.Parameter(torch.zeros(width))
            self.v_bias = nn.Parameter(torch.zeros(width))
        else:
            self.register_parameter("q_bias", None)
            self.register_parameter("v_bias", None)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        bias = self.qkv.bias
        if self.q_bias is not None:
            bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, bias)
        q, k, v = qkv.reshape(batch, tokens, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, width))


class Mlp(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()  # exact (erf) GELU, as VideoMAE, MAE-ST, TimeSformer and HF "gelu"
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-LN transformer block, with optional layer scale (`gamma_1`/`gamma_2`, VideoMAE init_values > 0)."""

    def __init__(self, cfg: VideoViTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.attn = Attention(cfg.width, cfg.heads, cfg.qkv_bias)
        self.norm2 = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.mlp = Mlp(cfg.width, cfg.mlp_hidden)
        if cfg.layer_scale:
            self.gamma_1 = nn.Parameter(torch.ones(cfg.width))
            self.gamma_2 = nn.Parameter(torch.ones(cfg.width))
        else:
            self.gamma_1 = self.gamma_2 = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gamma_1 is None:
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))
        x = x + self.gamma_1 * self.attn(self.norm1(x))
        return x + self.gamma_2 * self.mlp(self.norm2(x))


class VideoViT(nn.Module):
    """Video ViT returning one clip feature [B, width] from normalised clips [B, 3, T, H, W].

    >>> cfg = VideoViTConfig(width=32, depth=1, heads=2, mlp_hidden=64, frames=4, image_size=32)
    >>> VideoViT(cfg)(torch.zeros(2, 3, 4, 32, 32)).shape
    torch.Size([2, 32])
    """

    def __init__(self, cfg: VideoViTConfig) -> None:
        super().__init__()
        if cfg.position not in POSITION_STYLES:
            raise ValueError(f"position must be one of {POSITION_STYLES}")
        if cfg.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {tuple(POOLINGS)}")
        self.cfg = cfg
        width, grid = cfg.width, cfg.grid
        self.patch_embed = PatchEmbed3d(width, cfg.patch_size, cfg.tubelet)
        if cfg.cls_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        if cfg.position == "sincos":
            # fixed, never loaded: VideoMAE checkpoints do not store it
            self.register_buffer("sincos", sincos_table(grid[0] * grid[1] * grid[2], width), persistent=False)
        elif cfg.position == "learned":
            self.pos_embed = nn.Parameter(torch.zeros(1, grid[0] * grid[1] * grid[2] + int(cfg.cls_token), width))
        else:  # MAE-ST's separable table: spatial + temporal (+ class)
            self.pos_embed_spatial = nn.Parameter(torch.zeros(1, grid[1] * grid[2], width))
            self.pos_embed_temporal = nn.Parameter(torch.zeros(1, grid[0], width))
            if cfg.cls_token:
                self.pos_embed_class = nn.Parameter(torch.zeros(1, 1, width))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(width, eps=cfg.norm_eps) if cfg.pooling == "norm_mean" else None
        self.fc_norm = nn.LayerNorm(width, eps=cfg.fc_norm_eps) if cfg.pooling == "mean_fc_norm" else None

    @property
    def feature_dim(self) -> int:
        return self.cfg.width

    def _patch_positions(self, grid: tuple[int, int, int]) -> torch.Tensor:
        """Position table for the patch tokens of an input grid, resampled when it differs from the native one."""
        native = self.cfg.grid
        if self.cfg.position == "sincos":
            return resize_grid_table(self.sincos, native, grid)
        if self.cfg.position == "learned":
            return resize_grid_table(self.pos_embed[:, int(self.cfg.cls_token):], native, grid)
        spatial = self.pos_embed_spatial
        if tuple(grid[1:]) != tuple(native[1:]):
            img = spatial.reshape(1, native[1], native[2], -1).permute(0, 3, 1, 2).float()
            img = F.interpolate(img, size=grid[1:], mode="bicubic", align_corners=False)
            spatial = img.permute(0, 2, 3, 1).reshape(1, grid[1] * grid[2], -1).to(self.pos_embed_spatial.dtype)
        temporal = self.pos_embed_temporal
        if grid[0] != native[0]:
            seq = F.interpolate(temporal.transpose(1, 2).float(), size=grid[0], mode="linear", align_corners=False)
            temporal = seq.transpose(1, 2).to(self.pos_embed_temporal.dtype)
        # token (t, s) gets spatial[s] + temporal[t], t-major like the patch order
        return (temporal[:, :, None, :] + spatial[:, None, :, :]).reshape(1, grid[0] * grid[1] * grid[2], -1)

    def _class_position(self) -> torch.Tensor | None:
        if not self.cfg.cls_token or self.cfg.position == "sincos":
            return None
        return self.pos_embed[:, :1] if self.cfg.position == "learned" else self.pos_embed_class

    def forward_tokens(self, clips: torch.Tensor) -> torch.Tensor:
        """All tokens after the last block (before any final norm), CLS first when the model has one."""
        clips = clips.to(self.patch_embed.proj.weight.dtype)
        x, grid = self.patch_embed(clips)
        x = x + self._patch_positions(grid).to(x.dtype)
        if self.cfg.cls_token:
            cls = self.cls_token
            cls_pos = self._class_position()
            if cls_pos is not None:
                cls = cls + cls_pos
            x = torch.cat([cls.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        x = self.forward_tokens(clips)
        if self.norm is not None:
            x = self.norm(x)
        # the CLS token (MAE-ST with cls_embed) is left out of the mean: the clip feature pools patch tokens
        pooled = x[:, int(self.cfg.cls_token):].mean(dim=1)
        if self.fc_norm is not None:
            pooled = self.fc_norm(pooled)
        return pooled.float()

"""Building blocks of the SCALE predictor: pre-LN transformer block and MLP heads (no batch norm)."""
from __future__ import annotations

from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    """Pre-LayerNorm transformer encoder block (multi-head self-attention + GELU MLP)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0, attn_dropout: float = 0.0):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)
        self.attn_dropout = attn_dropout

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None,
                queries: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T, C] -> [B, T, C]; with ``queries`` (long [B, R], token positions per sequence) only
        those tokens' outputs, [B, R, C]: keys and values still come from every token, so each
        output equals the full block's at that position, for R/T of the query, MLP and projection work."""
        b, t, c = x.shape
        hd = c // self.heads
        h = self.norm1(x)
        if queries is None:
            q, k, v = self.qkv(h).view(b, t, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        else:
            w, bias = self.qkv.weight, self.qkv.bias
            k, v = F.linear(h, w[c:], bias[c:]).view(b, t, 2, self.heads, hd).permute(2, 0, 3, 1, 4)
            rows = queries.unsqueeze(-1).expand(-1, -1, c)
            t = queries.shape[1]
            q = F.linear(h.gather(1, rows), w[:c], bias[:c]).view(b, t, self.heads, hd).transpose(1, 2)
            x = x.gather(1, rows)
        dropout_p = self.attn_dropout if self.training else 0.0
        if x.device.type == "cpu":
            a = _attention_bmm(q, k, v, attn_mask, dropout_p)
        else:
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, t, c)))
        out: torch.Tensor = x + self.drop(self.fc2(self.drop(F.gelu(self.fc1(self.norm2(x))))))
        return out


def _attention_bmm(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: Optional[torch.Tensor],
                   dropout_p: float) -> torch.Tensor:
    """Plain batched-matmul attention: on CPU it beats the fused SDPA kernels several times
    over for SCALE's very short sequences (K + 1 = 9 tokens)."""
    a = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)
    if attn_mask is not None:
        a = a.masked_fill(~attn_mask, float("-inf"))
    a = a.softmax(dim=-1)
    if dropout_p > 0:
        a = F.dropout(a, dropout_p)
    out: torch.Tensor = a @ v
    return out


class Standardize(nn.Module):
    """Per-dimension ``(x - mean) / std`` with fixed statistics (buffers, saved with the model).

    Backbone clip features share a large common vector across all videos (here 90 % of their norm),
    and a per-sample LayerNorm keeps it; subtracting the training split's per-dimension mean and
    dividing by its std leaves the differences between clips, which is what the losses contrast.
    Identity until ``set_stats`` is called (the trainer does it with the train split's statistics).
    """

    mean: torch.Tensor  # buffers
    std: torch.Tensor

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def set_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


@torch.no_grad()
def feature_stats(features: torch.Tensor | Iterator[torch.Tensor], chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std (float32 [D]) over every clip of ``features`` [..., D] (or of pieces
    of it, one after the other: a split streamed from its store), accumulated in float64 by chunks
    (float16 stores); a constant dimension gets std 1 (it is zero after centring)."""
    s: Optional[torch.Tensor] = None
    s2: Optional[torch.Tensor] = None
    n = 0
    for piece in ([features] if isinstance(features, torch.Tensor) else features):
        flat = piece.reshape(-1, piece.shape[-1])
        if s is None or s2 is None:
            s = torch.zeros(flat.shape[1], dtype=torch.float64, device=flat.device)
            s2 = torch.zeros_like(s)
        for i in range(0, flat.shape[0], chunk):
            x = flat[i:i + chunk].double()
            s += x.sum(0)
            s2 += (x * x).sum(0)
        n += flat.shape[0]
    if s is None or s2 is None:
        raise ValueError("feature_stats needs at least one piece of features")
    n = max(1, n)
    mean = s / n
    std = (s2 / n - mean * mean).clamp_min(0).sqrt()
    std = torch.where(std > 1e-6 * std.max().clamp_min(1e-30), std, torch.ones_like(std))
    return mean.float(), std.float()


class MLPHead(nn.Sequential):
    """``layers`` Linear layers with GELU between them, no batch norm, no output norm.

    Example:
        >>> MLPHead(768, 1024, 256, layers=3)(torch.randn(2, 768)).shape
        torch.Size([2, 256])
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int, layers: int = 3, bias: bool = True):
        dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
        mods: list[nn.Module] = []
        for i in range(layers):
            mods.append(nn.Linear(dims[i], dims[i + 1], bias=bias))
            if i < layers - 1:
                mods.append(nn.GELU())
        super().__init__(*mods)

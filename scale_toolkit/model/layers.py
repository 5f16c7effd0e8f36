"""Building blocks of the SCALE predictor: pre-LN transformer block and MLP heads (no batch norm)."""
from __future__ import annotations

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
        p = self.attn_dropout if self.training else 0.0
        if x.device.type == "cpu":
            a = _attention_bmm(q, k, v, attn_mask, p)
        else:
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, t, c)))
        return x + self.drop(self.fc2(self.drop(F.gelu(self.fc1(self.norm2(x))))))


def _attention_bmm(q, k, v, attn_mask, dropout_p):
    """Plain batched-matmul attention: on CPU it beats the fused SDPA kernels several times
    over for SCALE's very short sequences (K + 1 = 9 tokens)."""
    a = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)
    if attn_mask is not None:
        a = a.masked_fill(~attn_mask, float("-inf"))
    a = a.softmax(dim=-1)
    if dropout_p > 0:
        a = F.dropout(a, dropout_p)
    return a @ v


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

"""The SCALE set-transformer (predictor network) with its contrastive heads."""
from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from scale_toolkit.errors import ScaleError
from scale_toolkit.model.config import ScaleConfig
from scale_toolkit.model.layers import Block, MLPHead, Standardize
from scale_toolkit.model.masking import masked_slots, n_masked


def _norm(kind: str, dim: int, standardize: nn.Module | None = None) -> nn.Module:
    if kind == "standardize":
        return standardize if standardize is not None else Standardize(dim)
    return nn.LayerNorm(dim, elementwise_affine=False) if kind == "layernorm" else nn.Identity()


class ScaleModel(nn.Module):
    """Predictor network of SCALE plus the MCM and SET projection heads.

    Per clip token: ``in_proj(in_norm(feature))``; masked clips are replaced by the learned
    MSK token; the positional MLP of the 6-d crop coordinates (Eq. 5) is added to every
    token, masked ones included; a learned SET (CLS) token, without position, is prepended.
    ``forward`` is a plain differentiable module call (used by fine-tuning probes);
    ``encode`` is the inference API; ``ssl_embeddings`` feeds the SSL losses.

    Example:
        >>> m = ScaleModel(ScaleConfig(input_dim=32, hidden=64, heads=4))
        >>> out = m.encode(torch.randn(2, 15, 32), torch.rand(2, 15, 6))
        >>> out["refined"].shape, out["set_token"].shape
        (torch.Size([2, 15, 64]), torch.Size([2, 64]))
    """

    def __init__(self, config: ScaleConfig):
        super().__init__()
        self.config = cfg = config
        h = cfg.hidden
        self.in_norm = _norm(cfg.in_norm, cfg.input_dim)
        self.in_proj = nn.Linear(cfg.input_dim, h)
        act = nn.GELU() if cfg.pos_act == "gelu" else nn.ReLU()
        self.pos_mlp = nn.Sequential(nn.Linear(cfg.pos_dim, cfg.pos_hidden), act, nn.Linear(cfg.pos_hidden, h))
        self.msk_token = nn.Parameter(torch.zeros(h))
        self.set_token = nn.Parameter(torch.zeros(h))
        self.blocks = nn.ModuleList(Block(h, cfg.heads, cfg.mlp_ratio, cfg.dropout, cfg.attn_dropout) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(h) if cfg.final_norm else nn.Identity()
        # contrastive heads (Eq. 1): theta_A on predictions, theta_B on original features
        pred_layers = cfg.pred_head_layers or cfg.head_layers
        pred_hidden = cfg.pred_head_hidden or cfg.head_hidden
        self.pred_head = MLPHead(h, pred_hidden, cfg.proj_dim, pred_layers, cfg.head_bias)
        # one set of statistics when both paths standardise
        self.target_norm = _norm(cfg.target_norm, cfg.input_dim, self.in_norm if cfg.in_norm == "standardize" else None)
        self.target_head = MLPHead(cfg.input_dim, cfg.head_hidden, cfg.proj_dim, cfg.head_layers, cfg.head_bias)
        self.set_head_a = MLPHead(h, pred_hidden, cfg.proj_dim, pred_layers, cfg.head_bias)
        self.set_head_b = (self.set_head_a if cfg.share_set_heads
                           else MLPHead(h, pred_hidden, cfg.proj_dim, pred_layers, cfg.head_bias))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if not isinstance(m, nn.Linear):
                continue
            if self.config.init == "pytorch":
                m.reset_parameters()  # PyTorch's default, U(+-1/sqrt(fan_in)) (the official code's)
            else:
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        std = self.config.token_init_std
        for token in (self.msk_token, self.set_token):
            if std > 0:
                nn.init.trunc_normal_(token, std=std)
            else:
                nn.init.zeros_(token)

    def set_feature_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Statistics of the ``standardize`` input / target normalisation (per-dimension [D])."""
        for m in (self.in_norm, self.target_norm):
            if isinstance(m, Standardize):
                m.set_stats(mean, std)

    @property
    def standardizes(self) -> bool:
        return isinstance(self.in_norm, Standardize) or isinstance(self.target_norm, Standardize)

    # ------------------------------------------------------------------ predictor
    def forward(self, features: torch.Tensor, coords: torch.Tensor, mask: torch.Tensor | None = None,
                valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Differentiable predictor pass.

        Args:
            features: [B, V, D] frozen clip features (any float dtype).
            coords: [B, V, 6] crop coordinates of Eq. 5.
            mask: optional bool [B, V]; True clips are replaced by the MSK token.
            valid: optional bool [B, V]; False clips are padding and are not attended to.
        Returns:
            {"set_token": [B, H], "refined": [B, V, H]}
        """
        pos_dim = self.config.pos_dim
        if features.dim() != 3 or coords.shape[:2] != features.shape[:2] or coords.shape[-1] != pos_dim:
            raise ScaleError(f"expected features [B,V,D] and positions [B,V,{pos_dim}] (pos_input {self.config.pos_input!r}), "
                             f"got {tuple(features.shape)} and {tuple(coords.shape)}")
        if features.shape[-1] != self.config.input_dim:
            raise ScaleError(f"feature dimension {features.shape[-1]} does not match the model's input_dim "
                             f"{self.config.input_dim}; use a store extracted with the same backbone")
        return self._predict(self._normalize(self.in_norm, features), coords, mask, valid)

    def _normalize(self, norm: nn.Module, features: torch.Tensor) -> torch.Tensor:
        """``norm`` applied to the frozen features, in the compute dtype. Standardising subtracts a
        mean that dwarfs the differences, so it runs in float32 before any cast to bf16."""
        dtype = self._compute_dtype(features)
        out: torch.Tensor = norm(features.float()).to(dtype) if isinstance(norm, Standardize) else norm(features.to(dtype))
        return out

    def _compute_dtype(self, features: torch.Tensor) -> torch.dtype:
        """Autocast's dtype when autocast is on (the frozen features are cast once), else the weights'."""
        dev = features.device.type
        if torch.is_autocast_enabled(dev):
            return torch.get_autocast_dtype(dev)
        return self.in_proj.weight.dtype

    def _predict(self, normed: torch.Tensor, coords: torch.Tensor, mask: torch.Tensor | None,
                 valid: torch.Tensor | None) -> dict[str, torch.Tensor]:
        x = self._tokens(normed, coords, mask, valid)
        return {"set_token": x[:, 0], "refined": x[:, 1:]}

    def _tokens(self, normed: torch.Tensor, coords: torch.Tensor, mask: torch.Tensor | None,
                valid: torch.Tensor | None, queries: torch.Tensor | None = None) -> torch.Tensor:
        """Output tokens [B, 1+V, H] (SET token first); with ``queries`` (long [B, R], token
        positions) only those, [B, R, H]: the last block then computes just those outputs."""
        x = self.in_proj(normed)
        if mask is not None:
            x = torch.where(mask.unsqueeze(-1), self.msk_token.to(x.dtype), x)
        x = x + self.pos_mlp(coords.to(self.in_proj.weight.dtype)).to(x.dtype)
        b = x.shape[0]
        x = torch.cat([self.set_token.to(x.dtype).expand(b, 1, -1), x], dim=1)
        attn_mask = None
        if valid is not None:
            keep = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=valid.device), valid.bool()], dim=1)
            attn_mask = keep[:, None, None, :]
        last = len(self.blocks) - 1
        for i, blk in enumerate(self.blocks):
            x = blk(x, attn_mask, queries if i == last else None)
        if queries is not None and last < 0:
            x = x.gather(1, queries.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        out: torch.Tensor = self.norm(x)
        return out

    @torch.no_grad()
    def encode(self, features: torch.Tensor, coords: torch.Tensor, valid: torch.Tensor | None = None,
               autocast_dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
        """Inference API: no masking, eval mode (restored afterwards), any number of clips V.

        Returns {"clip": features (as given), "refined": [B,V,H] float32, "set_token": [B,H] float32}.
        """
        was_training = self.training
        self.eval()
        try:
            dev = self.in_proj.weight.device
            ctx = torch.autocast(dev.type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
            with ctx:
                out = self(features.to(dev), coords.to(dev), valid=None if valid is None else valid.to(dev))
        finally:
            self.train(was_training)
        return {"clip": features, "refined": out["refined"].float(), "set_token": out["set_token"].float()}

    # ------------------------------------------------------------------ SSL
    def ssl_embeddings(self, features: torch.Tensor, coords: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Embeddings the SSL losses need, for two clip sets per video.

        Args:
            features: [B, 2, K, D] clips of the two disjoint sets; coords: [B, 2, K, pos_dim].
            mask: bool [B, 2, K] (True = masked); in ``fixed`` mode exactly
                ``n_masked(K, mask_ratio)`` per set, as ``sample_mask`` draws (no host sync).
        Returns:
            "u1", "u2": [B, d] normalised projected SET tokens of set 1 / set 2;
            "target": [B, 2, K, d] normalised projected original features (theta_B);
            "pred": [M, d] normalised predictions at the masked positions (theta_A), set 1's
            then set 2's, each in (video, clip) order; or [B, 2, K, d] at every position when
            ``pred_all_tokens``.
        """
        b, s, k, d = features.shape
        if d != self.config.input_dim:
            raise ScaleError(f"feature dimension {d} does not match the model's input_dim {self.config.input_dim}")
        normed = self._normalize(self.in_norm, features)
        seqs = (normed.reshape(b * s, k, d), coords.reshape(b * s, k, coords.shape[-1]), mask.reshape(b * s, k), None)
        if self.config.pred_all_tokens:
            x = self._tokens(*seqs)
            refined = x[:, 1:].reshape(b * s * k, -1)
        else:
            # output sparsity: the last block and the prediction head see the SET and masked tokens only
            if self.config.mask_mode == "fixed":
                count = n_masked(k, self.config.mask_ratio)
            else:
                count = int(mask.sum(-1).max())
            pos, real = masked_slots(mask.reshape(b * s, k), count)
            queries = torch.cat([torch.zeros_like(pos[:, :1]), pos + 1], dim=1)
            x = self._tokens(*seqs, queries=queries)
            slots = x[:, 1:].reshape(b, s, count, x.shape[-1]).transpose(0, 1)  # set-major, as the losses pool them
            refined = slots.reshape(s * b * count, x.shape[-1])
            if self.config.mask_mode != "fixed":
                refined = refined[real.reshape(b, s, count).transpose(0, 1).reshape(-1)]
        st = x[:, 0].reshape(b, s, -1)
        u1 = F.normalize(self.set_head_a(st[:, 0]).float(), dim=-1)
        u2 = F.normalize(self.set_head_b(st[:, 1]).float(), dim=-1)
        tgt_in = normed if self.config.target_norm == self.config.in_norm else self._normalize(self.target_norm, features)
        target = F.normalize(self.target_head(tgt_in).float(), dim=-1)
        pred = F.normalize(self.pred_head(refined).float(), dim=-1)
        if self.config.pred_all_tokens:
            pred = pred.view(b, s, k, -1)
        return {"u1": u1, "u2": u2, "target": target, "pred": pred}

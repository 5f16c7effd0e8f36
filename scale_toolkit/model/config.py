"""Configuration of the SCALE set-transformer and its losses.

Defaults follow the paper where it speaks and the documented choices of
docs/training.md where it is silent. Every choice the official code makes
differently is reachable through an option (see ``ScaleConfig.official()``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Optional, TypeVar

from scale_toolkit.checks import check_numbers
from scale_toolkit.errors import ScaleError

POS_INPUTS = {"eq5": 6, "official7": 7}  # position encoding -> vector length
Config = TypeVar("Config")


def config_from_dict(cls: type[Config], d: dict[str, Any], what: str) -> Config:
    """``cls(**d)`` for a config dataclass, refusing keys it does not have (a saved run from another version)."""
    unknown = set(d) - {f.name for f in fields(cls)}  # type: ignore[arg-type]  # cls is a dataclass
    if unknown:
        raise ScaleError(f"unknown {what} config keys: {sorted(unknown)}")
    return cls(**d)


@dataclass
class ScaleConfig:
    """Hyper-parameters of the SCALE predictor, heads and losses.

    Example:
        >>> cfg = ScaleConfig(input_dim=768)
        >>> cfg.hidden, cfg.layers, cfg.mask_ratio
        (256, 2, 0.25)
    """

    input_dim: int = 768
    # predictor (encoder-only pre-LN transformer)
    hidden: int = 256
    layers: int = 2
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    attn_dropout: float = 0.0
    final_norm: bool = True
    # feature scaling before the input projection: "standardize" (per dimension, train-split statistics
    # kept with the model), "layernorm" (parameter-free, per clip) or "none"
    in_norm: str = "standardize"
    target_norm: str = "standardize"  # same, before the MCM target head
    pos_hidden: int = 256
    pos_act: str = "gelu"  # "gelu" | "relu"
    pos_input: str = "eq5"  # "eq5": the stored 6-vector; "official7": [flip, y0, x0, y1, x1, t0, t1] min-max per video
    token_init_std: float = 0.02  # MSK / SET token init (official code: 0.0, zeros)
    # Linear layers: "pytorch" (PyTorch's default, as the official code) or "trunc_normal" (std 0.02,
    # zero bias): the latter makes the positional MLP's output ~1/20 of the clip tokens at the start
    init: str = "pytorch"
    # contrastive heads (MLP, no batch norm)
    head_layers: int = 3
    head_hidden: int = 1024
    pred_head_layers: Optional[int] = None  # None -> head_layers (official: 2)
    pred_head_hidden: Optional[int] = None  # None -> head_hidden (official: 4096)
    head_bias: bool = True  # official: False
    proj_dim: int = 256  # official: 128
    share_set_heads: bool = False  # official: True (one head for both CLS tokens)
    # losses
    tau: float = 0.2  # as the official code (0.1 learned less on order-sensitive data, docs/training.md)
    set_tau: Optional[float] = None  # None -> tau
    mcm_weight: float = 1.0
    set_weight: float = 1.0
    normalize_loss_weights: bool = False  # official: True, (w_s L_s + w_m L_m)/(w_s + w_m)
    mcm_symmetric: bool = True  # Eq. 3; official: False (prediction -> target only)
    mcm_pool_sets: bool = False  # official: True (candidates are the clips of both sets)
    # "paper": sum over masked clips per video, mean over videos; "mean": mean over masked clips (official)
    mcm_reduction: str = "paper"
    sym_reduction: str = "sum"  # Eq. 3 adds the two directions; "mean" averages them (official)
    pred_all_tokens: bool = False  # run the prediction head on every token (no output sparsity)
    # masking and sets
    mask_ratio: float = 0.25
    mask_mode: str = "fixed"  # "fixed": round(ratio*K) clips (>=1); "bernoulli": each clip with p=ratio (>=1)
    mask_min_one: bool = True  # bernoulli: give a set that drew no masked clip one (official: False, it stays unmasked)
    set_size: int = 8

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        check_numbers(self)  # nan/inf/strings first: they pass or crash the range checks below
        if self.input_dim <= 0 or self.hidden <= 0 or self.layers < 0:
            raise ScaleError(f"invalid model size: input_dim={self.input_dim}, hidden={self.hidden}, layers={self.layers}")
        if self.hidden % self.heads:
            raise ScaleError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if self.head_layers < 1 or (self.pred_head_layers is not None and self.pred_head_layers < 1):
            raise ScaleError("contrastive heads need at least one layer")
        if self.mask_mode not in ("fixed", "bernoulli"):
            raise ScaleError(f"mask_mode must be 'fixed' or 'bernoulli', got {self.mask_mode!r}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ScaleError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if self.set_size < 2:
            raise ScaleError(f"set_size must be at least 2, got {self.set_size}")
        norms = ("standardize", "layernorm", "none")
        for name, allowed in (("in_norm", norms), ("target_norm", norms),
                              ("pos_act", ("gelu", "relu")), ("mcm_reduction", ("paper", "mean")),
                              ("sym_reduction", ("sum", "mean")), ("pos_input", tuple(POS_INPUTS)),
                              ("init", ("trunc_normal", "pytorch"))):
            if getattr(self, name) not in allowed:
                raise ScaleError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.tau <= 0 or (self.set_tau is not None and self.set_tau <= 0):
            raise ScaleError("temperatures must be positive")

    @property
    def pos_dim(self) -> int:
        """Length of the position vector the positional MLP reads."""
        return POS_INPUTS[self.pos_input]

    @property
    def tau_set(self) -> float:
        return self.tau if self.set_tau is None else self.set_tau

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ScaleConfig":
        return config_from_dict(cls, d, "model")

    @classmethod
    def official(cls, **overrides: Any) -> "ScaleConfig":
        """The choices of the official SCALE code (Separius/SCALE), where they differ from ours.

        As there, the attention heads (hidden/32) and the positional MLP width (2 x hidden) follow
        ``hidden`` unless given.
        """
        hidden = int(overrides.get("hidden", cls.hidden))
        d: dict[str, Any] = dict(heads=max(1, hidden // 32), mlp_ratio=2.0, dropout=0.1, attn_dropout=0.1, in_norm="none",
                 target_norm="none", pos_act="relu", pos_hidden=2 * hidden, pos_input="official7",
                 token_init_std=0.0, init="pytorch", pred_head_layers=2, pred_head_hidden=4096,
                 head_hidden=2048, head_bias=False, proj_dim=128, share_set_heads=True, tau=0.2,
                 normalize_loss_weights=True, mcm_symmetric=False, mcm_pool_sets=True, mcm_reduction="mean",
                 sym_reduction="mean", mask_mode="bernoulli", mask_min_one=False)
        d.update(overrides)
        return cls(**d)

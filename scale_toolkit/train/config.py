"""Configuration of a `scale train` run."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from scale_toolkit.errors import ScaleError
from scale_toolkit.model.config import ScaleConfig, config_from_dict


@dataclass
class TrainConfig:
    """Every flag of `scale train` (the model's own options live in ``model``).

    ``warmup`` is in epochs (may be fractional); the learning rate rises linearly over the
    warm-up steps, then follows a cosine to ``min_lr``, updated every step. ``steps`` raises the
    number of epochs to ``ceil(steps / steps_per_epoch)`` when ``epochs`` would take fewer steps
    (a training set that fits in a few batches needs many epochs).
    """

    store: str = ""
    split: int = 1
    out: str = ""
    epochs: int = 500
    steps: Optional[int] = None  # minimum optimiser steps: small sets run more epochs to reach it
    batch_size: int = 512
    lr: float = 1e-3
    wd: float = 0.05
    warmup: float = 10.0
    min_lr: float = 0.0
    grad_clip: float = 1.0  # 0 disables clipping
    betas: tuple[float, float] = (0.9, 0.999)
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:1" ...
    precision: str = "bf16"  # "bf16" (autocast) | "fp32"
    save_every: int = 50  # keep checkpoint_epochNNNN.pt every N epochs (0: only the last)
    last_every: int = 1  # rewrite checkpoint_last.pt every N epochs (and always at the end)
    resume: bool = False
    threads: Optional[int] = None  # torch CPU threads (None: torch's default)
    ssl_val: float = 0.1  # fraction of the train-split videos held out for the held-out SSL metrics (0: none)
    compile: bool = False  # torch.compile the step (single process; docs/training.md has the measured gain)
    model: ScaleConfig = field(default_factory=ScaleConfig)

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = ScaleConfig.from_dict(self.model)
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        if self.precision not in ("bf16", "fp32"):
            raise ScaleError(f"--precision must be bf16 or fp32, got {self.precision!r}")
        if self.epochs < 1 or self.batch_size < 2:
            raise ScaleError(f"need --epochs >= 1 and --batch-size >= 2, got {self.epochs} and {self.batch_size}")
        if self.lr <= 0 or self.wd < 0 or self.warmup < 0:
            raise ScaleError("--lr must be positive, --wd and --warmup non-negative")
        if self.steps is not None and self.steps < 1:
            raise ScaleError(f"--steps must be positive, got {self.steps}")
        if not 0.0 <= self.ssl_val < 1.0:
            raise ScaleError(f"--ssl-val must be a fraction in [0, 1), got {self.ssl_val}")
        if self.save_every < 0 or self.last_every < 1:
            raise ScaleError(f"--save-every must be 0 (only checkpoint_last.pt) or positive, got {self.save_every}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        return config_from_dict(cls, d, "train")

"""Configuration of a `scale train` run."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from scale_toolkit.checks import check_numbers
from scale_toolkit.errors import ScaleError
from scale_toolkit.memory import parse_size
from scale_toolkit.model.config import ScaleConfig, config_from_dict
from scale_toolkit.precision import check_precision

# what `--official` sets besides the model (ScaleConfig.official()): the official code's optimiser and precision
OFFICIAL_TRAIN = {"lr": 3e-4, "wd": 1e-4, "grad_clip": 0.0, "precision": "fp32"}
OFFICIAL_WARMUP_FRACTION = 0.05  # linear warm-up over 5 % of all steps, then per-step cosine


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
    precision: str = "auto"  # "auto" | "bf16" (autocast) | "fp32"; scale_toolkit.precision resolves auto
    save_every: int = 100  # keep checkpoint_epochNNNN.pt every N epochs (0: only the last)
    # rewrite checkpoint_last.pt at most every this many seconds (and at the end); 0: after every epoch.
    # Each write is the whole model and optimiser state, so a per-epoch cadence wrote 42 GB in one demo (issue #30)
    checkpoint_every: float = 60.0
    last_every: int = 0  # also rewrite checkpoint_last.pt every N epochs (0: by time only); library callers such as the demo
    resume: bool = False
    threads: Optional[int] = None  # torch CPU threads (None: torch's default)
    allow_incomplete: bool = False  # train on the done videos of a split still being extracted
    ssl_val: float = 0.1  # fraction of the train-split videos held out for the held-out SSL metrics (0: none)
    compile: bool = False  # torch.compile the step (single process; docs/training.md has the measured gain)
    max_memory: str = ""  # the process's bound ("16G"; memory.py); a split over what it leaves streams ("": half of what is free)
    model: ScaleConfig = field(default_factory=ScaleConfig)

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = ScaleConfig.from_dict(self.model)
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        check_numbers(self)  # nan/inf/strings first: they pass or crash the range checks below
        check_precision(self.precision)
        if self.max_memory:
            parse_size(self.max_memory)
        if self.epochs < 1 or self.batch_size < 2:
            raise ScaleError(f"need --epochs >= 1 and --batch-size >= 2, got {self.epochs} and {self.batch_size}")
        if self.lr <= 0 or self.wd < 0 or self.warmup < 0:
            raise ScaleError("--lr must be positive, --wd and --warmup non-negative")
        if self.min_lr < 0 or self.grad_clip < 0 or not all(0 <= b < 1 for b in self.betas):
            raise ScaleError("min_lr and grad_clip must be >= 0 and betas in [0, 1)")
        if self.steps is not None and self.steps < 1:
            raise ScaleError(f"--steps must be positive, got {self.steps}")
        if not 0.0 <= self.ssl_val < 1.0:
            raise ScaleError(f"--ssl-val must be a fraction in [0, 1), got {self.ssl_val}")
        if self.save_every < 0:
            raise ScaleError(f"--save-every must be 0 (only checkpoint_last.pt) or positive, got {self.save_every}")
        if self.last_every < 0:
            raise ScaleError(f"last_every must be 0 (by time only) or positive, got {self.last_every}")
        if self.checkpoint_every < 0:
            raise ScaleError(f"--checkpoint-every must be 0 (after every epoch) or seconds, got {self.checkpoint_every}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        return config_from_dict(cls, d, "train")


def resolve_train_config(official: bool = False, model: Optional[dict[str, Any]] = None, **given: Any) -> TrainConfig:
    """The TrainConfig of a run from the flags that were given (``None`` = not given).

    Without ``official`` the toolkit defaults fill the rest. With it, the official code's values do:
    ``OFFICIAL_TRAIN``, a warm-up of 5 % of the epochs and ``ScaleConfig.official()``; a flag that
    was given still wins over both.
    """
    given = {k: v for k, v in given.items() if v is not None}
    arch = {k: v for k, v in (model or {}).items() if v is not None}
    if not official:
        return TrainConfig(**given, model=ScaleConfig(**arch))
    epochs = given.get("epochs", TrainConfig.epochs)
    values = {**OFFICIAL_TRAIN, "warmup": OFFICIAL_WARMUP_FRACTION * epochs, **given}
    return TrainConfig(**values, model=ScaleConfig.official(**arch))

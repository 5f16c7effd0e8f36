"""Hyper-parameter grids of the trained probes: presets, overrides, and expansion into settings.

The paper grid-searches "learning rate, weight decay, batch size, and optimizer type" without
giving values. Presets (batch sizes count *videos*; a clip head sees batch x V clips per step):

====== ======================= ======================== =========== ======== =================
preset probe                   lr (optimizer)           wd          batch    epochs
====== ======================= ======================== =========== ======== =================
small  linear, scale_linear    0.03, 0.3 (SGD m=0.9)    1e-3, 1e-1  1024     100
small  mlp                     1e-3, 1e-2 (AdamW)       1e-3, 1e-1  1024     100
small  transformer, scale_ft   1e-4, 5e-4 (AdamW)       0.05        64       30 (1 warm-up)
paper  clip heads              1e-4 ... 3e-1 (8 values) 0, 1e-4,    64, 256  100
                               AdamW and SGD            1e-2, 5e-2,
                                                        1e-1
paper  transformer, scale_ft   1e-4, 3e-4, 1e-3 (AdamW) 1e-4, 5e-2  64, 256  100 (5 warm-up)
====== ======================= ======================== =========== ======== =================

``small`` stops each grid point early on the validation hold-out (``patience``: 10 epochs for the
clip heads, 5 for the set classifiers; probes/early_stop.py): a point whose validation top-1 has
been 100 % for that many epochs stops there, scored as it stopped (it cannot gain on the ranking's
first key), and the refit runs the selected point's cosine for the epochs it ran. ``paper`` has no
patience: every point runs its schedule.

Every schedule is cosine (per step, after the warm-up). SGD's weight decay is the classic L2
term, AdamW's is decoupled. Clip-head inputs go through BatchNorm without affine (MAE-family
backbones by default) or a fixed 1/RMS scale, so one lr grid fits every backbone. With batch 1024
videos a small store trains full-batch (one step per epoch); SGD was chosen for the linear heads
because on few-shot synthetic probes it matched a converged L2-regularised logistic regression
(scikit-learn) where AdamW stayed ~10 points lower. MLP: width 1024, dropout 0 (``paper``: width
512/1024 x dropout 0/0.5). ``small`` is the default so
that a default run on a laptop CPU stays well under a minute; ``paper`` follows the seed digest
(A15, A18). Any key can be overridden per probe from a TOML file::

    [linear]
    lr = [0.001, 0.003, 0.01]
    weight_decay = [0.0, 0.05]
    epochs = 200

(`scale probe --grid FILE` also reads a ``[transformer_model]`` section: ScaleConfig fields of the
Transformer baseline when no ``--model`` gives its architecture.)
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..checks import check_numbers
from ..errors import ScaleError
from ..toml_file import read_toml
from .fit import OPTIMIZERS, TrainSetting
from .rows import REGISTRY

TRAINED_ROWS = tuple(row.name for row in REGISTRY if row.trained)  # the rows with a grid in every preset


@dataclass
class GridSpec:
    """The grid of one probe: lists are searched (their product), scalars are fixed."""

    lr: list[float]
    weight_decay: list[float]
    batch_size: list[int]
    optimizer: list[str] = field(default_factory=lambda: ["adamw"])
    epochs: int = 100
    warmup_epochs: float = 0.0
    hidden: list[int] = field(default_factory=lambda: [0])
    dropout: list[float] = field(default_factory=lambda: [0.0])
    patience: int = 0  # early stopping on the validation hold-out (probes/early_stop.py); 0: off

    def validate(self, probe: str) -> None:
        check_numbers(self, f"grid for {probe}: {{}}")
        for name in ("lr", "weight_decay", "batch_size", "optimizer", "hidden", "dropout"):
            if not getattr(self, name):
                raise ScaleError(f"grid for {probe}: '{name}' is empty")
        if any(v <= 0 for v in self.lr) or any(v < 0 for v in self.weight_decay):
            raise ScaleError(f"grid for {probe}: learning rates must be > 0 and weight decays >= 0")
        if any(b < 1 for b in self.batch_size) or self.epochs < 1:
            raise ScaleError(f"grid for {probe}: batch sizes and epochs must be >= 1")
        if self.patience < 0 or self.patience != int(self.patience):
            raise ScaleError(f"grid for {probe}: patience must be a whole number of epochs >= 0 (0: no early stopping)")
        bad = [o for o in self.optimizer if o not in OPTIMIZERS]
        if bad:
            raise ScaleError(f"grid for {probe}: unknown optimizer {bad[0]!r} (choose from {OPTIMIZERS})")
        if not all(0.0 <= d < 1.0 for d in self.dropout):
            raise ScaleError(f"grid for {probe}: dropout must be in [0, 1)")

    def groups(self, batchnorm: list[bool]) -> list[tuple[TrainSetting, list[tuple[float, float]]]]:
        """(shared setting, [(lr, wd), ...]) groups: the pairs of a group train together in one pass."""
        out = []
        for bs, opt, hidden, drop, bn in itertools.product(self.batch_size, self.optimizer, self.hidden, self.dropout, batchnorm):
            base = TrainSetting(lr=self.lr[0], weight_decay=self.weight_decay[0], batch_size=int(bs), optimizer=opt,
                                epochs=int(self.epochs), warmup_epochs=float(self.warmup_epochs), hidden=int(hidden),
                                dropout=float(drop), batchnorm=bool(bn))
            out.append((base, [(float(lr), float(wd)) for lr, wd in itertools.product(self.lr, self.weight_decay)]))
        return out

    def size(self, batchnorm: list[bool]) -> int:
        return sum(len(pairs) for _, pairs in self.groups(batchnorm))

    def to_dict(self) -> dict:
        """The grid as recorded in a result (`patience` only where early stopping is on, so grids without it read as before)."""
        out = asdict(self)
        if not self.patience:
            del out["patience"]
        return out


def _clip(lr, wd, bs, opt=("adamw",), epochs=100, hidden=(0,), dropout=(0.0,), warmup=0.0, patience=0) -> GridSpec:
    return GridSpec(list(lr), list(wd), list(bs), list(opt), epochs, warmup, list(hidden), list(dropout), patience)


# `small` stops a grid point once its validation top-1 has not risen for this many epochs (early_stop.py)
_CLIP_PATIENCE, _SET_PATIENCE = 10, 5
# A18's learning rates suit AdamW; SGD wants larger ones, so the paper preset spans both ranges.
_PAPER_LR = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1]

PRESETS: dict[str, dict[str, GridSpec]] = {
    "small": {
        "linear": _clip([0.03, 0.3], [1e-3, 1e-1], [1024], ("sgd",), patience=_CLIP_PATIENCE),
        "scale_linear": _clip([0.03, 0.3], [1e-3, 1e-1], [1024], ("sgd",), patience=_CLIP_PATIENCE),
        "mlp": _clip([1e-3, 1e-2], [1e-3, 1e-1], [1024], ("adamw",), hidden=[1024], patience=_CLIP_PATIENCE),
        "transformer": _clip([1e-4, 5e-4], [0.05], [64], epochs=30, warmup=1.0, patience=_SET_PATIENCE),
        "scale_ft": _clip([1e-4, 5e-4], [0.05], [64], epochs=30, warmup=1.0, patience=_SET_PATIENCE),
    },
    "paper": {
        "linear": _clip(_PAPER_LR, [0.0, 1e-4, 1e-2, 5e-2, 1e-1], [64, 256], ("adamw", "sgd")),
        "scale_linear": _clip(_PAPER_LR, [0.0, 1e-4, 1e-2, 5e-2, 1e-1], [64, 256], ("adamw", "sgd")),
        "mlp": _clip(_PAPER_LR, [0.0, 1e-4, 1e-2, 5e-2, 1e-1], [64, 256], ("adamw", "sgd"),
                     hidden=[512, 1024], dropout=[0.0, 0.5]),
        "transformer": _clip([1e-4, 3e-4, 1e-3], [1e-4, 5e-2], [64, 256], warmup=5.0),
        "scale_ft": _clip([1e-4, 3e-4, 1e-3], [1e-4, 5e-2], [64, 256], warmup=5.0),
    },
}


def resolve_grids(preset: str = "small", overrides: dict[str, dict[str, Any]] | None = None,
                  epochs: int | None = None) -> dict[str, GridSpec]:
    """The grid of every trained probe: `preset`, then per-probe `overrides` (TOML sections), then `epochs`."""
    if preset not in PRESETS:
        raise ScaleError(f"unknown grid preset {preset!r} (choose from {', '.join(PRESETS)})")
    known = {f.name for f in fields(GridSpec)}
    grids = {}
    for probe, spec in PRESETS[preset].items():
        values = {f.name: getattr(spec, f.name) for f in fields(GridSpec)}
        values = {k: (list(v) if isinstance(v, list) else v) for k, v in values.items()}
        for key, val in (overrides or {}).get(probe, {}).items():
            key = key.replace("-", "_")
            if key not in known:
                raise ScaleError(f"grid for {probe}: unknown key {key!r} (known: {', '.join(sorted(known))})")
            if isinstance(values[key], list) and not isinstance(val, list):
                val = [val]
            values[key] = val
        if epochs is not None:
            values["epochs"] = int(epochs)
        grids[probe] = GridSpec(**values)
        grids[probe].validate(probe)
    unknown = set(overrides or {}) - set(PRESETS[preset])
    if unknown:
        raise ScaleError(f"grid overrides name unknown probes: {sorted(unknown)} (known: {', '.join(TRAINED_ROWS)})")
    return grids


def load_grid_file(path) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """A `--grid` TOML file as (per-probe overrides from its sections [linear], [scale_linear], [mlp],
    [transformer], [scale_ft]; its [transformer_model] section: ScaleConfig fields of the Transformer row)."""
    data = read_toml(path, "grid file")
    if not all(isinstance(v, dict) for v in data.values()):
        raise ScaleError(f"{path}: put grid keys in per-probe sections like [linear]")
    transformer_model = data.pop("transformer_model", {})
    return data, transformer_model

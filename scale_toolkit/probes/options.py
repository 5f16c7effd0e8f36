"""What a probe run is asked for: which rows (each declared once in rows.py) and the options that decide them.

Everything here is checked before any store is opened, so a wrong flag fails in a second.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..checks import check_numbers
from ..errors import ScaleError
from ..memory import parse_size
from .knn import CENTERING, DEFAULT_K, DEFAULT_TEMPERATURE
from .rows import REGISTRY, ROW, ROW_LABELS, ROWS, ProbeRow, flag_parameter, row_flags

__all__ = ["ROWS", "ROW_LABELS", "MODEL_ROWS", "ProbeOptions", "default_rows", "rows_for",
           "probe_request", "checked_rows"]

MODEL_ROWS = tuple(row.name for row in REGISTRY if row.needs_model)
CLIP_FEATURES = ("backbone", "refined", "both")
SCALE_KNN_FEATURES = ("set", "set+refined")
BATCHNORM = ("auto", "on", "off", "search")
PROTOCOLS = ("standard", "official")


@dataclass
class ProbeOptions:
    """Everything that decides a probe run besides the inputs (all of it goes into the result JSON)."""

    split: str = "1"  # "1" | "2" | "3" | "all"
    knn_k: list[int] = field(default_factory=lambda: [DEFAULT_K])
    knn_temperature: float = DEFAULT_TEMPERATURE
    knn_center: str = "none"  # none | train | split
    scale_knn_feature: str = "set"  # set | set+refined
    scale_clip_feature: str = "backbone"  # SCALE_linear clip part: backbone | refined | both
    batchnorm: str = "auto"  # auto: on for MAE-family backbones; on | off | search (both, chosen on validation)
    head: str = "clip_set"  # Transformer / SCALE_ft head: clip_set | set
    low_shot: Optional[float] = None
    seeds: Optional[list[int]] = None  # None: [0], or [0, 1, 2] with low_shot
    val_fraction: float = 0.1
    grid_preset: str = "small"
    grid: dict[str, dict[str, Any]] = field(default_factory=dict)
    epochs: Optional[int] = None
    allow_incomplete: bool = False  # probe the done videos of a split still being extracted
    transformer_model: dict[str, Any] = field(default_factory=dict)  # ScaleConfig overrides without --model
    device: str = "auto"
    max_memory: str = ""  # the process's bound ("16G"; memory.py); "": half of the memory available at start
    protocol: str = "standard"  # standard | official (probes/official.py: the official eval code's choices)
    select_on_test: bool = False  # official only: pick epoch x aggregation on the TEST split, as the official code

    def resolved_seeds(self) -> list[int]:
        """The seeds to run: as given, else [0], or [0, 1, 2] with low-shot.

        >>> ProbeOptions().resolved_seeds(), ProbeOptions(low_shot=0.1).resolved_seeds()
        ([0], [0, 1, 2])
        """
        if self.seeds:
            return [int(seed) for seed in self.seeds]
        return [0, 1, 2] if self.low_shot else [0]

    def splits(self) -> list[int]:
        """The splits to run.

        >>> ProbeOptions(split="all").splits(), ProbeOptions(split="2").splits()
        ([1, 2, 3], [2])
        """
        split = str(self.split).strip().lower()
        if split == "all":
            return [1, 2, 3]
        if split in ("1", "2", "3"):
            return [int(split)]
        raise ScaleError(f"--split must be 1, 2, 3 or all, got {self.split!r}")

    def validate(self) -> None:
        """Raise a ScaleError naming the flag of the first option out of range."""
        from .transformer import HEADS  # imports torch: not at the top, which `scale probe --help` reads

        check_numbers(self, flags={"knn_k": "--knn"})
        self.splits()
        if not self.knn_k or any(int(k) < 1 for k in self.knn_k):
            raise ScaleError(f"--knn values must be positive integers, got {self.knn_k}")
        if self.knn_center not in CENTERING:
            raise ScaleError(f"--knn-center must be one of {', '.join(CENTERING)}, got {self.knn_center!r}")
        if self.scale_knn_feature not in SCALE_KNN_FEATURES:
            raise ScaleError(f"--scale-knn-feature must be one of {', '.join(SCALE_KNN_FEATURES)}")
        if self.scale_clip_feature not in CLIP_FEATURES:
            raise ScaleError(f"--scale-clip-feature must be one of {', '.join(CLIP_FEATURES)}")
        if self.batchnorm not in BATCHNORM:
            raise ScaleError(f"--bn must be one of {', '.join(BATCHNORM)}, got {self.batchnorm!r}")
        if self.head not in HEADS:
            raise ScaleError(f"--head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if self.low_shot is not None and not 0.0 < self.low_shot <= 1.0:
            raise ScaleError(f"--low-shot must be a fraction in (0, 1], got {self.low_shot}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ScaleError(f"--val-fraction must be in (0, 1), got {self.val_fraction}")
        if self.max_memory:
            parse_size(self.max_memory)
        if self.knn_temperature <= 0:
            raise ScaleError("--knn-temperature must be positive")
        if self.protocol not in PROTOCOLS:
            raise ScaleError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        if self.select_on_test and self.protocol != "official":
            raise ScaleError("--select-on-test reproduces the official code's test-set selection: "
                             "use it with --protocol official")
        if self.protocol == "official" and self.batchnorm == "search":
            raise ScaleError("--bn search selects on validation; --protocol official takes --bn auto, on or off")


def default_rows(has_model: bool) -> list[str]:
    """The rows run when no row flag is given: knn + linear, and their SCALE counterparts when a model is given.

    >>> default_rows(False), default_rows(True)
    (['knn', 'linear'], ['knn', 'scale_knn', 'linear', 'scale_linear'])
    """
    return [row.name for row in REGISTRY if row.default and (has_model or not row.needs_model)]


def rows_for(*, has_model: bool = False, **flags: bool) -> list[str]:
    """The rows `scale probe`'s row flags ask for (keywords: the flags' names, rows.flag_parameter); a
    flag brings its rows that need a model when a model is given (k-NN and Linear their SCALE rows).

    An empty list means no row flag was given (``run_probes`` then runs ``default_rows``). A flag whose
    every row needs a model (SCALE_ft's ``ft``) without one is an error.

    >>> rows_for(knn=True, linear=True, has_model=True)
    ['knn', 'scale_knn', 'linear', 'scale_linear']
    >>> rows_for(mlp=True, transformer=True)
    ['mlp', 'transformer']
    >>> rows_for(ft=True)
    Traceback (most recent call last):
    ...
    scale_toolkit.errors.ScaleError: --ft fine-tunes a trained SCALE model: pass --model RUN_DIR
    """
    by_parameter = {flag_parameter(flag): (flag, rows) for flag, rows in row_flags().items()}
    unknown = [name for name in flags if name not in by_parameter]
    if unknown:
        raise ScaleError(f"unknown probe flag {unknown[0]!r} (known: {', '.join(by_parameter)})")
    chosen: list[str] = []
    for name, (flag, rows) in by_parameter.items():
        if not flags.get(name):
            continue
        if not has_model and all(row.needs_model for row in rows):
            raise ScaleError(f"{flag} {_model_use(rows[0])} a trained SCALE model: pass --model RUN_DIR")
        chosen += [row.name for row in rows if has_model or not row.needs_model]
    return chosen


def _model_use(row: ProbeRow) -> str:
    return "fine-tunes" if row.model == "finetuned" else "reads"


def probe_request(*, knn: Optional[list[int]] = None, has_model: bool = False,
                  grid_file: Optional[str | Path] = None, **options: Any) -> tuple[list[str], ProbeOptions]:
    """`scale probe`'s flags as (rows, options).

    The rows are ``rows_for``'s: ``knn`` (None: no --knn flag) and every keyword that names a row flag
    (``linear``, ``mlp``, ...); --knn's values, when given, are the k-NN ks (else ``ProbeOptions``'
    default); a --grid file fills ``grid`` and ``transformer_model``; every other keyword is a
    ``ProbeOptions`` field.

    >>> rows, options = probe_request(knn=[10, 20], linear=True, split="all")
    >>> rows, options.knn_k, options.splits()
    (['knn', 'linear'], [10, 20], [1, 2, 3])
    >>> probe_request(mlp=True)[1].knn_k == ProbeOptions().knn_k
    True
    """
    switches = {flag_parameter(flag) for flag in row_flags()}
    flags = {name: bool(options.pop(name)) for name in list(options) if name in switches}
    rows = rows_for(has_model=has_model, **{**flags, "knn": knn is not None})
    if knn:
        options["knn_k"] = list(knn)
    if grid_file is not None:
        from .grid import load_grid_file  # imports torch (through .fit): not at the top, for `scale probe --help`

        options["grid"], options["transformer_model"] = load_grid_file(grid_file)
    return rows, ProbeOptions(**options)


def checked_rows(rows: Optional[list[str]], has_model: bool, protocol: str = "standard") -> list[str]:
    """The rows to run, in the paper's order: ``rows`` (default: ``default_rows``), each known, each
    SCALE row backed by a model, each one ``protocol`` runs.

    >>> checked_rows(["linear", "knn"], has_model=False)
    ['knn', 'linear']
    """
    rows = list(rows) if rows else default_rows(has_model)
    unknown = [row for row in rows if row not in ROW]
    if unknown:
        raise ScaleError(f"unknown probe {unknown[0]!r} (known: {', '.join(ROWS)})")
    if not has_model and any(row in MODEL_ROWS for row in rows):
        need = [ROW_LABELS[row] for row in rows if row in MODEL_ROWS]
        raise ScaleError(f"{', '.join(need)} need a trained SCALE model: pass --model RUN_DIR")
    other = [ROW[row] for row in rows if protocol not in ROW[row].protocols]
    if other:
        raise ScaleError(f"{other[0].label} ({other[0].flag}) has no --protocol {protocol} version; "
                         f"it runs with --protocol {' or '.join(other[0].protocols)}")
    return [row for row in ROWS if row in rows]

"""Numbers from flags, config files and TOML grids: finite, real numbers before any range check.

`nan` slips through every `x <= 0` test (all comparisons with NaN are false) and `inf` through
every `x > 0`, and TOML happily yields `nan`, `inf` or a string where a number belongs; each would
otherwise train a model full of NaN or die in a traceback far from the flag that caused it.
"""
from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

from .errors import ScaleError


def is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _numeric(type_text: str) -> bool:
    t = str(type_text).replace(" ", "")
    return ("float" in t or "int" in t) and not any(w in t for w in ("str", "bool", "dict", "Path"))


def check_numbers(obj: Any, label: str = "--{}", flags: dict[str, str] | None = None) -> None:
    """Every int/float field of dataclass `obj` (and every item of a list/tuple of them) must be a
    finite real number; None only where the field allows it. `label` names the field in messages,
    `flags` maps fields whose flag is spelled differently (timeout_s -> --timeout)."""
    for f in fields(obj):
        if not _numeric(f.type):
            continue
        value = getattr(obj, f.name)
        if value is None and ("Optional" in str(f.type) or "None" in str(f.type)):
            continue
        items = value if isinstance(value, (list, tuple)) else [value]
        bad = [v for v in items if not is_number(v)]
        if bad:
            name = (flags or {}).get(f.name) or label.format(f.name.replace("_", "-"))
            raise ScaleError(f"{name} must be a finite number, got {bad[0]!r}")

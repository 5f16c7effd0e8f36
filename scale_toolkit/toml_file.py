"""Reading the TOML files users hand to the toolkit (`--config`, `--grid`)."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from .errors import ScaleError


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """The parsed file; a missing or malformed file is one ScaleError line naming `what` ("config file")."""
    path = Path(path)
    if not path.is_file():
        raise ScaleError(f"{what} not found: {path}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ScaleError(f"{path} is not valid TOML: {exc}") from exc

"""Reading a small JSON file or checking a path without following links: every artefact's `is_ours` starts here."""
from __future__ import annotations

import json
from pathlib import Path


def json_or_none(path: Path) -> object:
    """The parsed JSON of `path`, or None when it cannot be read or parsed (untrusted input)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None


def plain_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def plain_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()

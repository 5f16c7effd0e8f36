"""A PNG scale drew (curves, confusion matrices): matplotlib writes a `Software` tEXt chunk naming itself."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ._read import plain_file


@dataclass(frozen=True)
class Picture:
    path: Path
    WHAT: ClassVar[str] = "a picture drawn by scale"

    @staticmethod
    def is_ours(path: str | os.PathLike[str]) -> bool:
        """The Software chunk comes before the image data."""
        path = Path(path)
        if not plain_file(path):
            return False
        with open(path, "rb") as f:
            head = f.read(4096)
        return head.startswith(b"\x89PNG\r\n\x1a\n") and b"tEXtSoftware\x00Matplotlib" in head.split(b"IDAT")[0]

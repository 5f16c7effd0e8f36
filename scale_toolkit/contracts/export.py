"""A `scale export` file (.npz or .h5): the store's arrays under their own names (`scale import` reads it back)."""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ._read import plain_file

REQUIRED = ("features", "coords", "labels", "video_ids", "class_names", "splits")  # what an import needs


@dataclass(frozen=True)
class ExportFile:
    path: Path
    WHAT: ClassVar[str] = "a file written by scale export"

    @staticmethod
    def is_ours(path: str | os.PathLike[str]) -> bool:
        """A .npz / .h5 that holds the store's array names (read by member names only: nothing is decompressed)."""
        path = Path(path)
        if not plain_file(path):
            return False
        try:
            if path.suffix.lower() == ".npz":
                with zipfile.ZipFile(path) as z:
                    return {f"{k}.npy" for k in REQUIRED} <= set(z.namelist())
            import h5py  # only for an .h5 (h5py is a dependency, but not of `--help`)

            with h5py.File(path, "r") as f:
                return set(REQUIRED) <= set(f.keys())
        except Exception:  # noqa: BLE001  not readable as its suffix says: not ours
            return False

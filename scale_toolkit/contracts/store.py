"""A feature store on disk: a Zarr v3 group whose attributes (in its zarr.json) carry scale's schema_version."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ._read import json_or_none, plain_dir

SCHEMA_KEY = "schema_version"  # the attribute that marks a Zarr group as a scale store
METADATA_FILE = "zarr.json"
DEFAULT_ROWS_PER_CHUNK = 16  # videos per block of a new store: the unit of extraction work, resume and sharding


@dataclass(frozen=True)
class StoreFiles:
    """Where a store's own metadata lies."""

    path: Path
    WHAT: ClassVar[str] = "a scale feature store"

    @property
    def metadata(self) -> Path:
        return self.path / METADATA_FILE

    @staticmethod
    def is_ours(path: str | os.PathLike[str]) -> bool:
        """A Zarr group whose attributes carry scale's schema_version."""
        path = Path(path)
        meta = json_or_none(StoreFiles(path).metadata) if plain_dir(path) else None
        return isinstance(meta, dict) and isinstance(meta.get("attributes"), dict) and SCHEMA_KEY in meta["attributes"]

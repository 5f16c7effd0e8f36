"""A store's arrays, typed: zarr hands back `Array | Group` for any name; scale's stores hold arrays there."""
from __future__ import annotations

from typing import Any

import zarr

from ..errors import ScaleError


def array_of(group: zarr.Group, name: str) -> zarr.Array[Any]:
    """The array `name` of `group`; a group in its place is damage, said in one line."""
    node = group[name]
    if not isinstance(node, zarr.Array):
        raise ScaleError(f"{group.store_path}: '{name}' is a group, not an array: the store is damaged; "
                         "restore it from a copy or extract it again into a new --out")
    return node

"""Recognise what scale itself wrote, before replacing it or writing into it.

`--overwrite`, `--build-index` over an old index, `--json` over an old result, `scale train
--out` and `scale demo --out` may only replace (or write into) something that is recognisably
a scale store / index / run / result of the right kind. Anything else - a folder of the
user's files, `sub/..`, a plain file, a symlink - is refused in one line: scale never deletes
what it cannot prove it made.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import ScaleError
from .run_files import CONFIG_FILE, OWN_HIDDEN_PREFIXES


def _json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def is_feature_store(path: str | os.PathLike) -> bool:
    """A Zarr group whose attributes carry scale's schema_version."""
    path = Path(path)
    meta = _json(path / "zarr.json") if path.is_dir() and not path.is_symlink() else None
    return isinstance(meta, dict) and isinstance(meta.get("attributes"), dict) and "schema_version" in meta["attributes"]


def is_run_dir(path: str | os.PathLike) -> bool:
    """A `scale train` run directory: config.json with train/model sections."""
    path = Path(path)
    meta = _json(path / CONFIG_FILE) if path.is_dir() and not path.is_symlink() else None
    return isinstance(meta, dict) and "train" in meta and "model" in meta


def is_index(path: str | os.PathLike) -> bool:
    """An index file written by `scale retrieve --build-index` (its sidecar says so)."""
    from .retrieval.index import SIDECAR_FORMAT, sidecar_path

    path = Path(path)
    meta = _json(sidecar_path(path)) if path.is_file() and not path.is_symlink() else None
    return isinstance(meta, dict) and meta.get("format") == SIDECAR_FORMAT


def is_json_result(path: str | os.PathLike) -> bool:
    """A JSON object file (what `--json` writes)."""
    path = Path(path)
    return path.is_file() and not path.is_symlink() and isinstance(_json(path), dict)


def is_export(path: str | os.PathLike) -> bool:
    """A .npz / .h5 written by `scale export` (it holds the store's array names)."""
    from .store.interchange import REQUIRED

    path = Path(path)
    if not path.is_file() or path.is_symlink():
        return False
    try:
        if path.suffix.lower() == ".npz":
            import numpy as np

            with np.load(path, allow_pickle=False) as data:
                return set(REQUIRED) <= set(data.files)
        import h5py

        with h5py.File(path, "r") as f:
            return set(REQUIRED) <= set(f.keys())
    except Exception:  # not readable as its suffix says: not ours
        return False


_KINDS = {
    "store": (is_feature_store, "a scale feature store"),
    "run": (is_run_dir, "a scale training run"),
    "index": (is_index, "a scale retrieval index (with its .json sidecar)"),
    "json": (is_json_result, "a JSON result file"),
    "export": (is_export, "a file written by scale export"),
}


def check_replaceable(path: str | os.PathLike, kind: str, flag: str = "--out") -> None:
    """Raise ScaleError unless `path` is absent or is scale's own output of `kind`."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    test, what = _KINDS[kind]
    if path.is_symlink():
        raise ScaleError(f"{flag} {path} is a symlink; refusing to replace it: give the real path or another {flag}")
    if ".." in path.parts:
        raise ScaleError(f"{flag} {path} contains '..'; refusing to replace it: give a plain path")
    if path.resolve() in (Path.cwd().resolve(), Path.home().resolve(), Path("/")):
        raise ScaleError(f"{flag} {path} is the current, home or root folder; refusing to replace it")
    if not test(path):
        raise ScaleError(f"{flag} {path} exists and is not {what}; refusing to replace it: "
                         f"choose another {flag} (or move it away yourself)")


def check_run_dir(path: str | os.PathLike) -> None:
    """`scale train --out`: absent, empty (but for scale's own hidden files) or a run directory."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir():
        raise ScaleError(f"--out {path} exists and is not a directory; choose another --out")
    if is_run_dir(path):
        return
    foreign = [p.name for p in path.iterdir() if not p.name.startswith(OWN_HIDDEN_PREFIXES)]
    if foreign:
        raise ScaleError(f"--out {path} is a folder of other files (e.g. {foreign[0]}), not a training run; "
                         "refusing to write into it: choose a new or empty --out")

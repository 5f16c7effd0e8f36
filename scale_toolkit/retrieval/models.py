"""Loading a SCALE model for retrieval, with a fingerprint of the exact weights used."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..errors import ScaleError

MODEL_FILES = ("model.pt", "checkpoint_last.pt")  # the order scale_toolkit.model.io.load_model uses


def model_file(path: str | Path) -> Path:
    """The weights file a run directory (or a file path) resolves to."""
    p = Path(path)
    if p.is_dir():
        for name in MODEL_FILES:
            if (p / name).exists():
                return p / name
        raise ScaleError(f"no {' or '.join(MODEL_FILES)} in {p}; train a model with `scale train --out {p}`")
    if not p.exists():
        raise ScaleError(f"SCALE model not found: {p}")
    return p


def model_fingerprint(path: str | Path) -> str:
    """sha256 (first 16 hex digits) of the weights file of a run directory or checkpoint."""
    h = hashlib.sha256()
    with open(model_file(path), "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()[:16]


def load_retrieval_model(path: str | Path, device: str | None = None) -> tuple[Any, dict]:
    """(model in eval mode, info) where info = {path, file, fingerprint, input_dim, hidden}."""
    from ..model import load_model

    model, config = load_model(path, map_location=device or "cpu")
    mcfg = config.get("model", {})
    info = {
        "path": str(Path(path).resolve()),
        "file": str(model_file(path).resolve()),
        "fingerprint": model_fingerprint(path),
        "input_dim": mcfg.get("input_dim"),
        "hidden": mcfg.get("hidden"),
        "meta_backbone": _trained_backbone(config.get("meta", {})),
    }
    return model, info


def _backbone_name(value) -> str | None:
    if isinstance(value, dict):
        value = value.get("name")
    return str(value) if value else None


def _trained_backbone(meta: dict) -> str | None:
    """The backbone (spec name) of the store the model was trained on, if the run recorded it."""
    store = meta.get("store")
    return _backbone_name(store.get("backbone")) if isinstance(store, dict) else None


def check_model_matches_store(info: dict, store_attrs: dict, feature_dim: int) -> None:
    """A clear error when the model cannot consume the store's features."""
    if info.get("input_dim") not in (None, feature_dim):
        raise ScaleError(f"the SCALE model expects {info['input_dim']}-d clip features but the store has "
                         f"{feature_dim}-d ones; use a store extracted with the backbone the model was trained on")
    trained, here = info.get("meta_backbone"), _backbone_name(store_attrs.get("backbone"))
    if trained and here and trained != here:
        raise ScaleError(f"the SCALE model was trained on {trained} features but the store holds {here} features; "
                         "use a store extracted with the same backbone")

"""Loading a SCALE model for retrieval, with a fingerprint of the exact weights used."""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from ..errors import ScaleError
from ..files import file_sha256
from ..model.io import model_file
from ..store.attributes import StoreAttrs, backbone_name


def model_fingerprint(path: str | Path) -> str:
    """sha256 (first 16 hex digits) of the weights file of a run directory or checkpoint."""
    return file_sha256(model_file(path), n_hex=16)


class RetrievalModel(NamedTuple):
    """A SCALE model loaded for retrieval: the module (eval mode) and what results record of it
    (``info``: path, file, fingerprint, input_dim, hidden, meta_backbone)."""

    module: Any
    info: dict


def load_retrieval_model(path: str | Path, device: str | None = None) -> RetrievalModel:
    """The model of a run directory or model file, in eval mode, with its info (see ``RetrievalModel``)."""
    from ..model import load_model

    model, config = load_model(path, map_location=device or "cpu")
    model_config = config.get("model", {})
    info = {
        "path": str(Path(path).resolve()),
        "file": str(model_file(path).resolve()),
        "fingerprint": model_fingerprint(path),
        "input_dim": model_config.get("input_dim"),
        "hidden": model_config.get("hidden"),
        "meta_backbone": _trained_backbone(config.get("meta", {})),
    }
    return RetrievalModel(model, info)


def _trained_backbone(meta: dict) -> str | None:
    """The backbone (spec name) of the store the model was trained on, if the run recorded it."""
    store = meta.get("store")
    return backbone_name(store) if isinstance(store, dict) else None


def check_model_matches_store(info: dict, store_attrs: StoreAttrs, feature_dim: int) -> None:
    """A clear error when the model cannot consume the store's features."""
    if info.get("input_dim") not in (None, feature_dim):
        raise ScaleError(f"the SCALE model expects {info['input_dim']}-d clip features but the store has "
                         f"{feature_dim}-d ones; use a store extracted with the backbone the model was trained on")
    trained, here = info.get("meta_backbone"), store_attrs.spec_name
    if trained and here and trained != here:
        raise ScaleError(f"the SCALE model was trained on {trained} features but the store holds {here} features; "
                         "use a store extracted with the same backbone")

"""Loading a SCALE model for retrieval, with a fingerprint of the exact weights used."""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from ..files import file_sha256
from ..run_files import model_file
from ..store.attributes import StoreAttrs, check_model_fits_store


def model_fingerprint(path: str | Path) -> str:
    """sha256 (first 16 hex digits) of the weights file of a run directory or checkpoint."""
    return file_sha256(model_file(path), n_hex=16)


class RetrievalModel(NamedTuple):
    """A SCALE model loaded for retrieval: the module (eval mode) and what results record of it
    (``info``: path, file, fingerprint, input_dim, hidden, trained_on: the attributes the run recorded
    of its training store, for ``check_model_fits_store``)."""

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
        "trained_on": StoreAttrs.of(config.get("meta", {}).get("store")),
    }
    return RetrievalModel(model, info)



def check_loaded_model_fits(model_info: dict, store: Any) -> None:
    """`check_model_fits_store` for a model loaded by `load_retrieval_model` (its ``info``)."""
    trained_on = StoreAttrs.of(model_info.get("trained_on"))
    check_model_fits_store(model_info.get("path"), model_info.get("input_dim"), trained_on, store)

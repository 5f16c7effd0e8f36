"""Loading a SCALE model for retrieval, with a fingerprint of the exact weights used."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..files import file_sha256
from ..run_files import model_file
from ..store.attributes import StoreAttrs


def model_fingerprint(path: str | Path) -> str:
    """sha256 (first 16 hex digits) of the weights file of a run directory or checkpoint."""
    return file_sha256(model_file(path), n_hex=16)


def load_retrieval_model(path: str | Path, device: str | None = None) -> tuple[Any, dict]:
    """(model in eval mode, info) where info = {path, file, fingerprint, input_dim, hidden, trained_on}
    (trained_on: the attributes the run recorded of its training store, for `check_model_fits_store`)."""
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
    return model, info


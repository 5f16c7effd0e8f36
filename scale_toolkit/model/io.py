"""Save and load trained SCALE models (run directory or checkpoint file)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from scale_toolkit.atomic import atomic_open
from scale_toolkit.errors import ScaleError
from scale_toolkit.model.config import ScaleConfig
from scale_toolkit.model.scale import ScaleModel
from scale_toolkit.run_files import MODEL_FILE, model_file


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through a temp file and a rename (never a half-written checkpoint)."""
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


def _unwrap(model: torch.nn.Module) -> ScaleModel:
    inner: ScaleModel = getattr(model, "module", model)  # type: ignore[arg-type]  # DDP wraps it as .module
    return inner


def save_model(model: ScaleModel, run_dir: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Write ``run_dir/model.pt`` (weights + model config + ``extra`` metadata) atomically."""
    model = _unwrap(model)
    path = Path(run_dir) / MODEL_FILE
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_save({"format": "scale-model", "version": 1, "model_config": model.config.to_dict(),
                 "state_dict": state, "meta": extra or {}}, path)
    return path


def non_finite_weights(state_dict: dict[str, Any]) -> str | None:
    """The name of the first floating-point tensor holding NaN or inf, or None."""
    for name, value in state_dict.items():
        if torch.is_tensor(value) and value.is_floating_point() and not torch.isfinite(value).all():
            return name
    return None


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[ScaleModel, dict[str, Any]]:
    """Load a model from a run directory (``model.pt``, else ``checkpoint_last.pt``) or a file.

    Returns (model in eval mode, config dict with keys "model" (ScaleConfig fields) and
    "meta" (train config, store attributes, ... as saved)).
    """
    if isinstance(map_location, str):  # a bad --device is a bad device, never a "corrupted model"
        from scale_toolkit.runtime import resolve_device

        map_location = resolve_device(map_location)
    file = model_file(path)
    if file.is_file() and file.stat().st_size == 0:
        raise ScaleError(f"cannot read SCALE model {file}: the file is empty (0 bytes; a copy or download was cut "
                         "short); point --model at a run directory written by `scale train`")
    try:
        obj = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt or foreign file; torch's own message spans many lines
        raise ScaleError(f"cannot read SCALE model {file}: not a PyTorch file, or truncated/corrupted "
                         f"({type(e).__name__}); point --model at a run directory written by `scale train`") from e
    if not isinstance(obj, dict) or obj.get("format") not in ("scale-model", "scale-checkpoint"):
        raise ScaleError(f"{file} is not a SCALE model or checkpoint")
    bad = non_finite_weights(obj.get("state_dict") or {})
    if bad:  # a diverged run: its scores would be meaningless
        raise ScaleError(f"{file} holds NaN or inf weights ({bad}): its training diverged; retrain (lower --lr)")
    cfg = ScaleConfig.from_dict(obj["model_config"])
    model = ScaleModel(cfg)
    try:
        model.load_state_dict(obj["state_dict"])
    except (RuntimeError, KeyError) as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        detail = (lines[1] if len(lines) > 1 else lines[0] if lines else type(e).__name__)[:200]
        raise ScaleError(f"{file}: its weights do not fit the architecture its config describes ({detail}); "
                         "the file is damaged or was edited: retrain, or use another model") from e
    model.eval()
    return model, {"model": cfg.to_dict(), "meta": obj.get("meta", {})}

"""`describe(path)`: what a feature store or a training run directory holds."""
from __future__ import annotations

import json
from pathlib import Path

from .errors import ScaleError
from .store import FeatureStore


def describe(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ScaleError(f"not found: {path}")
    if (path / "zarr.json").exists():
        return FeatureStore.open(path).info()
    config = path / "config.json"
    if config.exists():
        info = {"run_dir": str(path), "config": json.loads(config.read_text())}
        metrics = path / "metrics.jsonl"
        if metrics.exists():
            lines = [ln for ln in metrics.read_text().splitlines() if ln.strip()]
            info["logged_steps"] = len(lines)
            if lines:
                info["last_metrics"] = json.loads(lines[-1])
        info["checkpoints"] = sorted(p.name for p in path.glob("*.pt"))
        return info
    raise ScaleError(f"{path} is neither a feature store nor a training run directory")

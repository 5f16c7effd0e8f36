"""`describe(path)`: what a feature store or a training run directory holds."""
from __future__ import annotations

import json
from pathlib import Path

from .errors import ScaleError
from .run_files import CONFIG_FILE, METRICS_FILE
from .store import FeatureStore
from .store.summary import StoreInfo


def describe(path: str | Path, verify: bool = False) -> dict:
    """`verify`: also check every stored block against its checksum (reads the whole store)."""
    path = Path(path)
    if not path.exists():
        raise ScaleError(f"not found: {path}")
    if (path / "zarr.json").exists():
        fs = FeatureStore.open(path)
        damaged = fs.verify() if verify else []
        info = store_table(fs.info(check_row_state=not verify))  # with --verify, damage is listed below
        if verify:
            ids = fs.video_ids
            for d in damaged:
                d["video_ids"] = ids[d["rows"][0]:d["rows"][1] + 1]
            info["verify"] = {"checksums": fs.has_checksums, "metadata_checksums": fs.metadata_checked,
                              "damaged_blocks": damaged,
                              "damaged_rows": sum(d["rows"][1] - d["rows"][0] + 1 for d in damaged)}
        return info
    if verify:
        raise ScaleError(f"--verify checks feature stores; {path} is not one")
    config = path / CONFIG_FILE
    if config.exists():
        try:
            info = {"run_dir": str(path), "config": json.loads(config.read_text())}
        except (OSError, ValueError) as exc:
            raise ScaleError(f"{config} is damaged ({type(exc).__name__}: {str(exc)[:80]}); it is rewritten "
                             "by `scale train --resume` with the run's flags") from None
        metrics = path / METRICS_FILE
        if metrics.exists():
            entries, damaged = [], 0
            for ln in metrics.read_text(errors="replace").splitlines():
                try:
                    entries.append(json.loads(ln)) if ln.strip() else None
                except ValueError:  # a line cut by a kill, or damaged: counted, not fatal
                    damaged += 1
            info["logged_steps"] = len(entries)
            if damaged:
                info["damaged_metrics_lines"] = damaged
            if entries:
                info["last_metrics"] = entries[-1]
        info["checkpoints"] = sorted(p.name for p in path.glob("*.pt"))
        return info
    raise ScaleError(f"{path} is neither a feature store nor a training run directory")


def store_table(info: StoreInfo) -> dict:
    """A store's info as `scale info` shows it (and writes it with --json), row by row."""
    made = info.attrs
    return {
        "path": str(info.path),
        "videos": info.videos,
        "clips_per_video": info.clips_per_video,
        "feature_dim": info.feature_dim,
        "status": info.status,
        "splits_done": ({str(split): counts for split, counts in info.done_per_split.items()}
                        if info.done_per_split is not None else "none (every video is SSL training data)"),
        "classes": info.classes,
        "dataset": made.dataset,
        "backbone": made.spec_name,
        "checkpoint_sha256": made.checkpoint_sha256,
        "view": made.view,
        "precision": made.precision_text,
        "schema_version": info.schema_version,
        "toolkit_version": made.toolkit_version,
        "disk_bytes": info.disk_bytes,
        "failures": info.failures,
    }

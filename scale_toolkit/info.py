"""`describe(path)`: what a feature store, a training run directory or a retrieval index holds.

Each answer has a ``summary`` (a few plain rows, what `scale info` prints) and everything else
(what `scale info --json` prints): a run's whole config, a store's counts, an index's sidecar
less its per-video lists.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from .contracts.index import IndexFiles
from .errors import ScaleError
from .retrieval.index import read_sidecar
from .run_files import CONFIG_FILE, METRICS_FILE, MODEL_FILE, SUMMARY_FILE
from .store import FeatureStore
from .store.attributes import StoreAttrs
from .store.summary import StoreInfo


def describe(path: str | Path, verify: bool = False) -> dict:
    """`verify`: also check every stored block against its checksum (reads the whole store)."""
    path = Path(path)
    if not path.exists():
        raise ScaleError(f"not found: {path}")
    index = _index_of(path)
    if index is not None:
        if verify:
            raise ScaleError(f"--verify checks feature stores; {path} is a retrieval index")
        return describe_index(index)
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
        info["summary"] = run_summary(path, info)
        return info
    raise ScaleError(f"{path} is neither a feature store, a training run directory nor a retrieval index "
                     "(INDEX with its INDEX.json)")


def _index_of(path: Path) -> Optional[Path]:
    """The index file ``path`` names: the index itself (a file with an INDEX.json beside it), its
    sidecar INDEX.json or its media folder INDEX.media; None for anything else."""
    for suffix in (".json", ".media"):  # the sidecar or the media folder: the index they belong to
        if path.name.endswith(suffix) and IndexFiles.at(path.with_name(path.name[:-len(suffix)])).sidecar.is_file():
            return path.with_name(path.name[:-len(suffix)])
    if path.is_file() and IndexFiles.at(path).sidecar.is_file():
        return path
    return None


def describe_index(path: Path) -> dict:
    """A retrieval index from its sidecar (FAISS is not loaded): what it was built from and what it holds."""
    meta = read_sidecar(path)
    store = meta.get("store") or {}
    attrs = StoreAttrs.of(store.get("attrs") or {})
    model = meta.get("model") or None
    media = meta.get("media") or None
    params = meta.get("index_params") or {}
    size = path.stat().st_size if path.is_file() else None
    matches = size == meta.get("index_bytes") or size == (meta.get("previous") or {}).get("index_bytes")
    media_row = "none (built without --thumbs: the page shows no posters)"
    if media:
        items = media.get("items") or []
        media_row = (f"{sum(1 for i in items if i and i.get('poster'))} posters, "
                     f"{sum(1 for i in items if i and i.get('preview'))} previews in {media.get('dir')}"
                     + (f", {len(media['failed'])} videos without media" if media.get("failed") else ""))
    summary = {
        "index": str(path),
        "type": params.get("index_type", "?") + (f" (nlist {params['nlist']}, nprobe {params['nprobe']})"
                                                  if params.get("nlist") else ""),
        "videos": f"{meta.get('ntotal', meta.get('n_videos'))} ({meta.get('gallery', '?')}), "
                  f"{len(meta.get('class_names') or [])} classes",
        "descriptor": f"{meta.get('descriptor')}, {meta.get('dim')}-d" + (", centred" if meta.get("center") else ""),
        "backbone": attrs.backbone_label or "not recorded",
        "checkpoint_sha256": attrs.checkpoint_sha256 or "not recorded",
        "model": (model.get("path") or model.get("file") or "recorded") if model else "none (clip features, no SCALE model)",
        "store": store.get("path", "not recorded"),
        "media": media_row,
        "created": meta.get("created", "not recorded"),
        "size": "missing" if size is None else _size(size),
        "sidecar": "matches the index file" if matches else "does NOT match the index file: rebuild with --build-index",
    }
    lists = ("video_ids", "labels", "center_vector", "media", "previous")  # per-video lists: --json stays readable
    return {"summary": summary, **{k: v for k, v in meta.items() if k not in lists},
            "media": None if not media else {k: v for k, v in media.items() if k != "items"}}


def run_summary(path: Path, info: dict) -> dict[str, Any]:
    """A run directory in a few rows: epochs done, the last and best metrics, the model, the store, when."""
    config = info["config"]
    effective, train, model = config.get("effective", {}), config.get("train", {}), config.get("model", {})
    store = config.get("store", {})
    rows = _metric_rows(path)
    last = rows[-1] if rows else {}
    planned = effective.get("epochs", train.get("epochs"))
    finished = (path / SUMMARY_FILE).exists() and (path / MODEL_FILE).exists()
    summary: dict[str, Any] = {
        "run_dir": str(path),
        "epochs": f"{last.get('epoch', 0)} of {planned} done" + ("" if finished else " (not finished: --resume continues it)"),
    }
    if last:
        summary["last epoch"] = (f"loss {last['loss']:.4f}, MCM top-1 {last['mcm_acc']:.3f}, SET top-1 {last['set_acc']:.3f} "
                                 "(training batches)")
    for key, name in (("val_set_acc", "SET"), ("val_mcm_acc", "MCM")):
        held = [r for r in rows if key in r]
        if held:
            best = max(held, key=lambda r: r[key])
            summary[f"best held-out {name} top-1"] = f"{best[key]:.3f} (epoch {best['epoch']})"
    weights = path / MODEL_FILE
    weights_size = f"; {MODEL_FILE} {_size(weights.stat().st_size)}" if weights.exists() else ""
    summary["model"] = (f"hidden {model.get('hidden')}, {model.get('layers')} layers, {model.get('heads')} heads, "
                        f"input {model.get('input_dim')}-d{weights_size}")
    summary["store"] = (f"{store.get('path')} (split {store.get('split')}, {store.get('n_train_videos')} train videos, "
                        f"backbone {(store.get('backbone') or {}).get('name', '?')})")
    summary["training"] = (f"batch {effective.get('batch_size')}, {effective.get('total_steps')} steps, lr {train.get('lr')}, "
                           f"{effective.get('device')} {effective.get('precision')}")
    written = datetime.fromtimestamp((path / CONFIG_FILE).stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
    summary["created"] = f"{written} (when config.json was written: the start, or the last --resume)"
    summary["checkpoints"] = ", ".join(info.get("checkpoints") or []) or "none"
    return summary


def _size(n: int) -> str:
    """
    >>> _size(3117), _size(93 * 2**20)
    ('3.0 KiB', '93.0 MiB')
    """
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}"


def _metric_rows(path: Path) -> list[dict]:
    rows = []
    metrics = path / METRICS_FILE
    for ln in (metrics.read_text(errors="replace").splitlines() if metrics.exists() else []):
        try:
            row = json.loads(ln)
        except ValueError:  # a line cut by a kill: `logged_steps` / `damaged_metrics_lines` count it
            continue
        if isinstance(row, dict) and all(k in row for k in ("epoch", "loss", "mcm_acc", "set_acc")):
            rows.append(row)
    return rows


def store_table(info: StoreInfo) -> dict:
    """A store's info as `scale info` shows it (and writes it with --json), row by row."""
    made = info.attrs
    return {
        "path": str(info.path),
        "videos": info.videos,
        "clips_per_video": info.clips if info.clips is not None else info.clips_per_video,
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

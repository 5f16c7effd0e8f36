"""Build a gallery index from a store, and query it by video id or by a video file.

The gallery of `build_gallery_index` is every extracted (done) video of the store, or, with
`split=N`, the train-split videos of split N (the retrieval protocol's gallery). The sidecar
(INDEX.json) records, in index order, the video ids, labels and class names, plus the
descriptor kind, centring (with the gallery mean when on), the index parameters, the store's
path, fingerprint and attributes (backbone, checkpoint, view), and the model's path and
fingerprint, so a query can be embedded exactly as the gallery was.

Centring at query time uses the gallery mean stored in the sidecar (a single query has no
split of its own to centre by).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import __version__
from ..errors import ScaleError
from ..ownership import check_replaceable
from ..store import DONE, PENDING, FeatureStore
from ..store.attributes import StoreAttrs
from .descriptors import (
    BASELINE_KIND,
    DESCRIPTOR_KINDS,
    check_kind,
    descriptor_mean,
    finalize_descriptors,
    store_descriptors,
    video_descriptors,
)
from .index import IndexParams, build_index, index_bytes, load_index, save_index, search
from .media import reachable, write_gallery_media
from .models import check_loaded_model_fits, load_retrieval_model, model_fingerprint


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def video_path(attrs: StoreAttrs, video_id: str) -> str:
    """Where a video of the store lives: dataset root / id when the store records a root, else the id.

    >>> video_path(StoreAttrs(dataset_root="/data/ucf101"), "c0/v1.avi"), video_path(StoreAttrs(), "c0/v1.avi")
    ('/data/ucf101/c0/v1.avi', 'c0/v1.avi')
    """
    return str(Path(attrs.dataset_root) / video_id) if attrs.dataset_root else video_id


def build_gallery_index(
    store: FeatureStore,
    index_path: str | Path,
    *,
    split: int | None = None,
    model: Any = None,
    model_info: dict | None = None,
    descriptor: str | None = None,
    center: bool = False,
    params: IndexParams | None = None,
    allow_incomplete: bool = False,
    device: str | None = None,
    thumbs: bool | None = None,
    thumbs_progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Compute the gallery descriptors, build the index and write it with its sidecar atomically.

    `descriptor` defaults to "mean" without a model and "set" with one. `thumbs` writes a poster
    and a preview per gallery video into INDEX.media/ for `scale serve` (None: when the videos
    are reachable; see scale_toolkit.retrieval.media). Returns the sidecar plus build timings
    ("build_seconds", "descriptor_seconds", "media_seconds").
    """
    kind = _checked_kind(descriptor, store, index_path, model, model_info)
    rows, gallery = _gallery_rows(store, split, allow_incomplete)
    ids = store.video_ids
    gallery_ids = [ids[i] for i in rows]
    # checked before minutes of descriptors: an explicit --thumbs needs the videos
    store_attrs = StoreAttrs.of(store)
    media_files = _media_files(gallery_ids, store_attrs, thumbs)
    t0 = time.perf_counter()
    raw = store_descriptors(store, rows, kind=kind, model=model, device=device)
    center_vec = descriptor_mean(raw) if center else None
    desc = finalize_descriptors(raw, center_vec)
    t1 = time.perf_counter()
    index, resolved = build_index(desc, params)
    t2 = time.perf_counter()
    media = None
    if media_files is not None:
        media = write_gallery_media(index_path, gallery_ids, media_files, store_attrs.decoder or "auto", thumbs_progress)
    t3 = time.perf_counter()
    sidecar = {
        "gallery": gallery,
        "split": split,
        "n_videos": int(len(rows)),
        "video_ids": gallery_ids,
        "labels": [int(v) for v in store.labels[rows]],
        "class_names": store.class_names,
        "descriptor": kind,
        "center": bool(center),
        "center_vector": None if center_vec is None else [float(v) for v in center_vec],
        "similarity": "cosine (inner product of L2-normalised descriptors)",
        "index_params": asdict(resolved),
        **_provenance(store, model, model_info),
        "media": media,
        "toolkit_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    save_index(index, index_path, sidecar)
    return {**sidecar, "descriptor_seconds": round(t1 - t0, 3), "build_seconds": round(t2 - t1, 3),
            "media_seconds": round(t3 - t2, 3), "index_bytes": index_bytes(index)}


def _checked_kind(descriptor: str | None, store: FeatureStore, index_path: str | Path, model: Any,
                  model_info: dict | None) -> str:
    """The gallery's descriptor kind, after every check that needs no descriptor: a known kind that
    fits the model (or its absence), an index path scale may replace, a model that fits the store."""
    kind = descriptor or (BASELINE_KIND if model is None else "set")
    check_kind(kind, model is not None)
    check_replaceable(index_path, "index", "--build-index")  # before any work: never replace a user's file
    if model is not None and kind == BASELINE_KIND:
        raise ScaleError("with --model the index holds SCALE descriptors; choose --descriptor set, refined or set+mean")
    if model is not None and model_info:
        check_loaded_model_fits(model_info, store)
    return kind


def _provenance(store: FeatureStore, model: Any, model_info: dict | None) -> dict:
    """What the sidecar records of the store and the model, so a query is embedded as the gallery was."""
    return {
        "store": {"path": str(Path(store.path).resolve()), "fingerprint": store.fingerprint(),
                  "n_clips": store.n_clips, "feature_dim": store.feature_dim, "attrs": _json_safe(store.attrs)},
        "model": None if model is None else {k: (model_info or {}).get(k) for k in ("path", "file", "fingerprint")},
    }


def _gallery_rows(store: FeatureStore, split: int | None, allow_incomplete: bool) -> tuple[np.ndarray, str]:
    """(rows, what they are): the extracted videos of the store, or the train videos of `split`."""
    if split is None:
        status = store.status
        rows = np.flatnonzero(status == DONE)
        gallery = "all extracted videos of the store"
        pending = int((status == PENDING).sum())
    else:
        rows = store.split_indices(split, "train")
        every = store.split_indices(split, "train", only_done=False)
        pending = int((store.status[every] == PENDING).sum())
        gallery = f"train-split videos of split {split}"
    if pending and not allow_incomplete:
        raise ScaleError(f"{pending} gallery videos are still pending in {store.path}; finish extraction "
                         "(rerun scale extract) or pass --allow-incomplete")
    if len(rows) == 0:
        raise ScaleError(f"no extracted videos for the gallery ({gallery}) in {store.path}")
    return rows, gallery


def _media_files(video_ids: list[str], attrs: StoreAttrs, thumbs: bool | None) -> list[str] | None:
    """The gallery's video files when media are to be written (None: off, or auto and not here)."""
    if thumbs is False:
        return None
    files = [video_path(attrs, vid) for vid in video_ids]
    if not reachable(files):
        if thumbs:
            raise ScaleError(f"--thumbs needs the gallery videos, but {files[0]} is not there "
                             "(the store records its dataset root); build with --no-thumbs")
        return None
    return files


def _check_checkpoint(attrs: StoreAttrs) -> None:
    """A video file can only be embedded where the store's checkpoint is."""
    if attrs.checkpoint_missing():
        name = attrs.backbone_label or "the backbone"
        raise ScaleError(f"cannot embed a video file: the store was extracted with {name} checkpoint {attrs.checkpoint}, "
                         "which does not exist on this machine; restore the checkpoint at that path, "
                         "or query by video id instead")


def embed_file(path: Path, attrs: dict, feature_dim: int, device: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode and embed a video file exactly as the store was made (its view, backbone, checkpoint)."""
    _check_checkpoint(StoreAttrs.of(attrs))
    try:
        from ..extract import embed_video
    except ImportError as exc:
        raise ScaleError("embedding video files needs the extraction pipeline (scale_toolkit.extract.embed_video), "
                         "which this install lacks; query by video id instead") from exc
    features, coords = embed_video(path, attrs, device=device or "cpu")
    features = np.asarray(features, dtype=np.float32)
    coords = np.asarray(coords, dtype=np.float32)
    if features.ndim != 2 or features.shape[1] != feature_dim or coords.shape != (features.shape[0], 6):
        raise ScaleError(f"embedding {path} gave features {features.shape} / coords {coords.shape}, "
                         f"but the index was built from {feature_dim}-d features")
    return features, coords


class OpenIndex:
    """An index with what its queries need: sidecar, SCALE model, store (when still there).

    Shared by `query_index` (one query from the CLI) and `scale serve` (many queries), so both
    embed and search a query the same way.
    """

    def __init__(self, index_path: str | Path, *, store_path: str | Path | None = None, model: Any = None,
                 device: str | None = None) -> None:
        self.path = Path(index_path)
        self.index, self.meta = load_index(index_path)
        self.device = device
        self.kind = self.meta["descriptor"]
        if self.kind not in DESCRIPTOR_KINDS:
            raise ScaleError(f"index sidecar names unknown descriptor {self.kind!r}")
        self.notes: list[str] = []
        if self.meta.get("model") and model is None:
            m_path = self.meta["model"]["path"]
            if not Path(m_path).exists():
                raise ScaleError(f"the index was built with the SCALE model {m_path}, which is no longer there; "
                                 "restore it or rebuild the index")
            if model_fingerprint(m_path) != self.meta["model"]["fingerprint"]:
                raise ScaleError(f"the SCALE model at {m_path} changed since the index was built; rebuild the index")
            model, _ = load_retrieval_model(m_path, device)
        self.model = model if self.meta.get("model") else None
        store_meta = self.meta["store"]
        self.store: FeatureStore | None = None
        self.store_path = Path(store_path) if store_path else Path(store_meta["path"])
        if self.store_path.exists():
            self.store = FeatureStore.open(self.store_path)
            if self.store.fingerprint() != store_meta["fingerprint"]:
                self.notes.append(f"the store {self.store_path} changed since the index was built")
        self.store_ids: list[str] = self.store.video_ids if self.store is not None else []
        self.attrs: dict = store_meta.get("attrs") or {}  # the store's attributes at build time: how to embed a file
        self.store_attrs = StoreAttrs.of(self.attrs)
        self.feature_dim = int(store_meta["feature_dim"])

    def store_row(self, video_id: str) -> int | None:
        return self.store.row_of(video_id) if self.store is not None else None

    def read_video(self, video_id: str) -> tuple[np.ndarray, np.ndarray, dict]:
        """Stored (features [1, V, D], coords [1, V, 6], query info) of a video id of the store."""
        row = self.store.row_of(video_id)
        if self.store.status_of([row])[0] != DONE:
            raise ScaleError(f"video {video_id} has no extracted features in {self.store_path} (status not done)")
        data = self.store.read([row], names=("features", "coords"))
        label = int(self.store.labels[row])
        info = {"kind": "video_id", "video_id": video_id, "label": label,
                "class_name": _class_name(self.store.class_names, label), "path": video_path(self.store_attrs, video_id)}
        return data["features"].astype(np.float32), data["coords"], info

    def embed_file(self, path: str | Path) -> tuple[np.ndarray, np.ndarray]:
        """A video file embedded as the store was made: (features [1, V, D], coords [1, V, 6])."""
        feats, crds = embed_file(Path(path), self.attrs, self.feature_dim, self.device)
        return feats[None], crds[None]

    def descriptor(self, features: np.ndarray, coords: np.ndarray) -> np.ndarray:
        """The finalised [1, d] descriptor of one video, exactly as the gallery's were made."""
        raw = video_descriptors(features, coords, kind=self.kind, model=self.model, device=self.device)
        center = self.meta.get("center_vector")
        return finalize_descriptors(raw, None if center is None else np.asarray(center, np.float32))

    def search(self, desc: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return search(self.index, desc, min(int(k), self.index.ntotal))


def query_index(
    index_path: str | Path,
    query: str,
    *,
    top: int = 10,
    store_path: str | Path | None = None,
    model: Any = None,
    device: str | None = None,
    exclude_self: bool = True,
) -> dict:
    """The `top` nearest gallery videos of a query given as a store video id or a video file.

    A query that is a video id of the store uses its stored features; otherwise an existing
    file is decoded and embedded with the store's backbone and checkpoint. A query video that
    is itself in the gallery is left out of its own results unless `exclude_self` is False.
    The model recorded in the sidecar is loaded (unless given) and must be the same weights.
    """
    if top < 1:
        raise ScaleError(f"--top must be >= 1, got {top}")
    oi = OpenIndex(index_path, store_path=store_path, model=model, device=device)
    meta, notes = oi.meta, list(oi.notes)
    if oi.store_row(query) is not None:
        features, coords, q_info = oi.read_video(query)
    elif Path(query).is_file():
        features, coords = oi.embed_file(query)
        q_info = {"kind": "file", "path": str(Path(query).resolve())}
    else:
        where = (f"a video id of the store {oi.store_path}" if oi.store is not None
                 else "a video id (the store is not found)")
        raise ScaleError(f"query {query!r} is neither an existing video file nor {where}")

    desc = oi.descriptor(features, coords)
    gallery_ids = meta["video_ids"]
    self_in_gallery = exclude_self and q_info["kind"] == "video_id" and query in gallery_ids
    sims, rows = oi.search(desc, top + int(self_in_gallery))
    results = []
    for sim, r in zip(sims[0], rows[0]):
        if r < 0 or (self_in_gallery and gallery_ids[r] == query):
            continue
        label = int(meta["labels"][r])
        results.append({"rank": len(results) + 1, "video_id": gallery_ids[r], "label": label,
                        "class_name": _class_name(meta["class_names"], label), "similarity": float(sim),
                        "path": video_path(oi.store_attrs, gallery_ids[r])})
        if len(results) == top:
            break
    if self_in_gallery:
        notes.append("the query video itself is in the gallery and is left out of its results")
    return {"query": q_info, "index": str(Path(index_path)), "descriptor": oi.kind, "center": bool(meta.get("center")),
            "index_type": meta["index_params"]["index_type"], "n_gallery": int(oi.index.ntotal),
            "results": results, "notes": notes}


def _class_name(names: list[str], label: int) -> str | None:
    return names[label] if 0 <= label < len(names) else None

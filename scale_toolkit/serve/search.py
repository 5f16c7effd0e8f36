"""The searches `scale serve` answers, against one index built by `scale retrieve --build-index`.

A query becomes one descriptor exactly as `scale retrieve --query` makes it (``OpenIndex``):
a video id of the store uses its stored features; an uploaded file is decoded and embedded
with the store's backbone and checkpoint (in a worker process: a decoder crash or hang costs
that request, not the server), then goes through the SCALE model when the index has one; a
vector is taken as a descriptor of the index's space and only L2-normalised.

Results are ranked by cosine similarity. ``exclude`` removes, before ranking positions are
given: "none" nothing; "video" the query video itself (by id; for an upload, gallery videos
with the same file name) - what `scale retrieve --query` does by default; "group" also every
video of the query's group (UCF101's ``v_<Class>_gNN_cMM``: same class and group, i.e. the
same actors and scene; elsewhere the file name). A class filter then keeps one class; ranks
stay those of the unfiltered ranking. P@k is the share of the first k ranked results (k = the
page size, class filter ignored) of the query's class, when the query has one.
"""
from __future__ import annotations

import re
import secrets
import threading
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ..errors import ScaleError
from ..retrieval.query import OpenIndex, video_path
from .media import media_dir
from .options import ServeOptions

EXCLUDE_MODES = ("none", "video", "group")
DEFAULT_LIMIT = 20  # results per page (and ids per lookup) when a request names none
MAX_LIMIT = 200
RECENT_QUERIES = 64  # uploads remembered for paging (a descriptor each: a few KB)
_UCF_NAME = re.compile(r"^v_([A-Za-z0-9]+)_g(\d+)_c\d+", re.IGNORECASE)


class RequestError(ScaleError):
    """A bad request: the HTTP status to answer and a one-line message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def stem(name: str) -> str:
    """A video's file name without folders or extension, lower case."""
    return PurePosixPath(str(name).replace("\\", "/")).stem.lower()


def group_key(name: str) -> str:
    """UCF101 names: "<class>_g<NN>" (same actors and scene); other names: the file name itself."""
    match = _UCF_NAME.match(stem(name))
    return f"{match[1].lower()}_g{int(match[2]):02d}" if match else stem(name)


def infer_class(filename: str, class_names: list[str]) -> int | None:
    """The class of an uploaded UCF101-style file name (v_<Class>_gNN_cMM), if it names one."""
    match = _UCF_NAME.match(stem(filename))
    if not match:
        return None
    lowered = [name.lower() for name in class_names]
    return lowered.index(match[1].lower()) if match[1].lower() in lowered else None


def _embed_in_worker(path: str, attrs: dict, feature_dim: int, device: str | None):
    from ..retrieval.query import embed_file

    feats, coords = embed_file(Path(path), attrs, feature_dim, device)
    return feats, coords


class FileEmbedder:
    """Embeds uploaded files in one worker process (spawned on first use, replaced if it dies)."""

    def __init__(self, attrs: dict, feature_dim: int, device: str | None, timeout_s: float) -> None:
        self.attrs, self.feature_dim, self.device, self.timeout_s = attrs, feature_dim, device, timeout_s
        self.worker = _embed_in_worker  # (path, attrs, feature_dim, device) -> (features, coords); picklable
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _get_pool(self) -> ProcessPoolExecutor:
        import multiprocessing as mp

        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"))
            return self._pool

    def _discard_pool(self, kill: bool) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is None:
            return
        if kill:  # a hung decoder never returns: end the worker, not just the pool's bookkeeping
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.kill()
        # waiting is short (the worker is dead or idle) and frees the pool's semaphores before exit
        pool.shutdown(wait=True, cancel_futures=True)

    def embed(self, path: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
        try:
            future = self._get_pool().submit(self.worker, str(path), self.attrs, self.feature_dim, self.device)
            feats, coords = future.result(timeout=self.timeout_s)
        except FutureTimeout:
            self._discard_pool(kill=True)
            raise RequestError(f"embedding {name} took longer than {self.timeout_s:g} s; "
                               "send a shorter video", 422) from None
        except BrokenProcessPool:
            self._discard_pool(kill=False)
            raise RequestError(f"the decoder crashed on {name}; is it a video file?", 422) from None
        except ScaleError as exc:
            raise RequestError(str(exc).replace(str(path), name).replace(path.name, name), 422) from None
        return feats[None], coords[None]

    def close(self) -> None:
        self._discard_pool(kill=True)


class SearchService:
    """One index opened for many queries; thread-safe (FAISS calls are serialised)."""

    def __init__(self, index_path: str | Path, *, device: str | None = ServeOptions.device,
                 embed_timeout_s: float = ServeOptions.embed_timeout_s) -> None:
        self.oi = OpenIndex(index_path, device=device)
        meta = self.oi.meta
        self.index_path = Path(index_path)
        self.gallery_ids: list[str] = list(meta["video_ids"])
        self.labels = np.asarray(meta["labels"], dtype=np.int64)
        self.class_names: list[str] = list(meta["class_names"])
        self.row = {vid: i for i, vid in enumerate(self.gallery_ids)}
        # numpy string arrays: one vectorised comparison per query, also on large galleries
        self.stems = np.array([stem(v) for v in self.gallery_ids], dtype=str)
        self.groups = np.array([group_key(v) for v in self.gallery_ids], dtype=str)
        self.media = self._media_files(meta.get("media"))
        self.file_queries, self.file_queries_reason = self._can_embed()
        self.embedder = FileEmbedder(self.oi.attrs, self.oi.feature_dim, device, embed_timeout_s)
        self._lock = threading.Lock()
        self._recent: OrderedDict[str, tuple[np.ndarray, dict]] = OrderedDict()

    # ------------------------------------------------------------------ set-up
    def _media_files(self, media: dict | None) -> list[dict[str, Path] | None]:
        items = (media or {}).get("items") or []
        folder = media_dir(self.index_path)
        out: list[dict[str, Path] | None] = []
        for i in range(len(self.gallery_ids)):
            item = items[i] if i < len(items) else None
            files = {k: folder / v for k, v in (item or {}).items()} if item else None
            out.append(files if files and all(p.is_file() for p in files.values()) else None)
        return out

    def _can_embed(self) -> tuple[bool, str | None]:
        attrs = self.oi.store_attrs
        if not attrs.backbone_name:
            return False, "the store does not record its backbone (imported features)"
        if attrs.checkpoint_missing():
            return False, f"the store's checkpoint {attrs.checkpoint} is not on this machine"
        return True, None

    def close(self) -> None:
        self.embedder.close()

    # ------------------------------------------------------------------ descriptions
    def _class_name(self, label: int | None) -> str | None:
        return self.class_names[label] if label is not None and 0 <= label < len(self.class_names) else None

    def info(self) -> dict:
        meta, attrs = self.oi.meta, self.oi.store_attrs
        return {
            "index": self.index_path.name,
            "backbone": attrs.backbone_label,
            "checkpoint": attrs.checkpoint,
            "checkpoint_sha256": attrs.checkpoint_sha256,
            "view": attrs.view_name,
            "descriptor": meta["descriptor"],
            "center": bool(meta.get("center")),
            "index_type": meta["index_params"]["index_type"],
            "n_videos": int(self.oi.index.ntotal),
            "dim": int(self.oi.index.d),
            "gallery": meta.get("gallery"),
            "model": meta.get("model"),
            "store": meta["store"]["path"],
            "store_available": self.oi.store is not None,
            "class_names": self.class_names,
            "media": sum(m is not None for m in self.media),
            "file_queries": self.file_queries,
            "file_queries_reason": self.file_queries_reason,
            "created": meta.get("created"),
            "notes": list(self.oi.notes),
        }

    def item(self, video_id: str) -> dict:
        """A video of the gallery or of the store, with its class and media URLs."""
        row = self.row.get(video_id)
        store_row = self.oi.store_row(video_id)
        if row is None and store_row is None:
            raise RequestError(f"unknown video id {video_id!r}: not in the gallery nor in the store", 404)
        if row is not None:
            label = int(self.labels[row])
        else:
            label = int(self.oi.store.labels[store_row])
        return {"video_id": video_id, "in_gallery": row is not None, "label": label,
                "class_name": self._class_name(label), "group": group_key(video_id),
                "path": video_path(self.oi.store_attrs, video_id), **self.media_urls(video_id)}

    def find(self, text: str, limit: int = DEFAULT_LIMIT) -> list[str]:
        """Video ids (gallery first, then the rest of the store) containing `text`, case-insensitive."""
        text = text.lower()
        seen, out = set(), []
        for vid in [*self.gallery_ids, *self.oi.store_ids]:
            if text in vid.lower() and vid not in seen:
                seen.add(vid)
                out.append(vid)
                if len(out) >= limit:
                    break
        return out

    def media_urls(self, video_id: str) -> dict:
        from urllib.parse import quote

        row = self.row.get(video_id)
        if row is None or self.media[row] is None:
            return {"poster": None, "preview": None}
        base = "/media/" + quote(video_id, safe="/")
        return {"poster": f"{base}/poster.jpg", "preview": f"{base}/preview.webp"}

    def media_file(self, video_id: str, kind: str) -> Path:
        row = self.row.get(video_id)
        if row is None:
            raise RequestError(f"unknown gallery video id {video_id!r}", 404)
        if self.media[row] is None:
            raise RequestError(f"no {kind} for {video_id!r} (index built without --thumbs, or the video was unreadable)", 404)
        return self.media[row][kind]

    # ------------------------------------------------------------------ queries
    def query_by_id(self, video_id: str) -> tuple[np.ndarray, dict]:
        if not isinstance(video_id, str) or not video_id:
            raise RequestError("video_id must be a non-empty string", 422)
        if self.oi.store_row(video_id) is None:
            if video_id in self.row:  # in the index but the store is gone: cannot read its features
                raise RequestError(f"the store {self.oi.store_path} is not available, so gallery videos cannot be "
                                   "queried by id; query by vector or file", 422)
            raise RequestError(f"unknown video id {video_id!r}: not in the store {self.oi.store_path}", 404)
        try:
            feats, coords, info = self.oi.read_video(video_id)
        except ScaleError as exc:
            raise RequestError(str(exc), 422) from None
        with self._lock:  # the SCALE model and the store are shared
            desc = self.oi.descriptor(feats, coords)
        info = {**info, "group": group_key(video_id), **self.media_urls(video_id)}
        return desc, info

    def query_by_vector(self, vector: Any, class_name: str | None = None) -> tuple[np.ndarray, dict]:
        d = int(self.oi.index.d)
        try:
            vec = np.asarray(vector, dtype=np.float64)
        except (TypeError, ValueError):
            raise RequestError(f"vector must be a list of {d} numbers", 422) from None
        if vec.ndim != 1 or vec.shape[0] != d:
            raise RequestError(f"vector has length {vec.size if vec.ndim == 1 else 'shape ' + str(vec.shape)} "
                               f"but the index holds {d}-d descriptors", 422)
        if not np.isfinite(vec).all():
            raise RequestError("vector holds NaN or infinite values", 422)
        # not descriptors.l2_normalize: float64 here, so any finite vector (even one past float32's range) has a direction
        norm = float(np.linalg.norm(vec))
        if norm == 0.0:
            raise RequestError("vector is all zeros: it has no direction to compare", 422)
        label = self._label_of(class_name)
        info = {"kind": "vector", "label": label, "class_name": self._class_name(label)}
        return (vec / norm).astype(np.float32)[None], info

    def query_by_file(self, path: Path, filename: str, class_name: str | None = None) -> tuple[np.ndarray, dict]:
        """Embed an uploaded file (worker process), then describe it as the gallery was described."""
        if not self.file_queries:
            raise RequestError(f"this index cannot embed video files: {self.file_queries_reason}; "
                               "query by video id or vector", 422)
        label = self._label_of(class_name)
        inferred = label is None and class_name is None
        if inferred:
            label = infer_class(filename, self.class_names)
        feats, coords = self.embedder.embed(path, filename)
        with self._lock:
            desc = self.oi.descriptor(feats, coords)
        info = {"kind": "file", "filename": filename, "label": label, "class_name": self._class_name(label),
                "class_from": ("file name" if inferred else "request") if label is not None else None,
                "group": group_key(filename)}
        return desc, info

    def remember(self, desc: np.ndarray, query: dict) -> str:
        """A token for an embedded upload, so another page or filter does not embed it again."""
        token = secrets.token_hex(8)
        with self._lock:
            self._recent[token] = (desc, query)
            while len(self._recent) > RECENT_QUERIES:
                self._recent.popitem(last=False)
        return token

    def recall(self, token: Any) -> tuple[np.ndarray, dict]:
        with self._lock:
            hit = self._recent.get(token) if isinstance(token, str) else None
        if hit is None:
            raise RequestError("unknown or expired query token; upload the file again", 404)
        return hit

    def _label_of(self, class_name: str | None) -> int | None:
        if class_name in (None, ""):
            return None
        if class_name not in self.class_names:
            raise RequestError(f"unknown class {class_name!r}; GET /api/index lists the classes", 422)
        return self.class_names.index(class_name)

    def _excluded(self, query: dict, exclude: str) -> np.ndarray:
        """bool per gallery row: left out of this query's results."""
        out = np.zeros(len(self.gallery_ids), dtype=bool)
        if exclude == "none":
            return out
        if query["kind"] == "video_id" and query["video_id"] in self.row:
            out[self.row[query["video_id"]]] = True
        if query["kind"] == "file":
            out |= self.stems == stem(query["filename"])
        if exclude == "group" and query.get("group"):
            out |= self.groups == query["group"]
        return out

    def search(self, desc: np.ndarray, query: dict, *, limit: int = DEFAULT_LIMIT, offset: int = 0,
               class_name: str | None = None, exclude: str = "video") -> dict:
        """One page of results, ranked by similarity after exclusion; see the module doc."""
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
            raise RequestError(f"limit must be an integer in 1..{MAX_LIMIT}, got {limit!r}", 422)
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise RequestError(f"offset must be an integer >= 0, got {offset!r}", 422)
        if exclude not in EXCLUDE_MODES:
            raise RequestError(f"exclude must be one of {', '.join(EXCLUDE_MODES)}, got {exclude!r}", 422)
        want_label = self._label_of(class_name)
        excluded = self._excluded(query, exclude)
        ntotal = int(self.oi.index.ntotal)
        need = offset + limit + 1  # one more than the page: tells whether a next page exists
        k = min(ntotal, max(64, 2 * need + int(excluded.sum())))
        while True:  # deepen the search until the page is full or the whole gallery is ranked
            with self._lock:
                sims, rows = self.oi.search(desc, k)
            ranked = [(int(r), float(s)) for s, r in zip(sims[0], rows[0]) if r >= 0 and not excluded[r]]
            kept = [(rank, r, s) for rank, (r, s) in enumerate(ranked, 1)
                    if want_label is None or self.labels[r] == want_label]
            if (len(kept) >= need and len(ranked) >= limit) or k >= ntotal:
                break
            k = min(ntotal, k * 4)
        complete = k >= ntotal
        q_label = query.get("label")
        results = []
        for rank, r, s in kept[offset:offset + limit]:
            vid, label = self.gallery_ids[r], int(self.labels[r])
            results.append({"rank": rank, "video_id": vid, "label": label, "class_name": self._class_name(label),
                            "similarity": s, "match": None if q_label is None else bool(label == q_label),
                            **self.media_urls(vid)})
        precision = None
        if q_label is not None and ranked:
            top = ranked[:limit]
            precision = {"k": len(top), "value": sum(int(self.labels[r] == q_label) for r, _ in top) / len(top)}
        return {
            "query": query,
            "results": results,
            "offset": offset,
            "limit": limit,
            "class": class_name or None,
            "exclude": exclude,
            "excluded": int(excluded.sum()),
            "total": len(kept) if complete else None,
            "has_more": len(kept) > offset + limit,
            "precision": precision,
            "notes": list(self.oi.notes),
        }

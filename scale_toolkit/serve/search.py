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

Everything answered is safe to show anyone who can reach the server: ids as ``ids.public_id``
shows them, no absolute server paths (the store, checkpoint, model and videos are named by their
file names), media only from inside the index's media folder.
"""
from __future__ import annotations

import os
import re
import secrets
import threading
from collections import OrderedDict
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ..errors import ScaleError
from ..retrieval.media import media_dir
from ..retrieval.query import OpenIndex
from .ids import public_id, resolve_id, shown
from .options import ServeOptions
from .uploads import embed_upload, plain_reason
from .workers import JobFailed, PoolClosed, WorkerBusy, WorkerCrashed, WorkerPool, WorkerTimeout

EXCLUDE_MODES = ("none", "video", "group")
DEFAULT_LIMIT = 20  # results per page (and ids per lookup) when a request names none
MAX_LIMIT = 200
MAX_OFFSET = 10_000_000  # past any gallery; bounds the work a page request can ask for
UPLOAD_WORKERS = 2  # uploads embedded at once, each in its own process
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


class FileEmbedder:
    """Embeds uploaded files in worker processes (workers.py): one upload's crash or timeout is its own."""

    def __init__(self, attrs: dict, feature_dim: int, device: str | None, timeout_s: float,
                 max_mpix: float = ServeOptions.max_upload_mpix, workers: int = UPLOAD_WORKERS) -> None:
        self.attrs, self.feature_dim, self.device, self.timeout_s = attrs, feature_dim, device, timeout_s
        self.max_mpix = max_mpix
        self.worker = embed_upload  # (path, attrs, feature_dim, device, max_mpix) -> (feats, coords, poster); picklable
        # a queued upload may wait for one whole upload ahead of it (which may run to its time limit)
        self.pool = WorkerPool(workers, wait_s=timeout_s + 30)

    def embed(self, path: Path, name: str) -> tuple[np.ndarray, np.ndarray, bytes | None]:
        """(features [1, V, D], coords [1, V, 6], poster JPEG or None), or a RequestError naming `name`."""
        try:
            feats, coords, poster = self.pool.run(
                self.worker, (str(path), self.attrs, self.feature_dim, self.device, self.max_mpix), self.timeout_s)
        except WorkerTimeout:
            raise RequestError(f"embedding {name} took longer than {self.timeout_s:g} s; send a shorter video", 422) from None
        except WorkerCrashed:
            raise RequestError(f"the decoder crashed on {name}; is it a video file?", 422) from None
        except PoolClosed:  # the one 5xx: not the request's fault, and worth retrying once the server is back
            raise RequestError(f"the server is stopping; {name} was not embedded", 503) from None
        except WorkerBusy:
            raise RequestError("the server is busy embedding other uploads; try again in a minute", 429) from None
        except JobFailed as exc:
            text = str(exc).replace(str(path), name).replace(path.name, name)
            if exc.kind != "scale":
                text = f"cannot embed {name}: {text}"
            elif name not in text:
                text = f"{name}: {text}"
            raise RequestError(plain_reason(text), 422) from None
        return feats[None], coords[None], poster

    def close(self) -> None:
        self.pool.close()


class SearchService:
    """One index opened for many queries; thread-safe (FAISS calls are serialised)."""

    def __init__(self, index_path: str | Path, *, device: str | None = ServeOptions.device,
                 embed_timeout_s: float = ServeOptions.embed_timeout_s,
                 max_upload_mpix: float = ServeOptions.max_upload_mpix) -> None:
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
        self.embedder = FileEmbedder(self.oi.attrs, self.oi.feature_dim, device, embed_timeout_s, max_upload_mpix)
        self._lock = threading.Lock()
        self._recent: OrderedDict[str, tuple[np.ndarray, dict]] = OrderedDict()
        self._posters: dict[str, bytes] = {}  # the query card's poster of each remembered upload
        self._secret_paths = self._paths_to_hide(meta)

    # ------------------------------------------------------------------ set-up
    def _media_files(self, media: Any) -> list[dict[str, Path] | None]:
        """Per gallery row, its poster and preview files; the sidecar may name only files inside INDEX.media/."""
        items = media.get("items") if isinstance(media, dict) else None
        items = items if isinstance(items, list) else []
        folder = media_dir(self.index_path)
        out: list[dict[str, Path] | None] = []
        for i in range(len(self.gallery_ids)):
            item = items[i] if i < len(items) else None
            files = None
            if isinstance(item, dict) and set(item) >= {"poster", "preview"}:
                files = {k: confined(folder, item[k]) for k in ("poster", "preview")}
            out.append(files if files and all(p is not None for p in files.values()) else None)
        return out

    def _paths_to_hide(self, meta: dict) -> list[tuple[str, str]]:
        """Absolute paths of this machine that messages may name: (path, what to show instead), longest first."""
        found = [self.index_path.resolve().parent, self.oi.store_path, media_dir(self.index_path)]
        for value in ((meta.get("model") or {}).get("path"), self.oi.store_attrs.checkpoint,
                      self.oi.attrs.get("dataset_root")):
            if isinstance(value, str) and value:
                found.append(Path(value))
        pairs = {}
        for p in found:
            for form in {str(p), str(p.absolute()), str(p.resolve())}:
                if len(form) > 1:
                    pairs[form] = p.name or "."
        return sorted(pairs.items(), key=lambda kv: -len(kv[0]))

    def hide_paths(self, text: str) -> str:
        """`text` with this machine's absolute paths replaced by their last part."""
        for path, name in self._secret_paths:
            text = text.replace(path, name)
        return shown(text)

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
        """The index as the page's panel and GET /api/index show it (every text valid UTF-8)."""
        meta, attrs = self.oi.meta, self.oi.store_attrs
        info = {
            "index": self.index_path.name,
            "backbone": attrs.backbone_label,
            "checkpoint": Path(attrs.checkpoint).name if attrs.checkpoint else None,
            "checkpoint_sha256": attrs.checkpoint_sha256,
            "view": attrs.view_name,
            "descriptor": meta["descriptor"],
            "center": bool(meta.get("center")),
            "index_type": meta["index_params"]["index_type"],
            "n_videos": int(self.oi.index.ntotal),
            "dim": int(self.oi.index.d),
            "gallery": meta.get("gallery"),
            "model": _model_summary(meta.get("model")),
            "store": self.oi.store_path.name,
            "store_available": self.oi.store is not None,
            "class_names": [shown(c) for c in self.class_names],
            "media": sum(m is not None for m in self.media),
            "file_queries": self.file_queries,
            "file_queries_reason": self.hide_paths(self.file_queries_reason or "") or None,
            "created": meta.get("created"),
            "notes": self.notes(),
        }
        return {k: shown(v) if isinstance(v, str) else v for k, v in info.items()}

    def notes(self) -> list[str]:
        return [self.hide_paths(n) for n in self.oi.notes]

    def _known(self, video_id: str) -> bool:
        return video_id in self.row or self.oi.store_row(video_id) is not None

    def resolve(self, shown_id: Any) -> str | None:
        """The stored id a request names (as the API shows it, or exactly)."""
        return resolve_id(shown_id, self._known) if isinstance(shown_id, str) and shown_id else None

    def item(self, shown_id: str) -> dict:
        """A video of the gallery or of the store, with its class and media URLs."""
        video_id = self.resolve(shown_id)
        if video_id is None:
            raise RequestError(f"unknown video id {shown(shown_id)!r}: not in the gallery nor in the store", 404)
        row = self.row.get(video_id)
        label = int(self.labels[row]) if row is not None else int(self.oi.store.labels[self.oi.store_row(video_id)])
        return {"video_id": public_id(video_id), "in_gallery": row is not None, "label": label,
                "class_name": self._class_name(label), "group": shown(group_key(video_id)),
                "file": shown(PurePosixPath(video_id).name), **self.media_urls(video_id)}

    def find(self, text: str, limit: int = DEFAULT_LIMIT) -> list[str]:
        """Video ids as shown (gallery first, then the rest of the store) containing `text`, case-insensitive."""
        text = text.lower()
        seen, out = set(), []
        for vid in [*self.gallery_ids, *self.oi.store_ids]:
            vid = public_id(vid)
            if text in vid.lower() and vid not in seen:
                seen.add(vid)
                out.append(vid)
                if len(out) >= limit:
                    break
        return out

    def gallery(self, *, limit: int = DEFAULT_LIMIT, offset: int = 0, class_name: str | None = None) -> dict:
        """One page of the gallery in index order (optionally one class): what the page opens on."""
        want = self._label_of(class_name)
        rows = np.arange(len(self.gallery_ids)) if want is None else np.flatnonzero(self.labels == want)
        page = rows[offset:offset + limit]
        items = [{"video_id": public_id(self.gallery_ids[r]), "label": int(self.labels[r]),
                  "class_name": self._class_name(int(self.labels[r])), **self.media_urls(self.gallery_ids[r])}
                 for r in page.tolist()]
        return {"items": items, "offset": offset, "limit": limit, "class": class_name or None,
                "total": int(rows.size), "has_more": int(rows.size) > offset + limit}

    def media_urls(self, video_id: str) -> dict:
        from urllib.parse import quote

        row = self.row.get(video_id)
        if row is None or self.media[row] is None:
            return {"poster": None, "preview": None}
        base = "/media/" + quote(public_id(video_id), safe="/")
        return {"poster": f"{base}/poster.jpg", "preview": f"{base}/preview.webp"}

    def media_file(self, shown_id: str, kind: str) -> Path:
        """The poster or preview file of a gallery video, checked again to be inside the media folder."""
        video_id = self.resolve(shown_id)
        row = self.row.get(video_id) if video_id is not None else None
        if row is None:
            raise RequestError(f"unknown gallery video id {shown(shown_id)!r}", 404)
        files = self.media[row]
        folder = media_dir(self.index_path)
        path = None
        if files is not None:  # checked again: the folder may have changed since the server started
            try:
                path = confined(folder, str(files[kind].relative_to(folder.resolve())))
            except (OSError, ValueError):
                path = None
        if path is None:
            raise RequestError(f"no {kind} for {public_id(video_id)!r} (index built without --thumbs, "
                               "or the video was unreadable)", 404)
        return path

    def upload_poster(self, token: str) -> bytes:
        with self._lock:
            data = self._posters.get(token)
        if data is None:
            raise RequestError("no poster for this upload (unknown or expired, or its frame was unreadable)", 404)
        return data

    # ------------------------------------------------------------------ queries
    def query_by_id(self, shown_id: str) -> tuple[np.ndarray, dict]:
        if not isinstance(shown_id, str) or not shown_id:
            raise RequestError("video_id must be a non-empty string", 422)
        video_id = self.resolve(shown_id)
        store = self.oi.store_path.name
        if video_id is None or self.oi.store_row(video_id) is None:
            if video_id is not None:  # in the index but the store is gone: cannot read its features
                raise RequestError(f"the store {store} is not available, so gallery videos cannot be "
                                   "queried by id; query by vector or file", 422)
            raise RequestError(f"unknown video id {shown(shown_id)!r}: not in the store {store}", 404)
        try:
            feats, coords, info = self.oi.read_video(video_id)
        except ScaleError as exc:
            raise RequestError(self.hide_paths(str(exc)), 422) from None
        with self._lock:  # the SCALE model and the store are shared
            desc = self.oi.descriptor(feats, coords)
        info = {"kind": "video_id", "video_id": public_id(video_id), "stored_id": video_id, "label": info["label"],
                "class_name": self._class_name(info["label"]), "group": shown(group_key(video_id)),
                **self.media_urls(video_id)}
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
        # any finite vector has a direction: divide by the largest magnitude first, so that squaring
        # neither overflows (1e200) nor underflows (1e-200) before the L2 norm
        peak = float(np.abs(vec).max())
        if peak == 0.0:
            raise RequestError("vector is all zeros: it has no direction to compare", 422)
        vec = vec / peak
        norm = float(np.linalg.norm(vec))
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
        feats, coords, poster = self.embedder.embed(path, filename)
        with self._lock:
            desc = self.oi.descriptor(feats, coords)
        info = {"kind": "file", "filename": shown(filename), "label": label, "class_name": self._class_name(label),
                "class_from": ("file name" if inferred else "request") if label is not None else None,
                "group": shown(group_key(filename)), "stored_name": filename, "poster_jpeg": poster}
        return desc, info

    def remember(self, desc: np.ndarray, query: dict) -> tuple[str, dict]:
        """A token for an embedded upload (so another page or filter does not embed it again), and the
        query as answered: with its poster's URL when a poster was made."""
        token = secrets.token_hex(8)
        poster = query.pop("poster_jpeg", None)
        query = {**query, "token": token, "poster": f"/api/uploads/{token}/poster.jpg" if poster else None}
        with self._lock:
            self._recent[token] = (desc, query)
            if poster:
                self._posters[token] = poster
            while len(self._recent) > RECENT_QUERIES:
                old, _ = self._recent.popitem(last=False)
                self._posters.pop(old, None)
        return token, query

    def recall(self, token: Any) -> tuple[np.ndarray, dict]:
        with self._lock:
            hit = self._recent.get(token) if isinstance(token, str) else None
        if hit is None:
            raise RequestError("unknown or expired query token; upload the file again", 404)
        return hit

    def _label_of(self, class_name: str | None) -> int | None:
        if class_name in (None, ""):
            return None
        for i, name in enumerate(self.class_names):
            if class_name in (name, shown(name)):
                return i
        raise RequestError(f"unknown class {shown(class_name)!r}; GET /api/index lists the classes", 422)

    def _excluded(self, query: dict, exclude: str) -> np.ndarray:
        """bool per gallery row: left out of this query's results."""
        out = np.zeros(len(self.gallery_ids), dtype=bool)
        if exclude == "none":
            return out
        if query["kind"] == "video_id" and query["stored_id"] in self.row:
            out[self.row[query["stored_id"]]] = True
        if query["kind"] == "file":
            out |= self.stems == stem(query["stored_name"])
        if exclude == "group" and query.get("group"):
            out |= self.groups == query["group"]
        return out

    def search(self, desc: np.ndarray, query: dict, *, limit: int = DEFAULT_LIMIT, offset: int = 0,
               class_name: str | None = None, exclude: str = "video") -> dict:
        """One page of results, ranked by similarity after exclusion; see the module doc."""
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
            raise RequestError(f"limit must be an integer in 1..{MAX_LIMIT}, got {limit!r}", 422)
        if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= MAX_OFFSET:
            raise RequestError(f"offset must be an integer in 0..{MAX_OFFSET}, got {offset!r}", 422)
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
            results.append({"rank": rank, "video_id": public_id(vid), "label": label, "class_name": self._class_name(label),
                            "similarity": s, "match": None if q_label is None else bool(label == q_label),
                            **self.media_urls(vid)})
        precision = None
        if q_label is not None and ranked:
            top = ranked[:limit]
            precision = {"k": len(top), "value": sum(int(self.labels[r] == q_label) for r, _ in top) / len(top),
                         "of_class": self._class_name(q_label), "class_filter_applied": False}
        return {
            "query": {k: v for k, v in query.items() if k not in ("stored_id", "stored_name", "poster_jpeg")},
            "results": results,
            "offset": offset,
            "limit": limit,
            "class": class_name or None,
            "exclude": exclude,
            "excluded": int(excluded.sum()),
            "total": len(kept) if complete else None,
            "has_more": len(kept) > offset + limit,
            "precision": precision,
            "notes": self.notes(),
        }


def confined(folder: Path, name: Any) -> Path | None:
    """`folder/name` when it is a regular file whose real path (symlinks followed) lies inside
    `folder`; None otherwise (an absolute name, "..", a link out, a non-string from a crafted sidecar)."""
    if not isinstance(name, str) or not name or "\0" in name or os.path.isabs(name):
        return None
    try:
        root = folder.resolve(strict=True)
        path = (folder / name).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return None
    return path if path.is_relative_to(root) and path != root and path.is_file() else None


def _model_summary(model: Any) -> dict | None:
    """The index's SCALE model as the API shows it: its fingerprint and file name, not its path."""
    if not isinstance(model, dict):
        return None
    path = model.get("path")
    return {"fingerprint": model.get("fingerprint"), "name": Path(path).name if isinstance(path, str) else None}

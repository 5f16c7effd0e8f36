"""The UCF101/HMDB51 video retrieval protocol (VCOP / IIC / CoCLR convention), read top to bottom.

Queries are the test-split videos of the chosen split, the gallery its train-split videos.
One descriptor per video (see descriptors.py), optionally centred by the mean of its own split
(CoCLR) or not (VCOP/IIC, the default), then L2-normalised; similarity is the inner product
(cosine). A query is a hit at k if any of its k most similar gallery videos has its class.
R@k is the percentage of hits over all queries; no query is dropped.

Example:
    >>> import numpy as np
    >>> g = np.eye(3, dtype=np.float32); q = g[[0, 2]]
    >>> recall_at_k(q, np.array([0, 2]), g, np.array([0, 1, 2]), ks=(1,))
    {'1': 100.0}
"""
from __future__ import annotations

import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .. import __version__
from ..errors import ScaleError
from ..store.attributes import StoreAttrs
from ..store.layout import DONE, FAILED, PENDING
from .descriptors import BASELINE_KIND, SCALE_KINDS, descriptor_mean, finalize_descriptors, store_descriptors
from .index import IndexParams, build_index, search
from .neighbours import SearchReport, top_k

if TYPE_CHECKING:  # zarr on first use: `scale retrieve --help` reads DEFAULT_KS
    from ..store import FeatureStore

DEFAULT_KS = (1, 5, 10, 20, 50)
PROTOCOL_NAME = "video retrieval, test queries vs train gallery (VCOP/IIC/CoCLR convention)"
SCALE_DESCRIPTOR_TEXT = {"set": "SCALE SET token", "refined": "mean of SCALE refined clip tokens",
                         "set+mean": "SCALE SET token ++ mean refined clip token (each half L2-normalised)"}
PROTOCOL_NOTE = ("Convention of the video self-supervised retrieval literature, not of the SCALE paper; "
                 "only R@1 is comparable to the CrossVideoMAE retrieval table (R@1 only).")


def check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    """Sorted unique positive k values; a clear error otherwise."""
    ks = tuple(sorted({int(k) for k in ks}))
    if not ks or ks[0] < 1:
        raise ScaleError(f"--k values must be positive integers, got {list(ks)}")
    return ks


def centring_label(center: bool) -> str:
    return ("per-split mean subtracted before L2 normalisation (CoCLR-style)" if center
            else "none: L2 normalisation only (VCOP/IIC-style)")


def retrieval_hits(query_desc: np.ndarray, query_labels: np.ndarray, gallery_desc: np.ndarray,
                   gallery_labels: np.ndarray, k: int, index_params: IndexParams | None = None
                   ) -> tuple[np.ndarray, SearchReport | None]:
    """bool [Q, min(k, G)]: whether the j-th most similar gallery video has the query's class; and,
    for the default (flat) search, how it was done: exact, or IVF with its measured recall where
    exact search would take minutes (neighbours.py)."""
    depth = min(int(k), len(gallery_desc))  # a k beyond the gallery searches all of it
    report = None
    if index_params is None or index_params.index_type == "flat":
        _, ids, report = top_k(gallery_desc, query_desc, depth)
    else:
        index, _ = build_index(gallery_desc, index_params)
        _, ids = search(index, query_desc, depth)
    gallery_labels = np.asarray(gallery_labels)
    neighbour_labels = np.where(ids >= 0, gallery_labels[np.clip(ids, 0, None)], np.iinfo(np.int64).min)
    return neighbour_labels == np.asarray(query_labels)[:, None], report


def recall_at_k(query_desc: np.ndarray, query_labels: np.ndarray, gallery_desc: np.ndarray,
                gallery_labels: np.ndarray, ks: Sequence[int] = DEFAULT_KS,
                index_params: IndexParams | None = None) -> dict[str, float]:
    """R@k in percent for each k, keyed by str(k), from finalised (normalised) descriptors.

    k larger than the gallery counts the whole gallery.
    """
    return _recall(query_desc, query_labels, gallery_desc, gallery_labels, ks, index_params)[0]


def _recall(query_desc: np.ndarray, query_labels: np.ndarray, gallery_desc: np.ndarray, gallery_labels: np.ndarray,
            ks: Sequence[int], index_params: IndexParams | None) -> tuple[dict[str, float], SearchReport | None]:
    """`recall_at_k` and how its neighbours were searched."""
    ks = check_ks(ks)
    if len(query_desc) == 0 or len(gallery_desc) == 0:
        raise ScaleError("retrieval needs at least one query and one gallery video")
    hits, report = retrieval_hits(query_desc, query_labels, gallery_desc, gallery_labels, max(ks), index_params)
    first = np.cumsum(hits, axis=1) > 0  # first[:, j]: a hit within the top j+1
    width = hits.shape[1]
    return {str(k): float(100.0 * first[:, min(k, width) - 1].mean()) for k in ks}, report


def _split_rows(store: FeatureStore, split: int, part: str, allow_incomplete: bool) -> tuple[np.ndarray, dict]:
    every = store.split_indices(split, part, only_done=False)
    status = store.status[every]
    counts = {"done": int((status == DONE).sum()), "pending": int((status == PENDING).sum()),
              "failed": int((status == FAILED).sum())}
    if counts["pending"] and not allow_incomplete:
        raise ScaleError(f"{counts['pending']} {part}-split videos of split {split} are still pending in {store.path}; "
                         "finish extraction (rerun scale extract) or pass --allow-incomplete")
    rows = every[status == DONE]
    if len(rows) == 0:
        raise ScaleError(f"split {split} has no extracted {part} videos in {store.path}")
    return rows, counts


def _descriptor_pair(store: FeatureStore, q_rows: np.ndarray, g_rows: np.ndarray, kind: str, model: Any, center: bool,
                     device: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Finalised (query, gallery) descriptors; with `center`, each split centred on its own mean."""
    queries = store_descriptors(store, q_rows, kind=kind, model=model, device=device)
    gallery = store_descriptors(store, g_rows, kind=kind, model=model, device=device)
    query_mean = descriptor_mean(queries) if center else None
    gallery_mean = descriptor_mean(gallery) if center else None
    return finalize_descriptors(queries, query_mean), finalize_descriptors(gallery, gallery_mean)


def evaluate_retrieval(
    store: FeatureStore,
    split: int = 1,
    *,
    model: Any = None,
    model_info: dict | None = None,
    scale_descriptor: str = "set",
    ks: Sequence[int] = DEFAULT_KS,
    center: bool = False,
    index_params: IndexParams | None = None,
    allow_incomplete: bool = False,
    device: str | None = None,
) -> dict:
    """The retrieval protocol on one split of a store: every number, the protocol and fingerprints.

    Returns a JSON-able dict with top-level ``recall`` (baseline mean-of-clips descriptor, R@k in
    percent keyed by "1", "5", ...) and, when `model` is given, ``scale_recall``.
    """
    ks = check_ks(ks)
    params = index_params or IndexParams()
    if model is not None:
        _check_scale_model(store, scale_descriptor, model_info)
    q_rows, q_counts = _split_rows(store, split, "test", allow_incomplete)
    g_rows, g_counts = _split_rows(store, split, "train", allow_incomplete)
    labels = store.labels  # one read of the array
    q_labels, g_labels = labels[q_rows], labels[g_rows]
    if (q_labels < 0).any():
        raise ScaleError(f"{int((q_labels < 0).sum())} test videos of split {split} have no label (-1); "
                         "R@k needs labelled queries")
    t0 = time.perf_counter()
    result: dict[str, Any] = {
        "protocol": _protocol(split, center, ks, params),
        "split": int(split),
        "n_queries": int(len(q_rows)),
        "n_gallery": int(len(g_rows)),
        "n_clips": store.n_clips,
        "feature_dim": store.feature_dim,
        "excluded_not_extracted": {"queries": {k: q_counts[k] for k in ("pending", "failed")},
                                   "gallery": {k: g_counts[k] for k in ("pending", "failed")}},
        "queries_without_gallery_class": int((~np.isin(q_labels, g_labels)).sum()),
        "recall": {},
    }
    qd, gd = _descriptor_pair(store, q_rows, g_rows, BASELINE_KIND, None, center, device)
    result["recall"], report = _recall(qd, q_labels, gd, g_labels, ks, params)
    result["descriptor_dim"] = int(qd.shape[1])
    _record_search(result, report)
    if model is not None:
        qd, gd = _descriptor_pair(store, q_rows, g_rows, scale_descriptor, model, center, device)
        result["scale_recall"], report = _recall(qd, q_labels, gd, g_labels, ks, params)
        _record_search(result, report, "scale_search")
        result["scale_descriptor_dim"] = int(qd.shape[1])
        result["protocol"]["scale_descriptor"] = SCALE_DESCRIPTOR_TEXT[scale_descriptor]
    result.update(_provenance(store, model, model_info))
    result["index_params"] = asdict(params.resolved(len(g_rows), result["descriptor_dim"]))
    result["seconds"] = round(time.perf_counter() - t0, 3)
    result["toolkit_version"] = __version__
    return result


def _record_search(result: dict, report: SearchReport | None, key: str = "search") -> None:
    """An approximate search of the default (exact) protocol is recorded and said: never hidden."""
    if report is not None and report.method != "exact":
        result[key] = report.to_dict()
        result["protocol"]["search"] = report.text()


def _check_scale_model(store: FeatureStore, scale_descriptor: str, model_info: dict | None) -> None:
    """A known SCALE descriptor, and a model that can read the store's features."""
    if scale_descriptor not in SCALE_KINDS:
        raise ScaleError(f"SCALE descriptor must be one of {', '.join(SCALE_KINDS)}, got {scale_descriptor!r}")
    if model_info:
        from .models import check_loaded_model_fits

        check_loaded_model_fits(model_info, store)


def _provenance(store: FeatureStore, model: Any, model_info: dict | None) -> dict:
    """The store and model a result was computed from, with their fingerprints."""
    store_attrs = StoreAttrs.of(store)
    return {
        "store": {"path": str(store.path), "fingerprint": store.fingerprint(), "backbone": store_attrs.backbone_name,
                  "view": store_attrs.view_name, "dataset": store_attrs.dataset},
        "model": {k: model_info.get(k) for k in ("path", "fingerprint")} if model is not None and model_info else None,
    }


def _protocol(split: int, center: bool, ks: Sequence[int], params: IndexParams) -> dict[str, Any]:
    """The protocol of an evaluation, in words and values (the SCALE descriptor is filled in with a model)."""
    return {
        "name": PROTOCOL_NAME,
        "queries": f"test-split videos of split {split}",
        "gallery": f"train-split videos of split {split}",
        "descriptor": "mean of the clip features of each video",
        "scale_descriptor": None,
        "similarity": "cosine (inner product of L2-normalised descriptors)",
        "centring": centring_label(center),
        "center": bool(center),
        "hit": "any of the top-k gallery videos has the query's class",
        "ks": list(ks),
        "search": _search_label(params),
        "dropped_videos": 0,
        "note": PROTOCOL_NOTE,
    }


def _search_label(params: IndexParams) -> str:
    if params.index_type == "flat":
        return "exact (FAISS IndexFlatIP)"
    return f"approximate (FAISS {params.index_type}; see index_params)"

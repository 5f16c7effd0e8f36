"""Weighted k-NN classification (DINO style) with FAISS inner-product search (exact up to minutes of work).

Features are L2-normalised, so inner product = cosine similarity. Each of the k nearest
memory (train) videos votes for its class with weight exp(sim / T), T = 0.07 by default;
the class scores give top-1 and top-5. Optional centring before normalisation:

* ``"none"`` (default, as DINO): no centring.
* ``"train"``: subtract the memory (train) mean from memory and queries.
* ``"split"``: each side minus its own mean, as the official SCALE eval code does
  (this uses a statistic of the test split, so it is off by default).

Example:
    >>> import numpy as np
    >>> mem = np.eye(3, dtype=np.float32); q = np.array([[1, .1, 0]], np.float32)
    >>> knn_scores(mem, np.array([0, 1, 2]), q, ks=[1], n_classes=3)[1].argmax(1)
    array([0])
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ScaleError
from ..retrieval.descriptors import l2_normalize
from ..retrieval.neighbours import SearchReport, top_k
from .metrics import topk_accuracy

DEFAULT_K = 20
DEFAULT_TEMPERATURE = 0.07
CENTERING = ("none", "train", "split")


def prepare(memory: np.ndarray, queries: np.ndarray, center: str = "none") -> tuple[np.ndarray, np.ndarray]:
    """Centre (see module doc) and L2-normalise memory and query features, as float32."""
    memory = np.asarray(memory, dtype=np.float32)
    queries = np.asarray(queries, dtype=np.float32)
    if center == "train":
        mu = memory.mean(0, keepdims=True)
        memory, queries = memory - mu, queries - mu
    elif center == "split":
        memory, queries = memory - memory.mean(0, keepdims=True), queries - queries.mean(0, keepdims=True)
    elif center != "none":
        raise ScaleError(f"k-NN centring must be one of {CENTERING}, got {center!r}")
    return l2_normalize(memory), l2_normalize(queries)


class KnnScores(dict):
    """Class scores [q, n_classes] keyed by k, and how the neighbours were searched (`search`)."""

    search: SearchReport


def knn_scores(memory: np.ndarray, memory_labels: np.ndarray, queries: np.ndarray, ks: Sequence[int],
               n_classes: int, temperature: float = DEFAULT_TEMPERATURE, exact: bool | None = None) -> KnnScores:
    """Class scores [q, n_classes] for each k: sum over the k nearest of exp(sim / T) per class.

    Memory and queries must already be L2-normalised (see `prepare`). One FAISS search with the
    largest k serves every k. A k larger than the memory is clamped to the memory size. The
    search is exact unless it would take minutes (retrieval/neighbours.py; `exact` overrides).
    """
    if len(memory) == 0:
        raise ScaleError("k-NN needs at least one memory (train) video")
    if temperature <= 0:
        raise ScaleError(f"k-NN temperature must be positive, got {temperature}")
    ks = [int(k) for k in ks]
    if any(k < 1 for k in ks):
        raise ScaleError(f"k must be positive, got {ks}")
    kmax = min(max(ks), len(memory))
    sims, idx, report = top_k(memory, queries, kmax, exact)
    labels = np.asarray(memory_labels)[idx]  # [q, kmax]
    weights = np.exp(sims.astype(np.float64) / temperature)
    out = KnnScores()
    out.search = report
    rows = np.arange(len(queries))[:, None]
    for k in ks:
        kk = min(k, kmax)
        scores = np.zeros((len(queries), n_classes), dtype=np.float64)
        np.add.at(scores, (np.broadcast_to(rows, (len(queries), kk)), labels[:, :kk]), weights[:, :kk])
        out[k] = scores
    return out


def search_record(row: str, scores: KnnScores, notes: list[str]) -> dict:
    """An approximate neighbour search, said once in `notes` and recorded with the row's result
    (`{"search": ...}`); an exact one adds nothing."""
    if scores.search.method == "exact":
        return {}
    note = f"{row}: {scores.search.text()}"
    if note not in notes:
        notes.append(note)
    return {"search": scores.search.to_dict()}


def knn_evaluate(memory: np.ndarray, memory_labels: np.ndarray, queries: np.ndarray, query_labels: np.ndarray,
                 ks: Sequence[int], n_classes: int, temperature: float = DEFAULT_TEMPERATURE,
                 center: str = "none") -> dict[int, dict[str, float]]:
    """Top-1/top-5 accuracy (%) of the weighted k-NN vote for every k in `ks`."""
    mem, q = prepare(memory, queries, center)
    scores = knn_scores(mem, memory_labels, q, ks, n_classes, temperature)
    return {k: topk_accuracy(s, query_labels) for k, s in scores.items()}

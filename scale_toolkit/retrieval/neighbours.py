"""Top-k neighbours for the evaluations that search every query against every memory vector
(the k-NN probe, R@k): exact while that takes seconds, an IVF index above, its recall measured.

Exact search costs queries x memory x dim multiply-adds, quadratic in the number of videos
(both sides grow with the dataset): UCF101's 3.8k test x 9.5k train x 768 is 2.8e10 (well under
a second); Kinetics-400's 20k x 240k is 3.7e12 (minutes on a laptop CPU); at 1M videos hours.
Above ``EXACT_WORK_LIMIT`` the search is an IVF index with ~4 sqrt(N) cells. How many cells a
query scans is chosen on a sample of queries whose exact top-k is computed: the fewest of 16, 32,
64, ... (at most an eighth of the cells) whose share of the exact top-k reaches ``TARGET_RECALL``;
then every query is searched once with it, and that share is reported, so an approximate result
always says what it cost. (Scanning a fixed eighth would keep the search quadratic: 1/8 of exact
search at any size; measured at 200k videos, 140k x 60k x 768, 461 s on a loaded 2-core CPU.) ``exact=True``
keeps exact search at any size; ``exact=False`` asks for the IVF search at any size.

Example:
    >>> import numpy as np
    >>> mem = np.eye(4, dtype=np.float32); q = mem[[2]]
    >>> sims, ids, report = top_k(mem, q, 1)
    >>> int(ids[0, 0]), report.method
    (2, 'exact')
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .index import IndexParams, _faiss, build_index, search

EXACT_WORK_LIMIT = 1e12  # multiply-adds: about 20-60 s of exact search on a 2-core CPU
RECALL_SAMPLE = 256  # queries whose exact top-k is computed to measure the approximate search
TARGET_RECALL = 0.98  # share of the exact top-k the cells scanned must find on the sample
FIRST_NPROBE = 16


@dataclass(frozen=True)
class SearchReport:
    """How a top-k search was done: "exact" or "ivf", its work, and for ivf the recall measured."""

    method: str
    work: float  # multiply-adds of an exact search of the same queries and memory
    recall: float | None = None  # share of the exact top-k found, on `sampled` queries
    sampled: int = 0
    params: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        if self.method == "exact":
            return "exact (FAISS IndexFlatIP)"
        return (f"approximate (FAISS IVF, nlist {self.params['nlist']}, nprobe {self.params['nprobe']}): "
                f"found {100 * self.recall:.1f} % of the exact top-k on {self.sampled} sampled queries; "
                "exact search of this size would take minutes (pass exact search to insist)")


def wants_exact(n_queries: int, n_memory: int, dim: int, exact: bool | None) -> bool:
    """Exact search when asked, or (None) while its work stays under EXACT_WORK_LIMIT."""
    return exact if exact is not None else n_queries * n_memory * dim <= EXACT_WORK_LIMIT


def top_k(memory: np.ndarray, queries: np.ndarray, k: int, exact: bool | None = None,
          seed: int = 0) -> tuple[np.ndarray, np.ndarray, SearchReport]:
    """(similarities [Q, k] descending, memory rows [Q, k], how it was searched) by inner product."""
    memory = np.ascontiguousarray(memory, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    n, d = memory.shape
    work = float(len(queries)) * n * d
    if wants_exact(len(queries), n, d, exact) or n < 1000:  # too small to cut into cells
        sims, ids = _exact(memory, queries, k)
        return sims, ids, SearchReport("exact", work)
    nlist = int(round(4 * math.sqrt(n)))
    most = max(1, nlist // 8)
    # cells trained on 39 vectors each (FAISS's least): k-means costs 39 x nlist^2 = 624 N multiply-adds
    # per dim and iteration, linear in N (the index default of 64 a cell made it the search's largest part)
    index, params = build_index(memory, IndexParams("ivf", nlist=nlist, nprobe=most, seed=seed, train_size=min(n, 39 * nlist)))
    sample = np.random.default_rng(seed).choice(len(queries), min(RECALL_SAMPLE, len(queries)), replace=False)
    _, true_ids = _exact(memory, queries[sample], k)
    nprobe = min(FIRST_NPROBE, most)
    while True:  # the fewest cells that find TARGET_RECALL of the sample's exact top-k
        index.nprobe = nprobe
        recall = _share_found(search(index, queries[sample], k)[1], true_ids)
        if recall >= TARGET_RECALL or nprobe == most:
            break
        nprobe = min(2 * nprobe, most)
    sims, ids = search(index, queries, k)
    recall = _share_found(ids[sample], true_ids)  # the reported share: the whole search's own result
    return sims, ids, SearchReport("ivf", work, recall, len(sample), {"nlist": params.nlist, "nprobe": nprobe})


def _share_found(ids: np.ndarray, true_ids: np.ndarray) -> float:
    """The share of the exact top-k ids (rows of `true_ids`) that `ids` found."""
    found = sum(len(np.intersect1d(a[a >= 0], b[b >= 0])) for a, b in zip(ids, true_ids))
    return found / max(1, int((true_ids >= 0).sum()))


def _exact(memory: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force inner-product top-k (FAISS's own, as IndexFlatIP searches), without copying memory into an index."""
    faiss = _faiss()
    return faiss.knn(queries, memory, min(k, len(memory)), metric=faiss.METRIC_INNER_PRODUCT)

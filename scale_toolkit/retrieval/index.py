"""FAISS indexes over L2-normalised descriptors (inner product = cosine), written atomically.

Index types and their knobs (defaults chosen for N gallery vectors; see benchmarks/RESULTS.md
"retrieval" for measured build/query time, memory and recall@10 against exact search):

* ``flat``  IndexFlatIP: exact. Memory 4*d bytes per vector; query time linear in N. The
  default, and the right choice below ~1e5 vectors (UCF101/HMDB51 galleries are ~1e4).
* ``ivf``   IndexIVFFlat: k-means into ``nlist`` cells (default ~sqrt(N), at most N/39), a query
  scans the ``nprobe`` nearest cells (default nlist/16, at least 1). Same memory as flat;
  query work ~ nprobe/nlist of flat. Higher nprobe: better recall, slower queries.
* ``hnsw``  IndexHNSWFlat: a graph with ``M`` links per vector (default 32), built with
  ``efConstruction`` (default 40), searched with ``efSearch`` (default 128, at least top-k).
  Memory 4*d + ~8*M bytes per vector; the slowest to build, the fastest to query at high
  recall. Higher efSearch: better recall, slower queries; higher M: better recall, more memory.
* ``ivfpq`` IndexIVFPQ: IVF cells as above, vectors compressed to ``pq_m`` bytes (default d/8
  sub-quantizers of 8 bits; fewer bits on galleries too small to train 256 centroids). About
  32x smaller than flat for d/8 bytes; recall is limited by the compression, whatever nprobe.

The index file is written to a temporary file in the same folder and renamed over the
target; its JSON sidecar (``INDEX.json``) likewise, and it records the index file's size and
sha256, so a sidecar that does not belong to the index next to it is detected on load.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import temp_beside
from ..contracts.index import SIDECAR_FORMAT, SIDECAR_VERSION, IndexFiles, SidecarHeader
from ..errors import ScaleError
from ..files import file_sha256
from ..ownership import check_replaceable

INDEX_TYPES = ("flat", "ivf", "hnsw", "ivfpq")


def _faiss():
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a dependency
        raise ScaleError("FAISS is not installed; pip install faiss-cpu") from exc
    return faiss


@dataclass
class IndexParams:
    """Knobs of the approximate indexes; 0 means "choose from the gallery size" (see module doc)."""

    index_type: str = "flat"
    nlist: int = 0
    nprobe: int = 0
    hnsw_m: int = 32
    ef_construction: int = 40
    ef_search: int = 128
    pq_m: int = 0
    pq_bits: int = 8
    train_size: int = 0  # vectors used to train ivf/ivfpq; 0: min(N, 64 * max(nlist, 2**pq_bits))
    seed: int = 0

    def validate(self) -> None:
        if self.index_type not in INDEX_TYPES:
            raise ScaleError(f"unknown --index-type {self.index_type!r}; choose one of {', '.join(INDEX_TYPES)}")
        for name in ("nlist", "nprobe", "pq_m", "train_size"):
            if getattr(self, name) < 0:
                raise ScaleError(f"{name} must be >= 0 (0 = automatic), got {getattr(self, name)}")
        if self.hnsw_m < 2 or self.ef_construction < 1 or self.ef_search < 1:
            raise ScaleError("hnsw M must be >= 2 and efConstruction/efSearch >= 1")
        if not 1 <= self.pq_bits <= 8:
            raise ScaleError(f"pq bits must be in 1..8, got {self.pq_bits}")

    def resolved(self, n: int, d: int) -> "IndexParams":
        """The parameters actually used for a gallery of n vectors of dimension d."""
        self.validate()
        p = IndexParams(**asdict(self))
        if p.index_type in ("ivf", "ivfpq"):
            if p.nlist == 0:
                p.nlist = int(round(math.sqrt(n)))
            p.nlist = max(1, min(p.nlist, n // 39 if n >= 39 else 1))  # >= 39 training points per cell
            if p.nprobe == 0:
                p.nprobe = max(1, p.nlist // 16)
            p.nprobe = min(p.nprobe, p.nlist)
        if p.index_type == "ivfpq":
            if p.pq_m == 0:
                p.pq_m = _largest_divisor_at_most(d, max(1, d // 8))
            if d % p.pq_m:
                raise ScaleError(f"pq M ({p.pq_m}) must divide the descriptor dimension {d}")
            # 2**bits centroids per sub-quantizer need >= 39 training points each
            p.pq_bits = min(p.pq_bits, int(math.floor(math.log2(max(n, 1) / 39))) if n >= 78 else 0)
            if p.pq_bits < 4:
                raise ScaleError(f"ivfpq needs at least {39 * 16} gallery vectors to train its quantizers, got {n}; "
                                 "use --index-type flat (exact) for a gallery this small")
        if p.index_type in ("ivf", "ivfpq"):
            need = 64 * max(p.nlist, 2 ** p.pq_bits if p.index_type == "ivfpq" else 1)
            p.train_size = min(n, p.train_size or need)
        return p


def _largest_divisor_at_most(d: int, m: int) -> int:
    for cand in range(min(m, d), 0, -1):
        if d % cand == 0:
            return cand
    return 1


def build_index(vectors: np.ndarray, params: IndexParams | None = None) -> tuple[Any, IndexParams]:
    """A FAISS inner-product index holding `vectors` (rows in order: FAISS id i = row i).

    Returns (index, resolved parameters). The vectors should be L2-normalised descriptors.
    """
    faiss = _faiss()
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ScaleError(f"cannot build an index from descriptors of shape {x.shape}: the gallery is empty")
    n, d = x.shape
    p = (params or IndexParams()).resolved(n, d)
    ip = faiss.METRIC_INNER_PRODUCT
    if p.index_type == "flat":
        index = faiss.IndexFlatIP(d)
    elif p.index_type == "hnsw":
        index = faiss.IndexHNSWFlat(d, p.hnsw_m, ip)
        index.hnsw.efConstruction = p.ef_construction
        index.hnsw.efSearch = p.ef_search
    else:
        quantizer = faiss.IndexFlatIP(d)
        if p.index_type == "ivf":
            index = faiss.IndexIVFFlat(quantizer, d, p.nlist, ip)
        else:
            index = faiss.IndexIVFPQ(quantizer, d, p.nlist, p.pq_m, p.pq_bits, ip)
        index.cp.seed = p.seed
        index.cp.min_points_per_centroid = 1  # sizes are checked above; keeps FAISS from printing warnings
        if hasattr(index, "pq"):
            index.pq.cp.seed = p.seed
        rng = np.random.default_rng(p.seed)
        sample = x if p.train_size >= n else x[np.sort(rng.choice(n, p.train_size, replace=False))]
        index.train(sample)  # faiss's wrapper keeps `quantizer` alive as long as `index`
        index.nprobe = p.nprobe
    index.add(x)
    return index, p


def apply_search_params(index: Any, params: IndexParams | dict, top: int = 1) -> None:
    """Set the search-time knobs (nprobe, efSearch) on a loaded index."""
    p = params if isinstance(params, dict) else asdict(params)
    faiss = _faiss()
    if p.get("index_type") in ("ivf", "ivfpq") and p.get("nprobe"):
        faiss.extract_index_ivf(index).nprobe = int(p["nprobe"])
    if p.get("index_type") == "hnsw":
        index.hnsw.efSearch = max(int(p.get("ef_search") or 16), top)


def search(index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(similarities [Q, k] float32, row ids [Q, k] int64); ids are -1 where fewer than k exist."""
    q = np.ascontiguousarray(queries, dtype=np.float32)
    if q.ndim == 1:
        q = q[None]
    if q.shape[1] != index.d:
        raise ScaleError(f"query descriptors are {q.shape[1]}-d but the index holds {index.d}-d vectors")
    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = max(index.hnsw.efSearch, k)
    sims, ids = index.search(q, int(k))
    return sims, ids


def index_bytes(index: Any) -> int:
    """Serialized size of an index in bytes (what it occupies on disk and, roughly, in memory)."""
    return int(_faiss().serialize_index(index).size)


# ---------------------------------------------------------------------- files
def sidecar_path(index_path: str | os.PathLike) -> Path:
    """The JSON sidecar next to an index: INDEX.json (e.g. ucf.faiss -> ucf.faiss.json)."""
    return IndexFiles.at(index_path).sidecar


def _tmp_in(folder: Path, name: str) -> Path:
    fd, tmp = temp_beside(folder / name)
    os.close(fd)
    return Path(tmp)


def save_index(index: Any, path: str | os.PathLike, sidecar: dict) -> Path:
    """Write `index` to `path` and `sidecar` to `path`.json, replacing a previous pair atomically.

    Two files cannot be renamed at once, so the new sidecar also carries the previous sidecar
    (under "previous") and is renamed in first, the index second: killed before, between or
    after the renames, `load_index` finds a sidecar entry that matches the index file on disk.
    """
    faiss = _faiss()
    path = Path(path)
    check_replaceable(path, "index", "--build-index")
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    tmp_index = _tmp_in(folder, path.name)
    tmp_side = _tmp_in(folder, sidecar_path(path).name)
    try:
        # serialized here and written by Python: a full disk is an OSError, not a C++ message on stderr
        with open(tmp_index, "wb") as f:
            f.write(faiss.serialize_index(index).tobytes())
            f.flush()
            os.fsync(f.fileno())
        meta = dict(sidecar)
        meta.update(SidecarHeader(index_file=path.name, index_bytes=tmp_index.stat().st_size,
                                  index_sha256=file_sha256(tmp_index), ntotal=int(index.ntotal), dim=int(index.d)).to_json())
        old = _current_entry(path)
        if old is not None:
            meta["previous"] = old
        with open(tmp_side, "w") as f:
            json.dump(meta, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_side, sidecar_path(path))
        os.replace(tmp_index, path)
    finally:
        for tmp in (tmp_index, tmp_side):
            if tmp.exists():
                tmp.unlink()
    return path


def _current_entry(path: Path) -> dict | None:
    """The sidecar entry describing the index file now at `path` (None if there is none)."""
    if not path.is_file() or not sidecar_path(path).is_file():
        return None
    try:
        return _matching_entry(path, read_sidecar(path))
    except ScaleError:
        return None


def _matching_entry(path: Path, meta: dict) -> dict | None:
    """Of the sidecar and its "previous" entry, the one whose size and sha256 match the file."""
    size = path.stat().st_size
    candidates = [c for c in (meta, meta.get("previous")) if isinstance(c, dict) and c.get("index_bytes") == size]
    if not candidates:
        return None
    sha = file_sha256(path)
    for entry in candidates:
        if entry.get("index_sha256") == sha:
            entry = {k: v for k, v in entry.items() if k != "previous"}
            return entry
    return None


def read_sidecar(path: str | os.PathLike) -> dict:
    """The sidecar of the index at `path`, validated; a clear error if absent or foreign."""
    path = Path(path)
    side = sidecar_path(path)
    if not path.exists():
        raise ScaleError(f"index not found: {path}; build one with `scale retrieve --store STORE.zarr --build-index {path}`")
    if not side.exists():
        raise ScaleError(f"{path} has no sidecar {side.name} (video ids and labels); rebuild it with --build-index")
    try:
        meta = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ScaleError(f"cannot read index sidecar {side}: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != SIDECAR_FORMAT:
        raise ScaleError(f"{side} is not a scale retrieval index sidecar")
    if meta.get("version", 0) > SIDECAR_VERSION:
        raise ScaleError(f"{side} has sidecar version {meta['version']}; upgrade scale to read it")
    return meta


def load_index(path: str | os.PathLike) -> tuple[Any, dict]:
    """(index, sidecar) of an index written by `save_index`; refuses a sidecar of another index."""
    faiss = _faiss()
    path = Path(path)
    meta = _matching_entry(path, read_sidecar(path))
    if meta is None:
        raise ScaleError(f"{path} does not match its sidecar {sidecar_path(path).name} (the index was replaced "
                         "or a build was interrupted); rebuild it with --build-index")
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as exc:
        raise ScaleError(f"cannot read FAISS index {path}: {str(exc).splitlines()[0]}") from exc
    if index.ntotal != meta.get("ntotal") or index.d != meta.get("dim"):
        raise ScaleError(f"{path} holds {index.ntotal} x {index.d} vectors but its sidecar says "
                         f"{meta.get('ntotal')} x {meta.get('dim')}; rebuild it with --build-index")
    apply_search_params(index, meta.get("index_params", {}))
    return index, meta

"""Retrieval index benchmark: build/query time, memory and recall@10 of approximate FAISS
indexes against exact search (IndexFlatIP), all measured in the same run on the same data.

The gallery is synthetic but clustered like real video descriptors (N vectors around
`--centres` random centres, default 100 like UCF101's 101 classes, plus isotropic noise,
L2-normalised); queries are drawn from the same distribution. Uniform random vectors would be a
poor stand-in: in 768-d their nearest neighbours are barely nearer than anything else and no
approximate index can find them.

    python benchmarks/retrieval.py                  # 1M x 768 gallery, 1000 queries (a few minutes on 2 cores)
    python benchmarks/retrieval.py --quick          # 50k x 768, 200 queries (seconds)
    python benchmarks/retrieval.py --n 200000 --types flat,ivf --json out.json

Every index is built with the toolkit's own `build_index` and default parameters, then
queried at several search widths (nprobe for ivf/ivfpq, efSearch for hnsw) to show the
recall/speed trade-off. Memory is the growth of the process's resident set while the index
is built and held (the gallery array itself is excluded), next to the index's own size.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# Busy-waiting OpenMP threads collapse on a shared machine (measured 5x slower here); sleep instead.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import faiss  # noqa: E402

from scale_toolkit.retrieval.index import IndexParams, build_index, search  # noqa: E402

K = 10


def rss_bytes() -> int:
    """Resident set size, after handing freed heap pages back to the OS (so deltas are honest)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def clustered(n: int, d: int, centres: np.ndarray, noise: float, rng: np.random.Generator,
              chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """n L2-normalised vectors (float32, generated in chunks) = a random centre plus Gaussian
    noise, and the index of each one's centre (its "class")."""
    out = np.empty((n, d), np.float32)
    labels = rng.integers(0, len(centres), n)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        x = centres[labels[s:s + m]]
        x += noise * rng.standard_normal((m, d), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[s:s + m] = x
    return out, labels


def manifold(n: int, d: int, basis: np.ndarray, noise: float, rng: np.random.Generator,
             chunk: int = 65536) -> tuple[np.ndarray, None]:
    """n L2-normalised vectors on a random r-dim linear subspace (latent z ~ N(0, I_r), basis
    [r, d]) plus small isotropic noise: continuous, no clusters, the hard case for IVF cells."""
    out = np.empty((n, d), np.float32)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        x = rng.standard_normal((m, basis.shape[0]), dtype=np.float32) @ basis
        x += noise * rng.standard_normal((m, d), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[s:s + m] = x
    return out, None


def recall_vs_exact(ids: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of the exact top-k found in the approximate top-k."""
    return float(np.mean([len(np.intersect1d(a, b)) / exact.shape[1] for a, b in zip(ids, exact)]))


def label_recall(ids: np.ndarray, gallery_labels: np.ndarray, query_labels: np.ndarray, k: int) -> float:
    """The toolkit's R@k (percent): a hit if any of the top-k shares the query's cluster."""
    return float(100.0 * np.mean((gallery_labels[ids[:, :k]] == query_labels[:, None]).any(axis=1)))


def timed_queries(index, queries: np.ndarray, single: int = 50) -> tuple[np.ndarray, np.ndarray, dict]:
    t0 = time.perf_counter()
    sims, ids = search(index, queries, K)
    batch = time.perf_counter() - t0
    lat = []
    for q in queries[:single]:  # one query at a time, as `scale retrieve --query` does
        t = time.perf_counter()
        search(index, q[None], K)
        lat.append(time.perf_counter() - t)
    return sims, ids, {"batch_s": round(batch, 3), "batch_ms_per_query": round(1e3 * batch / len(queries), 4),
                       "single_query_ms_median": round(1e3 * float(np.median(lat)), 3)}


def index_size_bytes(index) -> int:
    """Bytes of the index's own arrays (what it holds in memory), from FAISS's structures."""
    if isinstance(index, faiss.IndexFlat):
        return index.ntotal * index.code_size
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        lists = faiss.extract_index_ivf(index).invlists
        return index.ntotal * (ivf.code_size + 8) + ivf.nlist * ivf.d * 4 + lists.nlist * 24
    if hasattr(index, "hnsw"):
        hnsw = index.hnsw
        return index.ntotal * index.d * 4 + hnsw.neighbors.size() * 4 + hnsw.offsets.size() * 8 + hnsw.levels.size() * 4
    return 0


def widths(kind: str, p: IndexParams) -> list[tuple[str, int]]:
    if kind in ("ivf", "ivfpq"):
        vals = sorted({max(1, p.nprobe // 4), p.nprobe, min(p.nlist, p.nprobe * 4)})
        return [("nprobe", v) for v in vals]
    if kind == "hnsw":
        return [("efSearch", v) for v in (32, p.ef_search, 512)]
    return [("exact", 0)]


def make_data(args, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None, dict]:
    """(gallery, its labels, queries, their labels, what the data is) for `--data clustered|manifold`."""
    d = args.d
    if args.data == "clustered":
        centres = rng.standard_normal((args.centres, d), dtype=np.float32)
        gallery, g_labels = clustered(args.n, d, centres, args.noise, rng)
        queries, q_labels = clustered(args.queries, d, centres, args.noise, rng)
        return gallery, g_labels, queries, q_labels, {"data": "clustered", "centres": args.centres, "noise": args.noise}
    basis = rng.standard_normal((args.intrinsic, d), dtype=np.float32) / np.sqrt(args.intrinsic)
    noise = 0.1 if args.noise == 1.0 else args.noise
    gallery, g_labels = manifold(args.n, d, basis, noise, rng)
    queries, q_labels = manifold(args.queries, d, basis, noise, rng)
    return gallery, g_labels, queries, q_labels, {"data": "manifold", "intrinsic_dim": args.intrinsic, "noise": noise}


# the knobs each index type reports
REPORTED_PARAMS = {"ivf": ("nlist", "nprobe", "train_size"), "ivfpq": ("nlist", "nprobe", "pq_m", "pq_bits", "train_size"),
                   "hnsw": ("hnsw_m", "ef_construction", "ef_search")}


def run(args) -> dict:
    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    gallery, g_labels, queries, q_labels, data = make_data(args, rng)
    gen_s = time.perf_counter() - t0
    report = {"n": args.n, "d": args.d, "queries": args.queries, "k": K, **data,
              "threads": faiss.omp_get_max_threads(), "cpu_count": os.cpu_count(), "faiss": faiss.__version__,
              "gallery_bytes": int(gallery.nbytes), "generate_s": round(gen_s, 2), "indexes": []}
    exact: dict = {}  # the flat index's ids and timings, measured first: the reference of the others
    for kind in args.types:
        report["indexes"].append(measure_index(kind, args, gallery, queries, g_labels, q_labels, exact))
    report["peak_rss_bytes"] = int(__import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss * 1024)
    return report


def measure_index(kind: str, args, gallery: np.ndarray, queries: np.ndarray, g_labels: np.ndarray | None,
                  q_labels: np.ndarray | None, exact: dict) -> dict:
    """Build one index type, then query it at each search width; fills `exact` when `kind` is flat."""
    gc.collect()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    index, p = build_index(gallery, IndexParams(kind, ef_construction=args.ef_construction, hnsw_m=args.hnsw_m,
                                                 nlist=args.nlist))
    build_s = time.perf_counter() - t0
    held = rss_bytes() - rss0
    entry = {"type": kind, "build_s": round(build_s, 2), "rss_growth_bytes": int(held),
             "index_bytes": int(index_size_bytes(index)),
             "params": {k: v for k, v in vars(p).items() if k in REPORTED_PARAMS.get(kind, ())}, "search": []}
    for knob, val in widths(kind, p):
        if knob == "nprobe":
            faiss.extract_index_ivf(index).nprobe = val
        elif knob == "efSearch":
            index.hnsw.efSearch = val
        _, ids, t = timed_queries(index, queries)
        if kind == "flat":
            exact.update(ids=ids, batch_s=t["batch_s"], single_ms=t["single_query_ms_median"])
        row = {knob: val, **t, **search_quality(ids, t, g_labels, q_labels, exact)}
        entry["search"].append(row)
        print(f"{kind:6s} {knob}={val:<5} build {build_s:7.1f}s  batch {t['batch_ms_per_query']:9.3f} ms/q  "
              f"single {t['single_query_ms_median']:8.2f} ms  recall@10 {row.get('recall@10_vs_exact', 1.0):.3f}  "
              f"R@1 {row.get('R@1', '-')}  "
              f"mem +{held / 2**30:.2f} GiB (index {entry['index_bytes'] / 2**30:.2f} GiB)", flush=True)
    del index
    return entry


def search_quality(ids: np.ndarray, timing: dict, g_labels: np.ndarray | None, q_labels: np.ndarray | None,
                   exact: dict) -> dict:
    """R@1/R@10 against the labels (clustered data), and recall and speed-up against exact search."""
    row = {}
    if g_labels is not None:
        row["R@1"] = round(label_recall(ids, g_labels, q_labels, 1), 2)
        row["R@10"] = round(label_recall(ids, g_labels, q_labels, 10), 2)
    if exact:
        row["recall@10_vs_exact"] = round(recall_vs_exact(ids, exact["ids"]), 4)
        row["batch_speedup_vs_exact"] = round(exact["batch_s"] / max(timing["batch_s"], 1e-9), 2)
        row["single_speedup_vs_exact"] = round(exact["single_ms"] / max(timing["single_query_ms_median"], 1e-9), 2)
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="gallery size (default 1M)")
    ap.add_argument("--d", type=int, default=768, help="dimension (default 768)")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--centres", type=int, default=100,
                    help="clusters ('classes') in the synthetic gallery; 100 ~ UCF101's 101 classes. With fewer "
                         "clusters than IVF cells a cluster spans several cells, so nprobe matters")
    ap.add_argument("--noise", type=float, default=1.0,
                    help="per-dimension noise (clustered: around a centre ~ N(0, 1); manifold: default 0.1)")
    ap.add_argument("--data", choices=("clustered", "manifold"), default="clustered",
                    help="clustered: class-like clusters (R@k meaningful); manifold: a continuous low-dim "
                         "subspace, the hard case for IVF and PQ")
    ap.add_argument("--intrinsic", type=int, default=32, help="manifold: intrinsic dimension")
    ap.add_argument("--types", default="flat,ivf,ivfpq,hnsw", help="comma-separated; flat first gives the reference")
    ap.add_argument("--ef-construction", type=int, default=IndexParams.ef_construction, help="hnsw build width")
    ap.add_argument("--hnsw-m", type=int, default=IndexParams.hnsw_m, help="hnsw links per vector")
    ap.add_argument("--nlist", type=int, default=0, help="ivf/ivfpq cells (0: the toolkit's default ~sqrt(N))")
    ap.add_argument("--threads", type=int, default=0, help="FAISS threads (0: all cores)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="smoke run: 50k gallery, 200 queries")
    ap.add_argument("--json", type=Path, help="write the full report here")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.queries = min(args.n, 50_000), min(args.queries, 200)
    args.types = [t.strip() for t in args.types.split(",") if t.strip()]
    if "flat" in args.types:
        args.types.remove("flat")
    args.types.insert(0, "flat")  # the exact reference is always measured, first
    report = run(args)
    report["command"] = "python benchmarks/retrieval.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

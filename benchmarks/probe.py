"""Benchmark of `scale probe`: the k-NN probe (FAISS exact search + DINO vote) against a brute-force
scikit-learn baseline (NearestNeighbors, algorithm="brute", metric="cosine", + the same vote), measured
in the same run, and the wall time of a default probe run (k-NN + Linear) on a small store.

    .venv/bin/python benchmarks/probe.py            # 100k gallery x 10k queries x 768-d, top-20
    .venv/bin/python benchmarks/probe.py --quick    # 10k x 1k x 768-d smoke run

Prints one JSON object (also written with --json).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

# On shared cores, busy-waiting OpenMP threads (torch, FAISS) are several times slower; set before they load.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scale_toolkit.probes.knn import knn_scores, prepare  # noqa: E402


def clustered(n: int, centres: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n_classes, dim = centres.shape
    labels = rng.integers(0, n_classes, n)
    return centres[labels] + 3.0 * rng.normal(size=(n, dim)).astype(np.float32), labels


def sklearn_knn_scores(memory, memory_labels, queries, k, n_classes, temperature=0.07):
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k, algorithm="brute", metric="cosine").fit(memory)
    dist, idx = nn.kneighbors(queries)
    sims = 1.0 - dist
    scores = np.zeros((len(queries), n_classes))
    np.add.at(scores, (np.repeat(np.arange(len(queries)), k), memory_labels[idx].ravel()), np.exp(sims / temperature).ravel())
    return scores


def bench_knn(gallery: int, queries: int, dim: int, k: int, n_classes: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)).astype(np.float32)
    mem, mem_y = clustered(gallery, centres, rng)
    q, q_y = clustered(queries, centres, rng)
    t0 = time.perf_counter()
    m32, q32 = prepare(mem, q)
    ours = knn_scores(m32, mem_y, q32, [k], n_classes)[k]
    t_faiss = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = sklearn_knn_scores(mem, mem_y, q, k, n_classes)
    t_sk = time.perf_counter() - t0
    return {
        "gallery": gallery, "queries": queries, "dim": dim, "k": k,
        "faiss_s": round(t_faiss, 3), "sklearn_brute_s": round(t_sk, 3), "speedup": round(t_sk / t_faiss, 2),
        "queries_per_s_faiss": round(queries / t_faiss, 1),
        "top1_agreement": float((ours.argmax(1) == ref.argmax(1)).mean()),
        "top1_acc_faiss": float(100 * (ours.argmax(1) == q_y).mean()),
    }


def bench_default_run(n_videos: int = 500, n_classes: int = 50, dim: int = 768) -> dict:
    """Wall time of `run_probes` with the default rows (k-NN + Linear) and grid on one split."""
    from scale_toolkit.probes import ProbeOptions, run_probes
    from scale_toolkit.store import FeatureStore

    rng = np.random.default_rng(0)
    labels = np.arange(n_videos) % n_classes
    splits = np.where(rng.random((3, n_videos)) < 0.7, 1, 2).astype(np.int8)
    means = rng.normal(size=(n_classes, dim)) * 0.3
    feats = means[labels][:, None] + rng.normal(size=(n_videos, 15, dim))
    with tempfile.TemporaryDirectory() as d:
        fs = FeatureStore.create(Path(d) / "s.zarr", video_ids=[f"v{i}" for i in range(n_videos)], labels=labels,
                                 splits=splits, class_names=[f"c{i}" for i in range(n_classes)], n_clips=15,
                                 feature_dim=dim, attrs={"backbone": {"name": "synthetic", "family": "synthetic"}})
        fs.write_rows(np.arange(n_videos), features=feats.astype(np.float16), coords=np.zeros((n_videos, 15, 6), np.float32))
        t0 = time.perf_counter()
        doc = run_probes(fs.path, options=ProbeOptions(split="1", device="cpu"))
        wall = time.perf_counter() - t0
    return {"videos": n_videos, "clips": 15, "dim": dim, "classes": n_classes, "wall_s": round(wall, 2),
            "seconds_per_row": {r: v["seconds"] for r, v in doc["results"].items()},
            "top1": {r: round(v["top1"], 2) for r, v in doc["results"].items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10k gallery x 1k queries (smoke run)")
    ap.add_argument("--gallery", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--classes", type=int, default=101)
    ap.add_argument("--skip-run", action="store_true", help="skip the default probe run timing")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.quick:
        args.gallery, args.queries = 10_000, 1_000
    import faiss
    import sklearn
    import torch

    result = {
        "command": " ".join(["benchmarks/probe.py", *sys.argv[1:]]),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch_threads": torch.get_num_threads(),
                    "faiss_omp_threads": faiss.omp_get_max_threads(), "faiss": faiss.__version__, "sklearn": sklearn.__version__,
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "load_avg_1m": round(os.getloadavg()[0], 2)},
        "knn": bench_knn(args.gallery, args.queries, args.dim, args.k, args.classes),
    }
    if not args.skip_run:
        result["default_run"] = bench_default_run()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()

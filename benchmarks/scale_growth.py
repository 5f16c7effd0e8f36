"""How every step grows with the number of videos: time, peak memory and disk at 1k / 10k / 50k.

Builds synthetic stores (D = 768 by default; an eval15 store for probes and retrieval, a train16
store for training; clustered features so the probes have something to find), then runs each
step as the user would, through the CLI in a child process, and records its wall time and peak
resident memory (the child's own maximum RSS, from wait4). The fitted growth exponent between
two sizes is log(t2 / t1) / log(n2 / n1): 1 is linear, 2 quadratic.

    python benchmarks/scale_growth.py --sizes 1000 10000 50000 --json growth.json
    python benchmarks/scale_growth.py --sizes 1000 10000 --repo /path/to/older/checkout   # the same steps on other code

`--repo` runs the CLI of another checkout (the same venv), so before/after are measured by one
script on one machine. Steps (each its own process):

* import: `scale import` of an .npz export of the eval15 store
* verify: `scale info --verify`
* train: `scale train`, one epoch, a small model (hidden 64, 1 layer): the data handling is what grows
* train_budget: the same under `--max-memory` 1.3x the store (at least 1.2 GiB, `bound`): the whole
  process stays under it, and a split larger than what it leaves for data streams from the store
* knn, linear: `scale probe --knn 20`, `scale probe --linear --epochs 2`; linear_budget: the same
  under that `--max-memory` (the clips streamed from the store where they do not fit)
* recall: `scale retrieve` (R@k of split 1's test videos against its train videos)
* build_index: `scale retrieve --build-index` (flat, no media)
* query_id: one query by video id through `retrieval.query.OpenIndex` in-process (open excluded),
  the median of 20 ids; and `query_cli`, the whole `scale retrieve --index --query ID` command.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CLASSES = 50


def cpu_name() -> str:
    try:
        import torch

        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # torch missing or too old: the benchmark still runs
        capability = "?"
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor()
    return f"{model}, {os.cpu_count()} cores, torch capability {capability}"


def make_stores(root: Path, n: int, dim: int, repo: Path, seed: int = 0) -> tuple[Path, Path]:
    """An eval15 and a train16 store of n videos (split 1: 70 % train, 30 % test), written in blocks."""
    sys.path.insert(0, str(repo))
    from scale_toolkit.store import FeatureStore

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n).astype(np.int32)
    splits = np.zeros((3, n), np.int8)
    splits[:, :] = np.where(rng.random(n) < 0.7, 1, 2)
    centres = rng.standard_normal((CLASSES, dim)).astype(np.float32)
    ids = [f"c{label:02d}/v{i:07d}.avi" for i, label in enumerate(labels)]
    names = [f"c{c:02d}" for c in range(CLASSES)]
    out = []
    for view, clips in (("eval15", 15), ("train16", 16)):
        path = root / f"{view}.zarr"
        attrs = {"view": {"name": view, "clips": clips}, "backbone": {"name": "synthetic", "feature_dim": dim},
                 "dataset": "synthetic"}
        fs = FeatureStore.create(path, video_ids=ids, labels=labels, splits=splits, class_names=names,
                                 n_clips=clips, feature_dim=dim, attrs=attrs, overwrite=True)
        step = 4096
        for start in range(0, n, step):
            rows = np.arange(start, min(start + step, n))
            feats = centres[labels[rows]][:, None, :] + 2.0 * rng.standard_normal((len(rows), clips, dim), dtype=np.float32)
            t0 = rng.random((len(rows), clips, 1), dtype=np.float32) * 0.8
            coords = np.concatenate([np.zeros_like(t0), np.zeros_like(t0), t0, np.ones_like(t0), np.ones_like(t0),
                                     t0 + 0.2], axis=2)
            fs.write_rows(rows, features=feats.astype(np.float16), coords=coords)
        out.append(path)
    sys.path.remove(str(repo))
    return out[0], out[1]


def run(cmd: list[str], repo: Path) -> dict:
    """A CLI command in a child process: wall time, peak RSS (wait4), exit status."""
    argv = [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(repo)!r}); from cli.main import main; main()", *cmd]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(out[-2000:], file=sys.stderr)
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "exit": code}


def query_by_id(index: Path, store: Path, repo: Path, n_queries: int = 20) -> dict:
    """In a child: open the index once, then the median time of answering one query by video id."""
    code = f"""
import sys, time, json, numpy as np
sys.path.insert(0, {str(repo)!r})
from scale_toolkit.retrieval.query import OpenIndex
t0 = time.perf_counter(); oi = OpenIndex({str(index)!r}, store_path={str(store)!r}); opened = time.perf_counter() - t0
ids = oi.meta["video_ids"]
rng = np.random.default_rng(0)
times = []
for i in rng.choice(len(ids), {n_queries}, replace=False):
    t0 = time.perf_counter()
    feats, coords, info = oi.read_video(ids[i])
    oi.search(oi.descriptor(feats, coords), 10)
    times.append(time.perf_counter() - t0)
print(json.dumps({{"open_seconds": round(opened, 3), "query_ms": round(1000 * float(np.median(times)), 1)}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stderr[-2000:], file=sys.stderr)
        return {"exit": out.returncode}
    return json.loads(out.stdout.strip().splitlines()[-1])


def bound(store_mb: float) -> int:
    """The `--max-memory` of the *_budget steps: the issue's 1.3x the store, but at least what these
    runs need before any data (the process and one step: ~0.95 GiB, refused below that), so small
    stores stream too."""
    return max(int(1.3 * store_mb * 2**20), 1200 << 20)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def measure(n: int, dim: int, work: Path, repo: Path, skip: set[str]) -> dict:
    root = work / f"n{n}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    t0 = time.perf_counter()
    # in a child: a forked child's peak RSS starts at its parent's, so the parent stays small
    subprocess.run([sys.executable, __file__, "--make", str(root), str(n), str(dim), "--repo", str(repo)], check=True)
    eval_store, train_store = root / "eval15.zarr", root / "train16.zarr"
    result: dict = {"videos": n, "make_seconds": round(time.perf_counter() - t0, 1),
                    "eval_store_mb": round(dir_bytes(eval_store) / 2**20, 1),
                    "train_store_mb": round(dir_bytes(train_store) / 2**20, 1)}
    steps = {
        "import": (["export", str(eval_store), "--out", str(root / "eval.npz")],
                   ["import", str(root / "eval.npz"), "--out", str(root / "imported.zarr")]),
        "verify": (None, ["info", "--verify", str(eval_store)]),
        "train": (None, ["train", "--store", str(train_store), "--out", str(root / "run"), "--epochs", "1",
                         "--hidden", "64", "--layers", "1", "--heads", "2", "--batch-size", "512",
                         "--warmup", "0", "--precision", "fp32", "--threads", "1"]),
        "train_budget": (None, ["train", "--store", str(train_store), "--out", str(root / "run_budget"), "--epochs", "1",
                                "--hidden", "64", "--layers", "1", "--heads", "2", "--batch-size", "512",
                                "--warmup", "0", "--precision", "fp32", "--threads", "1",
                                "--max-memory", str(bound(result["train_store_mb"]))]),
        "knn": (None, ["probe", "--store", str(eval_store), "--knn", "20"]),
        "linear": (None, ["probe", "--store", str(eval_store), "--linear", "--epochs", "2", "--grid-preset", "small"]),
        "linear_budget": (None, ["probe", "--store", str(eval_store), "--linear", "--epochs", "2", "--grid-preset", "small",
                                 "--max-memory", str(bound(result["eval_store_mb"]))]),
        "recall": (None, ["retrieve", "--store", str(eval_store), "--k", "1,5"]),
        "build_index": (None, ["retrieve", "--store", str(eval_store), "--build-index", str(root / "index.faiss"),
                               "--no-thumbs"]),
    }
    for name, (prepare, cmd) in steps.items():
        if name in skip:
            continue
        if prepare is not None:
            run(prepare, repo)
        result[name] = run(cmd, repo)
        print(f"  n={n} {name}: {result[name]}", flush=True)
    if "build_index" not in skip and (root / "index.faiss").exists():
        result["query_id"] = query_by_id(root / "index.faiss", eval_store, repo)
        probe = json.loads((root / "index.faiss.json").read_text())["video_ids"][0]
        result["query_cli"] = run(["retrieve", "--index", str(root / "index.faiss"), "--query", probe, "--top", "5"], repo)
        print(f"  n={n} query: {result['query_id']} cli {result['query_cli']}", flush=True)
    result["disk_mb"] = round(dir_bytes(root) / 2**20, 1)
    shutil.rmtree(root, ignore_errors=True)
    return result


def exponents(results: list[dict]) -> dict:
    """Growth exponent of each step's time between consecutive sizes."""
    out: dict = {}
    for a, b in zip(results, results[1:]):
        key = f"{a['videos']}->{b['videos']}"
        for step, value in b.items():
            if isinstance(value, dict) and "seconds" in value and isinstance(a.get(step), dict) and a[step].get("seconds"):
                ratio = max(value["seconds"], 1e-3) / max(a[step]["seconds"], 1e-3)
                out.setdefault(step, {})[key] = round(math.log(ratio) / math.log(b["videos"] / a["videos"]), 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--work", type=Path, default=Path("/tmp/scale-growth"))
    ap.add_argument("--repo", type=Path, default=HERE.parent, help="the checkout whose CLI is measured")
    ap.add_argument("--skip", default="", help="comma-separated steps to leave out")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--make", nargs=3, metavar=("ROOT", "N", "DIM"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.make:
        make_stores(Path(args.make[0]), int(args.make[1]), int(args.make[2]), args.repo.resolve())
        return
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    skip = {s for s in args.skip.split(",") if s}
    print(f"CPU: {cpu_name()}; repo {args.repo}", flush=True)
    results = [measure(n, args.dim, args.work, args.repo.resolve(), skip) for n in args.sizes]
    report = {"cpu": cpu_name(), "repo": str(args.repo), "dim": args.dim, "results": results,
              "exponents": exponents(results)}
    print(json.dumps(report["exponents"], indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

"""Extraction under load: peak memory must not grow with the number of videos.

One tiny synthetic video (16 frames, 32x40) is encoded once and hard-linked N times under
different names (10 classes, half train / half test in split 1); `run_extraction` with the
built-in `tiny` backbone then extracts all N into an eval15 store. Each N runs in a fresh
process, which reports its peak RSS (resource.getrusage: itself, and the largest of its decode
workers) and its throughput. Peak RSS should be flat in N: per-video state is a few integers.

    .venv/bin/python benchmarks/load_extract.py                 # N = 1000 and 10000
    .venv/bin/python benchmarks/load_extract.py --n 200 --n 1000  # smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_dataset(root: Path, n: int) -> Path:
    """N hard links to one encoded video, and a manifest.csv naming them."""
    from scale_toolkit.demo.synthetic import CLASSES, SyntheticSpec, render_video, write_video

    spec = SyntheticSpec(frames=16, height=32, width=40)
    one = root / "_one.mp4"
    write_video(one, render_video(CLASSES[0], spec, np.random.default_rng(0)), spec.fps)
    rows = ["path,label,split"]
    for i in range(n):
        rel = f"class{i % 10}/video_{i:06d}.mp4"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        os.link(one, root / rel)
        rows.append(f"{rel},class{i % 10},{'test' if i % 2 else 'train'}")
    csv = root / "manifest.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv


def child(root: Path, csv: Path, out: Path, workers: int) -> dict:
    from scale_toolkit.extract import ExtractConfig, run_extraction

    t0 = time.perf_counter()
    summary = run_extraction(ExtractConfig(backbone="tiny", dataset="csv", csv=csv, root=root, view="eval15", out=out,
                                           workers=workers, threads=1, batch_size=60))
    secs = time.perf_counter() - t0
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"videos": summary.total, "done": summary.done_now, "failed": len(summary.failed_now), "seconds": round(secs, 1),
            "videos_per_s": round(summary.done_now / secs, 1), "peak_rss_mib": round(me, 1),
            "peak_rss_worker_mib": round(kids, 1), "peak_rss_total_mib": round(me + kids, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, action="append", help="number of videos (repeatable; default 1000 and 10000)")
    ap.add_argument("--workers", type=int, default=1, help="decode worker processes (0: in-process)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--child", nargs=4, metavar=("ROOT", "CSV", "OUT", "WORKERS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        root, csv, out, workers = args.child
        print(json.dumps(child(Path(root), Path(csv), Path(out), int(workers))))
        return
    results = []
    for n in args.n or [1000, 10000]:
        work = Path(tempfile.mkdtemp(prefix="scale-load-extract-"))
        try:
            csv = make_dataset(work / "videos", n)
            res = subprocess.run([sys.executable, __file__, "--child", str(work / "videos"), str(csv),
                                  str(work / "store.zarr"), str(args.workers)], capture_output=True, text=True, check=True,
                                 env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
            row = {"n": n, **json.loads(res.stdout.strip().splitlines()[-1])}
        finally:
            shutil.rmtree(work, ignore_errors=True)
        results.append(row)
        print(json.dumps(row), flush=True)
    base = results[0]["peak_rss_total_mib"]
    for r in results[1:]:
        print(f"peak RSS at N={r['n']} / at N={results[0]['n']}: {r['peak_rss_total_mib'] / base:.3f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""Training under load: a 100,000-video store (16 clips x 768 dims, 2.4 GB float16) with half of
its videos in the train part of split 1. The trainer must hold only the train split in memory
(read through FeatureStore.read, never the whole store) and keep its throughput.

Three fresh processes: (1) write the store with FeatureStore.create + write_block in blocks of
random data; (2) open it and read everything (the "whole store" yardstick of memory); (3) train
a few steps with `scale_toolkit.train.train` and report peak RSS (VmHWM) and samples/s of the
steps after the first. Peak RSS of (3) should be about the train split's bytes + the model/batch
working set, well below (2).

    df -h /tmp   # the store takes about 2.4 GB
    .venv/bin/python benchmarks/load_train.py                   # 100,000 videos
    .venv/bin/python benchmarks/load_train.py --n 4000 --steps 5  # smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

V, D = 16, 768


def _mib(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make(path: Path, n: int, block_rows: int) -> dict:
    from scale_toolkit.store import FeatureStore

    t0 = time.perf_counter()
    splits = np.zeros((3, n), np.int8)
    splits[0] = np.where(np.arange(n) % 2 == 0, 1, 2)  # every other video trains in split 1
    fs = FeatureStore.create(path, video_ids=[f"v{i:06d}" for i in range(n)], labels=np.arange(n) % 101, splits=splits,
                             class_names=[f"c{i}" for i in range(101)], n_clips=V, feature_dim=D,
                             attrs={"backbone": {"name": "synthetic"}, "view": {"name": "train16", "clips": V}},
                             rows_per_chunk=block_rows)
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, V + 1, dtype=np.float32)
    coords = np.zeros((V, 6), np.float32)
    coords[:, 2], coords[:, 3:5], coords[:, 5] = t[:-1], 1.0, t[1:]
    for b in range(fs.n_blocks):
        rows = fs.block_rows(b)
        feats = rng.standard_normal((len(rows), V, D), dtype=np.float32).astype(np.float16)
        fs.write_block(b, {r: {"features": feats[i], "coords": coords} for i, r in enumerate(rows)})
    return {"n": n, "write_s": round(time.perf_counter() - t0, 1), "disk_gib": round(fs.disk_bytes() / 2**30, 2)}


def read_all(path: Path) -> dict:
    from scale_toolkit.store import FeatureStore

    fs = FeatureStore.open(path)
    data = fs.read(None, names=("features", "coords"))
    return {"whole_store_bytes_gib": round(sum(a.nbytes for a in data.values()) / 2**30, 2),
            "read_all_peak_rss_gib": round(_mib("VmHWM") / 1024, 2)}


class _Stop(Exception):
    pass


def train_steps(path: Path, steps: int, batch: int) -> dict:
    import torch

    from scale_toolkit.store import FeatureStore
    from scale_toolkit.train import TrainConfig, train

    fs = FeatureStore.open(path)
    n_train = int(fs.split_indices(1, "train").size)
    times: list[float] = []
    rss_after_load: list[float] = []

    def progress(event):
        if event["event"] == "start":
            rss_after_load.extend([_mib("VmRSS"), _mib("VmHWM")])
        if event["event"] == "step":
            times.append(time.perf_counter())
            if len(times) > steps:
                raise _Stop

    out = Path(tempfile.mkdtemp(prefix="scale-load-train-run-"))
    try:
        train(TrainConfig(store=str(path), split=1, out=str(out / "run"), epochs=1, batch_size=batch, device="cpu",
                          threads=torch.get_num_threads()), progress=progress)
    except _Stop:
        pass
    finally:
        shutil.rmtree(out, ignore_errors=True)
    split_bytes = n_train * V * (D * 2 + 6 * 4)
    rate = batch * (len(times) - 1) / (times[-1] - times[0])  # steps after the first (warm-up)
    return {"train_videos": n_train, "train_split_bytes_gib": round(split_bytes / 2**30, 2),
            "rss_after_load_gib": round(rss_after_load[0] / 1024, 2),
            "peak_rss_while_loading_gib": round(rss_after_load[1] / 1024, 2), "peak_rss_gib": round(_mib("VmHWM") / 1024, 2),
            "steps": len(times), "batch_size": batch, "samples_per_s": round(rate, 1), "torch_threads": torch.get_num_threads()}


def _child(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    res = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env)
    if res.returncode:
        raise SystemExit(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="videos in the store")
    ap.add_argument("--steps", type=int, default=10, help="training steps to time (after one warm-up step)")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--block-rows", type=int, default=1024, help="videos per store chunk / write_block")
    ap.add_argument("--dir", type=Path, default=None, help="where to put the store (default: a temp folder)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        what, path, *rest = args.child
        fn = {"make": lambda: make(Path(path), int(rest[0]), int(rest[1])), "read_all": lambda: read_all(Path(path)),
              "train": lambda: train_steps(Path(path), int(rest[0]), int(rest[1]))}[what]
        print(json.dumps(fn()))
        return
    work = Path(tempfile.mkdtemp(prefix="scale-load-train-", dir=args.dir))
    need = args.n * V * (D * 2 + 6 * 4 + 6 * 4 + 1) * 1.05
    free = shutil.disk_usage(work).free
    if free < need:
        raise SystemExit(f"need about {need / 2**30:.1f} GiB free in {work}, have {free / 2**30:.1f} GiB")
    try:
        store = work / "store.zarr"
        results = {"make": _child("make", str(store), str(args.n), str(args.block_rows))}
        print(json.dumps(results["make"]), flush=True)
        results["read_all"] = _child("read_all", str(store))
        print(json.dumps(results["read_all"]), flush=True)
        results["train"] = _child("train", str(store), str(args.steps), str(args.batch_size))
        print(json.dumps(results["train"]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

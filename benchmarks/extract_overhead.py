"""Extraction overhead: full `run_extraction` wall time / time of the same backbone forward passes
on clips decoded beforehand. 1.0 means decoding, transforms and store writes are fully hidden
behind the backbone's compute. Target <= 1.15.

    .venv/bin/python benchmarks/extract_overhead.py --backbone videomae-b --videos 6
"""
from __future__ import annotations

import os

# As `scale extract` does (cli/app.py): decode workers share the cores with the backbone's OpenMP
# threads, and busy-waiting threads stall whenever a worker takes a core.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from scale_toolkit.backbones import load_backbone
from scale_toolkit.backbones.inference import embed_clips
from scale_toolkit.demo.synthetic import SyntheticSpec, make_synthetic_dataset
from scale_toolkit.extract import ExtractConfig, run_extraction
from scale_toolkit.extract.prepare import ViewRecipe, prepare_video
from scale_toolkit.precision import resolve_precision


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="videomae-b")
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--view", default="eval15")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=15)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="auto")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    try:
        per_class = -(-args.videos // 6)
        csv = make_synthetic_dataset(work / "videos", SyntheticSpec(videos_per_class=per_class, frames=96, height=240, width=320))
        loaded = load_backbone(args.backbone, random_init=args.backbone != "tiny")
        module = loaded.module.to(args.device)
        precision = resolve_precision(args.precision, args.device).value
        recipe = ViewRecipe.for_backbone(args.view, loaded.spec)
        paths = sorted((work / "videos").rglob("*.mp4"))[: args.videos]
        clips = [prepare_video(p, p.name, recipe)["clips"] for p in paths]  # decoded beforehand, not timed
        embed_clips(module, torch.from_numpy(clips[0][:2]), args.batch_size, precision)  # warm-up

        def forward_only() -> float:
            t0 = time.perf_counter()
            for c in clips:
                embed_clips(module, torch.from_numpy(c), args.batch_size, precision)
            return time.perf_counter() - t0

        before = forward_only()

        cfg = ExtractConfig(
            backbone=args.backbone, random_init=args.backbone != "tiny", dataset="csv", csv=csv, root=work / "videos",
            view=args.view, out=work / "s.zarr", workers=args.workers, batch_size=args.batch_size, device=args.device,
            precision=args.precision, limit=args.videos,
        )
        t0 = time.perf_counter()
        summary = run_extraction(cfg)
        full_s = time.perf_counter() - t0
        # forward passes timed before and after the extraction: the machine's speed drifts (shared
        # cores, clocks) by up to 10 % between minutes-long phases; their mean brackets the extraction
        after = forward_only()
        compute_s = (before + after) / 2
        n_clips = sum(len(c) for c in clips)
        result = {
            "benchmark": "extract_overhead", "backbone": args.backbone, "videos": len(paths), "clips": n_clips,
            "view": args.view, "workers": args.workers, "device": args.device, "threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "load_avg_1m": round(os.getloadavg()[0], 2),
            "forward_only_s": round(compute_s, 2), "forward_before_s": round(before, 2), "forward_after_s": round(after, 2),
            "extraction_s": round(full_s, 2),
            "ratio_extraction_over_forward": round(full_s / compute_s, 3),
            "clips_per_s_extraction": round(n_clips / full_s, 2), "done": summary.done_now,
        }
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

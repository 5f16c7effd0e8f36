"""Backbone throughput: clips/s of each backbone's forward pass at its native clip size, fp32 and bf16 autocast.

Random weights (speed does not depend on them). Every figure is also given as a ratio to the `tiny`
backbone measured in the same run, because these machines are shared and noisy.

    .venv/bin/python benchmarks/backbones.py                       # every backbone, native sizes
    .venv/bin/python benchmarks/backbones.py --backbones rhobyol svt --batch-size 2 --repeats 3
    .venv/bin/python benchmarks/backbones.py --device cuda --json bench_backbones.json
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from scale_toolkit.backbones import load_backbone
from scale_toolkit.backbones.inference import embed_clips
from scale_toolkit.errors import ScaleError
from scale_toolkit.precision import resolve_precision

DEFAULT_BACKBONES = ["tiny", "rhobyol", "svt", "cvmae", "videomae-b", "videomae-b-ft", "videomae-l",
                     "timm:vit_base_patch16_224"]


def clips_per_second(module, clips: torch.Tensor, batch_size: int, precision: str, repeats: int) -> float:
    embed_clips(module, clips[:1], batch_size, precision)  # warm-up (allocator, kernels)
    best = float("inf")
    for _ in range(repeats):
        if clips.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        embed_clips(module, clips, batch_size, precision)
        if clips.is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return clips.shape[0] / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", nargs="+", default=DEFAULT_BACKBONES)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--clips", type=int, default=2, help="clips per timed pass")
    ap.add_argument("--repeats", type=int, default=2, help="timed passes; the best is kept")
    ap.add_argument("--precisions", nargs="+", default=None,
                    help="default: fp32, plus bf16 where --precision auto picks it (emulated bf16 is ~30x slower)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    if args.precisions is None:
        args.precisions = sorted({"fp32", resolve_precision("auto", args.device).value}, reverse=True)
    torch.manual_seed(0)

    names = args.backbones if "tiny" in args.backbones else ["tiny", *args.backbones]
    rows, baseline = [], {}
    for name in names:
        try:
            loaded = load_backbone(name, random_init=name != "tiny")
        except ScaleError as err:
            print(f"{name:28s} skipped: {err}")
            continue
        spec = loaded.spec
        module = loaded.module.to(args.device)
        clips = torch.randn(args.clips, 3, spec.frames, spec.crop_size, spec.crop_size, device=args.device)
        for precision in args.precisions:
            rate = clips_per_second(module, clips, args.batch_size, precision, args.repeats)
            if name == "tiny":
                baseline[precision] = rate
            row = {"backbone": name, "precision": precision, "device": args.device, "clips_per_s": rate,
                   "clip": f"{spec.frames}x{spec.crop_size}x{spec.crop_size}", "batch_size": args.batch_size,
                   "vs_tiny": rate / baseline[precision] if precision in baseline else None,
                   "threads": torch.get_num_threads()}
            rows.append(row)
            print(f"{name:28s} {precision:5s} {row['clip']:>11s}  {rate:9.3f} clips/s  "
                  f"({row['vs_tiny']:.4f} x tiny)" if row["vs_tiny"] else f"{name:28s} {precision} {rate:.3f} clips/s")
        del module, loaded
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()

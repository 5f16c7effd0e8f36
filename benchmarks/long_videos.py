"""Long videos as sets of hundreds of clips: does frozen SCALE beat clip means? (issue #29)

Writes a video_features-style folder (`scale_toolkit.demo.long_videos`: one .npy [T, D] per video, T
uniform in [min_rows, max_rows], classes that differ only by the ORDER of two events, so clip-mean
probes sit at a 50 % ceiling within each pair), imports it with `scale import LIST.csv` (a ragged
store), trains SCALE on it with the library defaults (two sets of K clips drawn from each video's
own clips every step) and reports k-NN (mean of all clips) against SCALE_kNN (the mean SET token
over interleaved K-clip subsets of each video, model/long_sets.py) on the test videos.
`--nuisance` sets the std of each video's own vector: at 0.5 it alone tells videos apart and
SCALE learns no order (docs/long_videos.md).

    nice -n 10 .venv/bin/python benchmarks/long_videos.py --seeds 0 1 2 --steps 1000 --nuisance 0.25

The same through the CLI:

    scale import FEATS/videos.csv --out long.zarr
    scale train --store long.zarr --out long-run --steps 1000 --batch-size 64
    scale probe --store long.zarr --model long-run --split 1 --knn 20

Prints one JSON object per seed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from scale_toolkit.demo.long_videos import LongVideoSpec, write_long_videos  # noqa: E402
from scale_toolkit.extract.feature_files import import_feature_files  # noqa: E402
from scale_toolkit.model import ScaleConfig  # noqa: E402
from scale_toolkit.probes import ProbeOptions, run_probes  # noqa: E402
from scale_toolkit.store import FeatureStore  # noqa: E402
from scale_toolkit.train import TrainConfig, train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--groups", type=int, default=LongVideoSpec.groups)
    ap.add_argument("--train-per-class", type=int, default=LongVideoSpec.train_per_class)
    ap.add_argument("--min-rows", type=int, default=LongVideoSpec.min_rows)
    ap.add_argument("--max-rows", type=int, default=LongVideoSpec.max_rows)
    ap.add_argument("--nuisance", type=float, default=LongVideoSpec.nuisance,
                    help="std of each video's own vector (docs/long_videos.md: 0.5 lets the SET loss tell videos apart "
                         "without their order)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rows", default="knn,scale_knn",
                    help="probe rows, comma-separated (e.g. knn,scale_knn,linear,transformer,scale_ft)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            spec = LongVideoSpec(groups=args.groups, train_per_class=args.train_per_class, min_rows=args.min_rows,
                                 max_rows=args.max_rows, nuisance=args.nuisance, seed=seed)
            csv = write_long_videos(Path(tmp) / "feats", spec)
            t0 = time.perf_counter()
            import_feature_files(csv, Path(tmp) / "long.zarr")
            t_import = time.perf_counter() - t0
            clips = FeatureStore.open(Path(tmp) / "long.zarr").clips_summary()
            t0 = time.perf_counter()
            summary = train(TrainConfig(store=str(Path(tmp) / "long.zarr"), split=1, out=str(Path(tmp) / "run"),
                                        epochs=1, steps=args.steps, batch_size=args.batch_size, seed=seed,
                                        threads=args.threads,
                                        model=ScaleConfig()))
            t_train = time.perf_counter() - t0
            rows = args.rows.split(",")
            t0 = time.perf_counter()
            res = run_probes(Path(tmp) / "long.zarr", rows=rows, model=Path(tmp) / "run", options=ProbeOptions(split="1"))
            print(json.dumps({
                "seed": seed, "spec": spec.__dict__, "clips_per_video": clips, "steps": summary["steps"],
                "final_set_acc": round(summary["final"]["set_acc"], 3),
                **{row: res["results"][row]["top1"] for row in rows}, "import_s": round(t_import, 1),
                "train_s": round(t_train, 1), "probe_s": round(time.perf_counter() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main()

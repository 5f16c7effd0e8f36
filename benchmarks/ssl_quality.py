"""Does SSL training make frozen SCALE features better than clip averages? (issue #20)

Builds an order-sensitive feature store pair (`scale_toolkit.demo.order_features`: classes differ only
by the temporal order of two sub-actions, so clip-averaged probes sit at a 50 % ceiling), trains SCALE
with the library defaults plus any overrides, and reports k-NN vs SCALE_kNN (and, with --linear,
Linear vs SCALE_linear) on the test videos, with the held-out SSL metrics of the last epoch.

    .venv/bin/python benchmarks/ssl_quality.py --steps 200
    .venv/bin/python benchmarks/ssl_quality.py --steps 200 --model in_norm=layernorm target_norm=layernorm

Prints one JSON object per seed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from scale_toolkit.demo.order_features import OrderSpec, order_feature_stores  # noqa: E402
from scale_toolkit.model import ScaleConfig  # noqa: E402
from scale_toolkit.probes import ProbeOptions, run_probes  # noqa: E402
from scale_toolkit.train import TrainConfig, train  # noqa: E402


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--train-per-class", type=int, default=40)
    ap.add_argument("--nuisance", type=float, default=OrderSpec.nuisance)
    ap.add_argument("--model", nargs="*", default=[], help="ScaleConfig overrides, key=value")
    ap.add_argument("--linear", action="store_true", help="also Linear and SCALE_linear (slower)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    overrides = {k: _value(v) for k, v in (a.split("=", 1) for a in args.model)}
    rows = ["knn", "scale_knn"] + (["linear", "scale_linear"] if args.linear else [])
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            spec = OrderSpec(groups=args.groups, train_per_class=args.train_per_class, nuisance=args.nuisance, seed=seed)
            train16, eval15 = order_feature_stores(tmp, spec)
            extra = {"lr": args.lr} if args.lr else {}
            summary = train(TrainConfig(store=str(train16), out=f"{tmp}/run", epochs=1, steps=args.steps,
                                        batch_size=args.batch_size, warmup=2.0,
                                        seed=seed, device="cpu", precision="fp32", save_every=0,
                                        model=ScaleConfig(**overrides), **extra))
            res = run_probes(eval15, rows=rows, model=f"{tmp}/run", options=ProbeOptions(split="1", device="cpu"))
            final = summary["final"]
            print(json.dumps({"seed": seed, "steps": summary["steps"], "model": overrides,
                              **{r: round(res["results"][r]["top1"], 1) for r in rows},
                              **{k: round(final[k], 3) for k in ("val_mcm_acc", "val_set_acc") if k in final}}), flush=True)


if __name__ == "__main__":
    main()

"""Benchmark of `scale probe`: the k-NN probe (FAISS exact search + DINO vote) against a brute-force
scikit-learn baseline (NearestNeighbors, algorithm="brute", metric="cosine", + the same vote), measured
in the same run, and the wall time of a default probe run (k-NN + Linear) on a small store.

    .venv/bin/python benchmarks/probe.py            # 100k gallery x 10k queries x 768-d, top-20
    .venv/bin/python benchmarks/probe.py --quick    # 10k x 1k x 768-d smoke run

``--rows``: every probe row (k-NN, SCALE_kNN, Linear, SCALE_linear, MLP, Transformer, SCALE_ft) on a
fixed generated store (1,600 videos x 15 clips x 384 dims, 101 classes, split 1; a paper-size SCALE
model with random weights: the cost does not depend on the weights), timed per row, with each row's
training FLOPs and the fraction of this CPU's fp32 matmul rate (measured in the same process) it
reached. ``--baseline REF`` runs the same rows with the code of git revision REF first, in the same
run, and reports after/before ratios. ``--demo`` times `scale demo`'s stages the same way, in wall and
in CPU seconds (process + decode workers: about the idle one-thread wall time, whatever the load).

    .venv/bin/python benchmarks/probe.py --rows --baseline main --epochs 5 --skip-knn --skip-run
    .venv/bin/python benchmarks/probe.py --demo --baseline main --demo-epochs 27 --threads 1 --skip-knn --skip-run

Every part runs in a subprocess per code version (same thread settings). Prints one JSON object
(also written with --json).
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

# scale_toolkit is imported inside the functions, never here: a `--worker` subprocess must import the
# code of the tree it was given (`--baseline`), not this file's.


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
    from scale_toolkit.probes.knn import knn_scores, prepare

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


ROWS_STORE = {"videos": 1600, "clips": 15, "dim": 384, "classes": 101}
SEVEN_ROWS = ["knn", "scale_knn", "linear", "scale_linear", "mlp", "transformer", "scale_ft"]


def make_rows_store(folder: Path) -> tuple[Path, Path]:
    """The fixed store of the row timings (seed 0) and a paper-size SCALE model (random weights) for it."""
    import torch

    from scale_toolkit.model import ScaleConfig, ScaleModel, save_model
    from scale_toolkit.store import FeatureStore

    n, v, d, c = (ROWS_STORE[k] for k in ("videos", "clips", "dim", "classes"))
    rng = np.random.default_rng(0)
    labels = np.arange(n) % c
    splits = np.where(rng.random((3, n)) < 0.9, 1, 2).astype(np.int8)  # 1,440 train / 160 test videos on split 1
    feats = (rng.normal(size=(c, d)) * 0.3)[labels][:, None] + rng.normal(size=(n, v, d))
    backbone = {"name": "synthetic", "family": "synthetic", "feature_dim": d}
    fs = FeatureStore.create(folder / "rows.zarr", video_ids=[f"v{i}" for i in range(n)], labels=labels, splits=splits,
                             class_names=[f"c{i}" for i in range(c)], n_clips=v, feature_dim=d,
                             attrs={"backbone": backbone, "view": {"name": "eval15", "clips": v}})
    fs.write_rows(np.arange(n), features=feats.astype(np.float16), coords=rng.random((n, v, 6)).astype(np.float32))
    torch.manual_seed(0)
    save_model(ScaleModel(ScaleConfig(input_dim=d)), folder / "run", extra={"store": {"backbone": backbone, "split": 1}})
    return fs.path, folder / "run"


def code_tree(ref: str | None, folder: Path) -> Path:
    """The repository root (ref None) or REF's scale_toolkit, unpacked from git into ``folder``."""
    root = Path(__file__).resolve().parents[1]
    if ref is None:
        return root
    import subprocess

    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(root), "archive", ref, "scale_toolkit"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def in_subprocess(tree: Path, job: dict) -> dict:
    """Run ``job`` (see `worker`) with the scale_toolkit of ``tree``; its JSON answer."""
    import subprocess

    out = subprocess.run([sys.executable, __file__, "--worker", json.dumps({**job, "tree": str(tree)})],
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"the worker for {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def matmul_rate(seconds: float = 1.0) -> float:
    """fp32 GFLOP/s of a [4096 x 384] x [384 x 4096] matmul at the current thread count (best of ~1 s)."""
    import torch

    a, b = torch.randn(4096, 384), torch.randn(384, 4096)
    best, started = 0.0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        t0 = time.perf_counter()
        a @ b
        best = max(best, 2 * 4096 * 384 * 4096 / (time.perf_counter() - t0) / 1e9)
    return best


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (decode workers): about the wall time
    the same work takes on an idle core, whatever else the machine runs."""
    import resource

    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))


def worker(job: dict) -> dict:
    """In a subprocess: the probe rows (job "rows"), the test stores (job "test_stores") or the demo (job
    "demo") with the tree's code."""
    sys.path.insert(0, job["tree"])
    import scale_toolkit

    assert Path(scale_toolkit.__file__).resolve().is_relative_to(Path(job["tree"]).resolve()), scale_toolkit.__file__
    import torch

    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    answer: dict = {"torch_threads_at_start": torch.get_num_threads(), "load_1m_at_start": round(os.getloadavg()[0], 2)}
    if "demo" in job:
        from scale_toolkit.demo.run import DemoConfig, run_demo

        config = DemoConfig(out=Path(job["out"]), seed=int(job["demo"]))
        if job.get("epochs"):
            config.epochs = int(job["epochs"])
        cpu: dict[str, float] = {}
        report = run_demo(config, lambda stage, message: cpu.setdefault(stage, cpu_seconds()))
        stages = list(cpu)
        cpu_end = cpu_seconds()
        answer.update(epochs=config.epochs, seconds={k: round(v, 1) for k, v in report.seconds.items()},
                      cpu_seconds={s: round((cpu[stages[i + 1]] if i + 1 < len(stages) else cpu_end) - cpu[s], 1)
                                   for i, s in enumerate(stages)},
                      threads=getattr(report, "threads", None),
                      retrieval_r1={k: round(v["1"], 1) for k, v in report.retrieval.items() if k in ("recall", "scale_recall")},
                      order_top1={k: round(v, 1) for k, v in report.order_top1.items()},
                      top1={r: round(v["top1"], 1) for r, v in report.probes["results"].items()},
                      bytes_written=sum(f.stat().st_size for f in Path(job["out"]).rglob("*") if f.is_file()))
        return answer
    from scale_toolkit.probes import ProbeOptions, run_probes

    if "test_stores" in job:
        return {**answer, "stores": {name: _selections(run_probes(case["store"], rows=SEVEN_ROWS, model=case["model"],
                                                                  options=ProbeOptions(split="1", device="cpu",
                                                                                       **case["options"])))
                                     for name, case in job["test_stores"].items()}}
    rates = [matmul_rate()]
    options = ProbeOptions(split="1", device="cpu", epochs=job.get("epochs"))
    cpu_marks = [cpu_seconds()]  # after each row (the runner's "probes" progress): CPU seconds per row

    def mark(task: str, done: int, total: int) -> None:
        if task == "probes" and done:
            cpu_marks.append(cpu_seconds())

    started = time.perf_counter()
    doc = run_probes(job["store"], rows=job["rows"], model=job["model"], options=options, progress=mark)
    wall = time.perf_counter() - started
    rates.append(matmul_rate())
    cpu = dict(zip(doc["results"], np.diff(cpu_marks))) if len(cpu_marks) == len(doc["results"]) + 1 else {}
    answer.update(wall_s=round(wall, 1), cpu_s=round(cpu_marks[-1] - cpu_marks[0], 1),
                  matmul_gflops=[round(r, 1) for r in rates], rows={
        row: {"seconds": res["seconds"], "cpu_seconds": round(float(cpu.get(row, float("nan"))), 1),
              "top1": round(res["top1"], 2),
              "selected": {k: res["selected"][k] for k in ("lr", "weight_decay", "batchnorm")} if "selected" in res else None,
              "n_fit": res.get("n_fit"), "n_val": res.get("n_val"), "n_train": res["n_train"], "n_test": res["n_test"],
              "grid_points": len(res.get("grid", [])), "epochs": res["selected"]["epochs"] if "selected" in res else 0,
              "hidden": res["selected"]["hidden"] if "selected" in res else 0,
              # early stopping: the epochs each grid point and the refit ran, and whether every epoch was checked
              "grid_epochs_run": [g.get("epochs_run", g["epochs"]) for g in res.get("grid", [])],
              "refit_epochs": res["selected"].get("epochs_run", res["selected"]["epochs"]) if "selected" in res else 0,
              "patience": doc["config"].get("grids", {}).get(row, {}).get("patience", 0)}
        for row, res in doc["results"].items()})
    return answer


def _selections(doc) -> dict:
    """Per row of a result: top-1, and for trained rows the selected point and the epochs it ran."""
    out = {}
    for row, res in doc["results"].items():
        entry = {"top1": round(res["top1"], 2)}
        if "selected" in res:
            sel = res["selected"]
            entry.update(lr=sel["lr"], weight_decay=sel["weight_decay"], batchnorm=sel["batchnorm"],
                         epochs=sel["epochs"], epochs_run=sel.get("epochs_run", sel["epochs"]),
                         val_top1=round(res["val_top1"], 2))
        out[row] = entry
    return out


# The stores of tests/probes whose right answer is known (tests/probes/conftest.py build_store), each with
# the seven rows on the default grids, and the temporal store also with its test's own set-classifier grid.
_TEMPORAL_GRID = {"lr": [3e-3, 1e-2], "weight_decay": [0.0], "batch_size": [16], "epochs": 100, "warmup_epochs": 1.0}
TEST_STORES = {
    "separable 5x16 d24": ({"kind": "separable", "n_classes": 5, "per_class": 16, "dim": 24}, {}),
    "random 4x25 d24": ({"kind": "random", "n_classes": 4, "per_class": 25, "dim": 24}, {}),
    "temporal 2x60 d16": ({"kind": "temporal", "n_classes": 2, "per_class": 60, "dim": 16}, {}),
    "temporal 2x60 d16, the test's grid": (
        {"kind": "temporal", "n_classes": 2, "per_class": 60, "dim": 16},
        {"grid": {"transformer": _TEMPORAL_GRID, "scale_ft": _TEMPORAL_GRID, "linear": {"epochs": 30}, "mlp": {"epochs": 30}},
         "transformer_model": {"hidden": 32, "heads": 2, "layers": 1, "pos_hidden": 32}}),
    "MAE-family BatchNorm separable 3x10 d8": (
        {"kind": "separable", "n_classes": 3, "per_class": 10, "dim": 8,
         "backbone": {"name": "videomae-b", "family": "video_vit"}}, {}),
}


def bench_test_stores(args, folder: Path) -> dict:
    """The seven rows on each test store (built once, here), by the baseline's code and this tree's, in turn."""
    from tests.probes.conftest import build_store, save_tiny_model

    cases = {}
    for number, (name, (store, options)) in enumerate(TEST_STORES.items()):
        path = folder / f"store{number}.zarr"
        build_store(path, **store)
        backbone = store.get("backbone", {}).get("name", "tiny")
        model = save_tiny_model(folder / f"run{number}", input_dim=store["dim"], backbone_name=backbone)
        cases[name] = {"store": str(path), "model": str(model), "options": options}
    runs = {}
    for name, ref in ((f"before ({args.baseline})", args.baseline), ("after (this tree)", None)):
        if name.startswith("before") and not args.baseline:
            continue
        runs[name] = in_subprocess(code_tree(ref, folder / "baseline"), {"test_stores": cases, "threads": args.threads})["stores"]
    result: dict = {"runs": runs}
    if len(runs) == 2:
        before, after = runs.values()
        result["changed"] = {store: {row: {"before": before[store][row], "after": after[store][row]}
                                     for row in after[store]
                                     if {k: v for k, v in before[store][row].items() if k != "epochs_run"}
                                     != {k: v for k, v in after[store][row].items() if k != "epochs_run"}}
                             for store in after}
    return result


def set_classifier_flops(kind: str, model_dir: Path, n_classes: int) -> tuple[float, float]:
    """(training, prediction) FLOPs per video of a set classifier row, counted by torch on one batch of 64."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from scale_toolkit.model import load_model
    from scale_toolkit.probes.transformer import finetune_classifier, transformer_classifier

    model, _ = load_model(model_dir)
    clf = transformer_classifier(model.config, n_classes) if kind == "transformer" else finetune_classifier(model, n_classes)
    v, d = ROWS_STORE["clips"], ROWS_STORE["dim"]
    x, coords, y = torch.randn(64, v, d), torch.rand(64, v, 6), torch.randint(0, n_classes, (64 * v,))
    with FlopCounterMode(display=False) as train_count:
        F.cross_entropy(clf(x, coords).reshape(-1, n_classes), y).backward()
    with torch.no_grad(), FlopCounterMode(display=False) as predict_count:
        clf(x, coords)
    return train_count.get_total_flops() / 64, predict_count.get_total_flops() / 64


def row_flops(row: str, r: dict, model_hidden: int, set_flops: dict) -> float:
    """Training + prediction FLOPs of one row from its result (fwd 2 per multiply-add; the backward of a
    layer computes its weight gradient, and its input gradient when a trained layer sits below).

    Each grid point counts the epochs it ran and the refit the epochs it ran (early stopping); with a
    patience, every grid point's validation videos are also predicted after each epoch it was checked
    (every epoch it ran but the schedule's last)."""
    v, d, c = ROWS_STORE["clips"], ROWS_STORE["dim"], ROWS_STORE["classes"]
    if row in ("knn", "scale_knn"):
        return 2.0 * r["n_test"] * r["n_train"] * (d if row == "knn" else model_hidden)
    epochs = r["epochs"]
    runs = r.get("grid_epochs_run") or [epochs] * r["grid_points"]
    refit = r.get("refit_epochs", epochs)
    checks = sum(min(e, epochs - 1) for e in runs) if r.get("patience") else 0
    video_epochs = sum(runs) * r["n_fit"] + refit * r["n_train"]
    val_predictions = (len(runs) + checks) * r["n_val"] + r["n_test"]
    if row in ("transformer", "scale_ft"):
        train, predict = set_flops[row]
        return video_epochs * train + val_predictions * predict
    dim = d + model_hidden if row == "scale_linear" else d
    if row == "mlp":
        h = r["hidden"] or 1024
        train, predict = 4 * dim * h + 6 * h * c, 2 * (dim * h + h * c)
    else:
        train, predict = 4 * dim * c, 2 * dim * c
    return v * (video_epochs * train + val_predictions * predict)


def bench_rows(args, folder: Path) -> dict:
    from scale_toolkit.model import load_model

    store, model = make_rows_store(folder)
    hidden = load_model(model)[0].config.hidden
    set_flops = {row: set_classifier_flops(row, model, ROWS_STORE["classes"]) for row in ("transformer", "scale_ft")}
    job = {"store": str(store), "model": str(model), "rows": SEVEN_ROWS, "epochs": args.epochs, "threads": args.threads}
    runs = {}
    for name, ref in ((f"before ({args.baseline})", args.baseline), ("after (this tree)", None)):
        if name.startswith("before") and not args.baseline:
            continue
        runs[name] = in_subprocess(code_tree(ref, folder / "baseline"), job)
        rate = max(runs[name]["matmul_gflops"])
        for row, r in runs[name]["rows"].items():
            r["gflop"] = round(row_flops(row, r, hidden, set_flops) / 1e9, 1)
            r["fraction_of_matmul_rate"] = round(r["gflop"] / max(r["seconds"], 1e-9) / rate, 3)
    result = {"store": ROWS_STORE, "epochs": args.epochs or "grid default", "runs": runs}
    if len(runs) == 2:
        before, after = runs.values()
        result["after_over_before_seconds"] = {
            row: round(after["rows"][row]["seconds"] / max(before["rows"][row]["seconds"], 1e-9), 2) for row in SEVEN_ROWS}
        result["after_over_before_total"] = round(after["wall_s"] / before["wall_s"], 2)
    return result


def bench_demo(args, folder: Path) -> dict:
    runs = {}
    for seed in args.seeds:
        for name, ref in ((f"before ({args.baseline})", args.baseline), ("after (this tree)", None)):
            if name.startswith("before") and not args.baseline:
                continue
            out = folder / f"demo_{seed}_{'before' if ref else 'after'}"
            runs[f"{name}, seed {seed}"] = in_subprocess(code_tree(ref, folder / "baseline"),
                                                         {"demo": seed, "out": str(out), "threads": args.threads,
                                                          "epochs": args.demo_epochs})
            import shutil

            shutil.rmtree(out, ignore_errors=True)  # the next run measures on a clean disk
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10k gallery x 1k queries (smoke run)")
    ap.add_argument("--gallery", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--classes", type=int, default=101)
    ap.add_argument("--skip-run", action="store_true", help="skip the default probe run timing")
    ap.add_argument("--skip-knn", action="store_true", help="skip the k-NN FAISS vs scikit-learn timing")
    ap.add_argument("--rows", action="store_true", help="time the seven probe rows on the fixed 1,600-video store")
    ap.add_argument("--test-stores", action="store_true",
                    help="the seven rows' selections and top-1 on the stores of tests/probes (default grids)")
    ap.add_argument("--demo", action="store_true", help="time the stages of `scale demo` (one run per --seeds)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--demo-epochs", type=int, default=None, help="SSL epochs of every timed demo (default: each version's own)")
    ap.add_argument("--baseline", default=None, help="git revision whose code runs the same parts first (e.g. main)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs of every trained row (default: the grid's)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads of the subprocesses (0: their default)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if args.quick:
        args.gallery, args.queries = 10_000, 1_000
    import faiss
    import sklearn
    import torch

    result = {
        "command": " ".join(["benchmarks/probe.py", *sys.argv[1:]]),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch_threads": torch.get_num_threads(),
                    "faiss_omp_threads": faiss.omp_get_max_threads(), "faiss": faiss.__version__, "sklearn": sklearn.__version__,
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "load_avg_1m": round(os.getloadavg()[0], 2),
                    "cpu_capability": torch.backends.cpu.get_cpu_capability()},
    }
    if not args.skip_knn:
        result["knn"] = bench_knn(args.gallery, args.queries, args.dim, args.k, args.classes)
    if not args.skip_run:
        result["default_run"] = bench_default_run()
    with tempfile.TemporaryDirectory() as d:
        if args.rows:
            result["rows"] = bench_rows(args, Path(d) / "rows")
        if args.demo:
            result["demo"] = bench_demo(args, Path(d) / "demo")
        if args.test_stores:
            result["test_stores"] = bench_test_stores(args, Path(d) / "test_stores")
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()

"""Bad input matrix: every command, fed a user mistake, exits 2 with exactly one `error:` line on
stderr, no traceback, and writes nothing (no partial output file or folder, no change to its inputs)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from scale_toolkit.demo.synthetic import SyntheticSpec, make_synthetic_dataset

from .helpers import import_arrays, make_model_dir, make_store, message_lines, tree


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Inputs every case may point at (W); cases write (or rather must not write) under O."""
    w = tmp_path_factory.mktemp("world")
    make_store(w / "train16.zarr", view="train16")
    make_store(w / "eval15.zarr", view="eval15")
    make_store(w / "eval15_d24.zarr", view="eval15", dim=24, backbone="videomae-b")
    make_store(w / "eval15_other.zarr", view="eval15", backbone="videomae-b")
    make_store(w / "eval15_nosplit.zarr", view="eval15", splits=np.zeros((3, 24), np.int8))
    make_model_dir(w / "model")
    # a model file whose weights belong to another architecture than its config says
    import torch

    obj = torch.load(w / "model" / "model.pt", weights_only=True)
    obj["model_config"]["hidden"] = 64
    (w / "model_other_arch").mkdir()
    torch.save(obj, w / "model_other_arch" / "model.pt")
    (w / "garbage.pt").write_bytes(b"\x00not a checkpoint" * 50)
    (w / "plain_dir").mkdir()
    (w / "notes.txt").write_text("hello\n")
    # a real training run to resume with other settings, and one whose checkpoint is corrupted
    from scale_toolkit.model import ScaleConfig
    from scale_toolkit.train import TrainConfig, train

    small = ScaleConfig(hidden=32, heads=4, layers=1, pos_hidden=16, head_hidden=32, proj_dim=16)
    train(TrainConfig(store=str(w / "train16.zarr"), out=str(w / "run"), epochs=1, batch_size=8, device="cpu",
                      precision="fp32", threads=1, model=small))
    (w / "corrupt_run").mkdir()
    (w / "corrupt_run" / "config.json").write_text((w / "run" / "config.json").read_text())
    blob = (w / "run" / "checkpoint_last.pt").read_bytes()
    (w / "corrupt_run" / "checkpoint_last.pt").write_bytes(blob[: len(blob) // 2])  # truncated
    # import files
    a = import_arrays()
    np.savez(w / "ok.npz", **a)
    np.savez(w / "nan.npz", **{**a, "features": np.where(np.arange(8) == 3, np.nan, a["features"]).astype(np.float32)})
    np.savez(w / "labels_high.npz", **{**a, "labels": np.full(6, 5, np.int32)})
    np.savez(w / "labels_low.npz", **{**a, "labels": np.full(6, -3, np.int32)})
    np.savez(w / "empty.npz", **{**a, "features": np.zeros((0, 4, 8), np.float32)})
    (w / "ok.txt").write_text("x")
    # videos: a tiny csv dataset, an empty csv, and UCF101 split files naming videos that are not on disk
    csv = make_synthetic_dataset(w / "videos", SyntheticSpec(videos_per_class=1, frames=16, height=32, width=40))
    (w / "header_only.csv").write_text("path,label,split\n")
    ucf = w / "ucf_splits"
    ucf.mkdir()
    (ucf / "classInd.txt").write_text("1 ApplyEyeMakeup\n")
    for k in (1, 2, 3):
        (ucf / f"trainlist0{k}.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1\n")
        (ucf / f"testlist0{k}.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi\n")
    (w / "ucf_root" / "ApplyEyeMakeup").mkdir(parents=True)
    assert csv.exists()
    # an index to query
    from scale_toolkit.retrieval.query import build_gallery_index
    from scale_toolkit.store import FeatureStore

    build_gallery_index(FeatureStore.open(w / "eval15.zarr"), w / "gallery.index", split=1)
    return w


EX = ["extract", "--workers", "0", "--threads", "1"]
CSV = ["--dataset", "csv", "--csv", "{W}/videos/manifest.csv", "--root", "{W}/videos"]
TRAIN = ["train", "--device", "cpu", "--precision", "fp32", "--threads", "1", "--hidden", "32", "--heads", "4", "--head-hidden", "32", "--layers", "1"]

CASES = {
    # ---- extract
    "extract/missing-root": [*EX, "--backbone", "tiny", "--dataset", "folder", "--root", "{W}/nope", "--out", "{O}/s.zarr"],
    "extract/missing-csv": [*EX, "--backbone", "tiny", "--dataset", "csv", "--csv", "{W}/nope.csv", "--root", "{W}/videos", "--out", "{O}/s.zarr"],
    "extract/unknown-backbone": [*EX, "--backbone", "no-such-net", *CSV, "--out", "{O}/s.zarr"],
    "extract/unknown-dataset": [*EX, "--backbone", "tiny", "--dataset", "kinetics", "--root", "{W}/videos", "--out", "{O}/s.zarr"],
    "extract/empty-split-csv": [*EX, "--backbone", "tiny", "--dataset", "csv", "--csv", "{W}/header_only.csv", "--root", "{W}/videos", "--out", "{O}/s.zarr"],
    "extract/split-file-names-no-video": [*EX, "--backbone", "tiny", "--dataset", "ucf101", "--root", "{W}/ucf_root", "--splits", "{W}/ucf_splits", "--out", "{O}/s.zarr"],
    "extract/missing-checkpoint": [*EX, "--backbone", "videomae-b", "--checkpoint", "{W}/nope.pt", *CSV, "--out", "{O}/s.zarr"],
    "extract/checkpoint-of-other-architecture": [*EX, "--backbone", "videomae-b", "--checkpoint", "{W}/model/model.pt", *CSV, "--out", "{O}/s.zarr"],
    "extract/garbage-checkpoint": [*EX, "--backbone", "videomae-b", "--checkpoint", "{W}/garbage.pt", *CSV, "--out", "{O}/s.zarr"],
    "extract/batch-size-0": [*EX, "--backbone", "tiny", *CSV, "--out", "{O}/s.zarr", "--batch-size", "0"],
    "extract/limit-negative": [*EX, "--backbone", "tiny", *CSV, "--out", "{O}/s.zarr", "--limit", "-1"],
    "extract/limit-0": [*EX, "--backbone", "tiny", *CSV, "--out", "{O}/s.zarr", "--limit", "0"],
    "extract/timeout-0": [*EX, "--backbone", "tiny", *CSV, "--out", "{O}/s.zarr", "--timeout", "0"],
    "extract/threads-negative": ["extract", "--workers", "0", "--threads", "-2", "--backbone", "tiny", *CSV, "--out", "{O}/s.zarr"],
    "extract/workers-below-minus-1": ["extract", "--workers", "-5", "--threads", "1", "--backbone", "tiny", *CSV, "--out", "{O}/s.zarr"],
    "extract/out-dir-missing": [*EX, "--backbone", "tiny", *CSV, "--out", "{O}/no/such/dir/s.zarr"],
    "extract/out-is-other-view-store": [*EX, "--backbone", "tiny", *CSV, "--view", "eval15", "--out", "{W}/train16.zarr"],
    # ---- train
    "train/missing-store": [*TRAIN, "--store", "{W}/nope.zarr", "--out", "{O}/run"],
    "train/not-a-store": [*TRAIN, "--store", "{W}/plain_dir", "--out", "{O}/run"],
    "train/eval15-store": [*TRAIN, "--store", "{W}/eval15.zarr", "--out", "{O}/run"],
    "train/split-4": [*TRAIN, "--store", "{W}/train16.zarr", "--out", "{O}/run", "--split", "4"],
    "train/epochs-0": [*TRAIN, "--store", "{W}/train16.zarr", "--out", "{O}/run", "--epochs", "0"],
    "train/batch-size-0": [*TRAIN, "--store", "{W}/train16.zarr", "--out", "{O}/run", "--batch-size", "0"],
    "train/lr-0": [*TRAIN, "--store", "{W}/train16.zarr", "--out", "{O}/run", "--lr", "0"],
    "train/hidden-0": [*TRAIN[:-6], "--hidden", "0", "--store", "{W}/train16.zarr", "--out", "{O}/run"],
    "train/mask-ratio-1.5": [*TRAIN, "--store", "{W}/train16.zarr", "--out", "{O}/run", "--mask-ratio", "1.5"],
    "train/save-every-negative": [*TRAIN, "--store", "{W}/train16.zarr", "--out", "{O}/run", "--save-every", "-1"],
    "train/out-holds-a-run": [*TRAIN, "--store", "{W}/train16.zarr", "--out", "{W}/run"],
    "train/resume-other-architecture": [*TRAIN[:-6], "--hidden", "64", "--heads", "4", "--layers", "1", "--store", "{W}/train16.zarr", "--out", "{W}/run", "--resume"],
    "train/resume-corrupted-checkpoint": [*TRAIN, "--store", "{W}/train16.zarr", "--out", "{W}/corrupt_run", "--resume"],
    # ---- probe
    "probe/missing-store": ["probe", "--store", "{W}/nope.zarr", "--device", "cpu", "--json", "{O}/r.json"],
    "probe/train16-as-eval-store": ["probe", "--store", "{W}/train16.zarr", "--device", "cpu", "--json", "{O}/r.json"],
    "probe/empty-split": ["probe", "--store", "{W}/eval15_nosplit.zarr", "--device", "cpu", "--json", "{O}/r.json"],
    "probe/split-5": ["probe", "--store", "{W}/eval15.zarr", "--split", "5", "--device", "cpu", "--json", "{O}/r.json"],
    "probe/model-feature-dim-mismatch": ["probe", "--store", "{W}/eval15_d24.zarr", "--model", "{W}/model", "--device", "cpu", "--json", "{O}/r.json"],
    "probe/model-backbone-mismatch": ["probe", "--store", "{W}/eval15_other.zarr", "--model", "{W}/model", "--device", "cpu", "--json", "{O}/r.json"],
    "probe/train-store-other-backbone": ["probe", "--store", "{W}/eval15.zarr", "--train-store", "{W}/eval15_d24.zarr", "--device", "cpu", "--json", "{O}/r.json"],
    "probe/missing-model": ["probe", "--store", "{W}/eval15.zarr", "--model", "{W}/nope", "--device", "cpu", "--json", "{O}/r.json"],
    "probe/model-of-other-architecture": ["probe", "--store", "{W}/eval15.zarr", "--model", "{W}/model_other_arch", "--device", "cpu", "--json", "{O}/r.json"],
    "probe/garbage-model": ["probe", "--store", "{W}/eval15.zarr", "--model", "{W}/garbage.pt", "--device", "cpu", "--json", "{O}/r.json"],
    "probe/knn-0": ["probe", "--store", "{W}/eval15.zarr", "--knn", "0", "--device", "cpu", "--json", "{O}/r.json"],
    "probe/epochs-0": ["probe", "--store", "{W}/eval15.zarr", "--linear", "--epochs", "0", "--device", "cpu", "--json", "{O}/r.json"],
    "probe/low-shot-0": ["probe", "--store", "{W}/eval15.zarr", "--low-shot", "0", "--device", "cpu", "--json", "{O}/r.json"],
    # ---- retrieve
    "retrieve/missing-store": ["retrieve", "--store", "{W}/nope.zarr", "--json", "{O}/r.json"],
    "retrieve/empty-split": ["retrieve", "--store", "{W}/eval15_nosplit.zarr", "--json", "{O}/r.json"],
    "retrieve/split-4": ["retrieve", "--store", "{W}/eval15.zarr", "--split", "4", "--json", "{O}/r.json"],
    "retrieve/model-feature-dim-mismatch": ["retrieve", "--store", "{W}/eval15_d24.zarr", "--model", "{W}/model", "--json", "{O}/r.json"],
    "retrieve/model-backbone-mismatch": ["retrieve", "--store", "{W}/eval15_other.zarr", "--model", "{W}/model", "--json", "{O}/r.json"],
    "retrieve/model-of-other-architecture": ["retrieve", "--store", "{W}/eval15.zarr", "--model", "{W}/model_other_arch", "--json", "{O}/r.json"],
    "retrieve/k-0": ["retrieve", "--store", "{W}/eval15.zarr", "--k", "0", "--json", "{O}/r.json"],
    "retrieve/top-0": ["retrieve", "--index", "{W}/gallery.index", "--query", "c0/v003.avi", "--top", "0", "--json", "{O}/r.json"],
    "retrieve/missing-index": ["retrieve", "--index", "{W}/nope.index", "--query", "c0/v003.avi", "--json", "{O}/r.json"],
    "retrieve/unknown-query": ["retrieve", "--index", "{W}/gallery.index", "--query", "no/such/video.avi", "--json", "{O}/r.json"],
    "retrieve/nlist-negative": ["retrieve", "--store", "{W}/eval15.zarr", "--index-type", "ivf", "--nlist", "-3", "--build-index", "{O}/g.index"],
    # ---- import / export / info
    "import/missing-file": ["import", "{W}/nope.npz", "--out", "{O}/s.zarr"],
    "import/nan-features": ["import", "{W}/nan.npz", "--out", "{O}/s.zarr"],
    "import/labels-above-range": ["import", "{W}/labels_high.npz", "--out", "{O}/s.zarr"],
    "import/labels-below-range": ["import", "{W}/labels_low.npz", "--out", "{O}/s.zarr"],
    "import/empty-features": ["import", "{W}/empty.npz", "--out", "{O}/s.zarr"],
    "import/unknown-format": ["import", "{W}/ok.txt", "--out", "{O}/s.zarr"],
    "import/out-exists": ["import", "{W}/ok.npz", "--out", "{W}/eval15.zarr"],
    "import/out-dir-missing": ["import", "{W}/ok.npz", "--out", "{O}/no/dir/s.zarr"],
    "export/missing-store": ["export", "{W}/nope.zarr", "--out", "{O}/f.npz"],
    "export/not-a-store": ["export", "{W}/plain_dir", "--out", "{O}/f.npz"],
    "export/unknown-format": ["export", "{W}/eval15.zarr", "--out", "{O}/f.csv"],
    "export/out-dir-missing": ["export", "{W}/eval15.zarr", "--out", "{O}/no/dir/f.npz"],
    "info/missing-path": ["info", "{W}/nope.zarr"],
    "info/plain-dir": ["info", "{W}/plain_dir"],
    "info/plain-file": ["info", "{W}/notes.txt"],
    # ---- demo
    "demo/epochs-0": ["demo", "--out", "{O}/demo", "--epochs", "0"],
    "demo/videos-per-class-0": ["demo", "--out", "{O}/demo", "--videos-per-class", "0"],
    "demo/probe-epochs-negative": ["demo", "--out", "{O}/demo", "--probe-epochs", "-1"],
    "demo/out-is-a-file": ["demo", "--out", "{W}/notes.txt", "--epochs", "1"],
    # ---- the app itself
    "cli/unknown-flag": ["train", "--no-such-flag"],
    "cli/missing-config-file": ["train", "--config", "{W}/nope.toml"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_user_mistake_is_one_line_exit_2_and_writes_nothing(name, world, tmp_path, run_cli):
    out = tmp_path / "out"
    out.mkdir()
    args = [a.replace("{W}", str(world)).replace("{O}", str(out)) for a in CASES[name]]
    before = tree(world)
    code, stdout, stderr = run_cli(*args)
    lines = message_lines(stderr)
    assert code == 2, f"{name}: exit {code}\nstdout: {stdout[-2000:]}\nstderr: {stderr[-2000:]}"
    assert len(lines) == 1 and lines[0].startswith("error:"), f"{name}: stderr was {stderr[-3000:]!r}"
    if os.environ.get("SHOW_ERRORS"):  # SHOW_ERRORS=1 pytest -s: print every message (docs/reliability.md)
        print(f"\n{name}: {lines[0]}")
    assert "Traceback" not in stderr + stdout
    assert tree(out) == set(), f"{name}: left {sorted(tree(out))}"
    assert tree(world) == before, f"{name}: changed its inputs: {sorted(tree(world) ^ before)}"

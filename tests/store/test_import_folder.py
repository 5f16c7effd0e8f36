"""`scale import` of a folder / CSV of per-video feature files into a ragged store."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from scale_toolkit.errors import ScaleError
from scale_toolkit.extract.feature_files import RowTiming, import_feature_files
from scale_toolkit.store import FeatureStore
from scale_toolkit.store.ragged import RaggedStore

D = 8
LENGTHS = {"walk/a.npy": 3, "walk/b.npz": 2000, "walk/c.npy": 57, "run/d.npy": 300, "run/e.npz": 11, "run/f.npy": 4}


def make_folder(root: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """A video_features-style folder: good files of 3..2000 rows, mixed .npy/.npz, plus broken ones."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for rel, t in LENGTHS.items():
        x = rng.standard_normal((t, D)).astype(np.float32)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".npz"):
            np.savez(path, feats=x)
        else:
            np.save(path, x)
        arrays[rel] = x
    nan = rng.standard_normal((10, D))
    nan[4, 2] = np.nan
    np.save(root / "run/nan.npy", nan)
    np.save(root / "run/dim.npy", rng.standard_normal((10, D - 3)))
    (root / "run/bad.npy").write_bytes(b"garbage, not an array")
    np.save(root / "run/ints.npy", np.arange(20).reshape(10, 2).repeat(4, axis=1))
    np.save(root / "run/flat.npy", np.zeros(16, np.float32))
    return arrays


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "feats"
    return root, make_folder(root)


def test_folder_import_keeps_every_row_and_records_bad_files(folder, tmp_path):
    root, arrays = folder
    summary = import_feature_files(root, tmp_path / "s.zarr")
    fs = FeatureStore.open(tmp_path / "s.zarr")
    assert isinstance(fs, RaggedStore)
    assert (summary.imported, summary.failed) == (6, 5)
    assert fs.class_names == ["run", "walk"]
    reasons = dict(zip(fs.video_ids, fs.reasons))
    assert "non-finite" in reasons["run/nan.npy"] and "row 4" in reasons["run/nan.npy"]
    assert "feature dim 5" in reasons["run/dim.npy"]
    assert "not an .npy" in reasons["run/bad.npy"]
    assert "floating point" in reasons["run/ints.npy"]
    assert "2-D" in reasons["run/flat.npy"]
    rows = [fs.row_of(rel) for rel in LENGTHS]
    assert fs.clip_counts[rows].tolist() == list(LENGTHS.values())
    assert fs.labels[rows].tolist() == [1, 1, 1, 0, 0, 0]
    out = fs.read(rows, names=("features", "coords", "valid"))
    assert out["features"].shape == (6, 2000, D)  # padded to the longest of this read
    for i, rel in enumerate(LENGTHS):
        t = LENGTHS[rel]
        assert out["valid"][i].sum() == t
        np.testing.assert_array_equal(out["features"][i, :t], arrays[rel].astype(np.float16))
        assert not out["features"][i, t:].any()
    # Eq. 5: row i spans [i, i+1) of T rows, full frame, no flip
    a = out["coords"][0, :3]
    np.testing.assert_allclose(a[:, 2], [0, 1 / 3, 2 / 3], rtol=1e-6)
    np.testing.assert_allclose(a[:, 5], [1 / 3, 2 / 3, 1], rtol=1e-6)
    assert (a[:, [0, 1]] == 0).all() and (a[:, [3, 4]] == 1).all()
    short = fs.read([fs.row_of("walk/a.npy"), fs.row_of("run/f.npy")], names=("features",))
    assert short["features"].shape == (2, 4, D)  # never padded to the store's longest
    assert fs.verify() == []


def test_timing_flags_place_rows_in_time():
    coords, boxes = RowTiming(length=16, stride=8, unit="frames").clips(3)
    # the video lasts 2*8 + 16 = 32 frames
    np.testing.assert_allclose(coords[:, 2], [0, 0.25, 0.5])
    np.testing.assert_allclose(coords[:, 5], [0.5, 0.75, 1.0])
    assert boxes[:, [2, 5]].tolist() == [[0, 16], [8, 24], [16, 32]]
    coords, boxes = RowTiming(length=1.0, stride=0.5, unit="seconds").clips(2)
    np.testing.assert_allclose(coords[:, [2, 5]], [[0, 2 / 3], [1 / 3, 1]], rtol=1e-6)
    assert not boxes.any()
    with pytest.raises(ScaleError):
        RowTiming(length=0)
    with pytest.raises(ScaleError):
        RowTiming(unit="minutes")


def test_per_row_times_from_each_file_place_its_rows(tmp_path):
    """--times-key: each file's own times ([T] starts or [T, 2] spans, here milliseconds as
    video_features writes them); files whose times cannot place their rows fail with the reason."""
    root = tmp_path / "feats"
    (root / "a").mkdir(parents=True)
    rng = np.random.default_rng(0)
    x = lambda t: rng.standard_normal((t, D)).astype(np.float32)  # noqa: E731
    np.savez(root / "a/starts.npz", feats=x(4), timestamps_ms=np.array([0, 500, 1000, 2000]))  # uneven: a gap
    np.savez(root / "a/spans.npz", feats=x(3), timestamps_ms=np.array([[0, 800], [400, 1200], [800, 1600.0]]))
    np.savez(root / "a/backwards.npz", feats=x(3), timestamps_ms=np.array([0, 900, 400]))
    np.savez(root / "a/short.npz", feats=x(3), timestamps_ms=np.array([0, 900]))
    np.savez(root / "a/wide.npz", feats=x(3), timestamps_ms=np.zeros((3, 5)))
    np.savez(root / "a/nan.npz", feats=x(2), timestamps_ms=np.array([0, np.nan]))
    np.savez(root / "a/none.npz", feats=x(3))
    np.save(root / "a/plain.npy", x(3))
    summary = import_feature_files(root, tmp_path / "s.zarr", timing=RowTiming(unit="ms", times_key="timestamps_ms"))
    fs = FeatureStore.open(tmp_path / "s.zarr")
    assert (summary.imported, summary.failed) == (2, 6)
    reasons = dict(zip(fs.video_ids, fs.reasons))
    assert "must not decrease" in reasons["a/backwards.npz"]
    assert "shape [3] or [3, 2]" in reasons["a/short.npz"] and "shape [3] or [3, 2]" in reasons["a/wide.npz"]
    assert "finite" in reasons["a/nan.npz"]
    assert "no per-row times array 'timestamps_ms'" in reasons["a/none.npz"]
    assert ".npy file holds one array" in reasons["a/plain.npy"]
    out = fs.read([fs.row_of("a/starts.npz"), fs.row_of("a/spans.npz")], names=("coords", "boxes"))
    # starts 0, 500, 1000, 2000 ms: rows end where the next starts, the last lasts 1000 ms like the one before
    np.testing.assert_allclose(out["coords"][0, :, [2, 5]].T, [[0, .5 / 3], [.5 / 3, 1 / 3], [1 / 3, 2 / 3], [2 / 3, 1]],
                               rtol=1e-6)
    np.testing.assert_allclose(out["coords"][1, :3, [2, 5]].T, [[0, .5], [.25, .75], [.5, 1]], rtol=1e-6)
    assert not out["boxes"].any()  # milliseconds say nothing about frame numbers
    # the same import continued asks for the same timing: another one is another import
    with pytest.raises(ScaleError, match="holds another import"):
        import_feature_files(root, tmp_path / "s.zarr", timing=RowTiming(unit="ms"))


def test_csv_listing_gives_labels_and_splits_and_h5(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(1)
    for i in range(4):
        with h5py.File(tmp_path / f"v{i}.h5", "w") as f:
            f["clip_feats"] = rng.standard_normal((5 + i, D)).astype(np.float32)
            f["other"] = np.zeros(3)
    (tmp_path / "list.csv").write_text("path,label,split\nv0.h5,jump,train\nv1.h5,sit,train\nv2.h5,jump,test\n"
                                       "v3.h5,sit,test\nv9.h5,sit,test\n")
    summary = import_feature_files(tmp_path / "list.csv", tmp_path / "s.zarr", dataset="clip_feats")
    fs = FeatureStore.open(tmp_path / "s.zarr")
    assert summary.imported == 4 and summary.missing == ["v9.h5"]
    assert fs.split_indices(1, "train").tolist() == [0, 1] and fs.split_indices(1, "test").tolist() == [2, 3]
    assert fs.clip_counts.tolist() == [5, 6, 7, 8]
    # without --dataset, files of two datasets cannot be imported: the error says what to pass
    with pytest.raises(ScaleError, match="--dataset"):
        import_feature_files(tmp_path / "list.csv", tmp_path / "t.zarr")


def test_killed_import_continues_to_the_same_store(folder, tmp_path, monkeypatch):
    root, _ = folder
    clean = tmp_path / "clean.zarr"
    import_feature_files(root, clean, rows_per_chunk=2)
    out = tmp_path / "s.zarr"
    real = RaggedStore.write_video_block
    calls = []

    def dies_on_third_block(self, block, videos):
        calls.append(block)
        if len(calls) == 3:
            next(iter(videos))  # a file of it read, then killed before its status is written
            raise KeyboardInterrupt
        real(self, block, videos)

    monkeypatch.setattr(RaggedStore, "write_video_block", dies_on_third_block)
    with pytest.raises(KeyboardInterrupt):
        import_feature_files(root, out, rows_per_chunk=2)
    monkeypatch.setattr(RaggedStore, "write_video_block", real)
    half = FeatureStore.open(out)
    assert (half.status == 0).sum() > 0 and (half.status != 0).sum() == 4
    summary = import_feature_files(root, out, rows_per_chunk=2)
    assert summary.resumed
    a, b = FeatureStore.open(out), FeatureStore.open(clean)
    assert a.status.tolist() == b.status.tolist() and a.reasons == b.reasons
    rows = np.arange(a.n_videos)
    for name in ("features", "coords", "boxes", "valid"):
        np.testing.assert_array_equal(a.read(rows, (name,))[name], b.read(rows, (name,))[name])
    # another import's options at the same --out are refused, not mixed in
    with pytest.raises(ScaleError, match="another import"):
        import_feature_files(root, out, rows_per_chunk=2, timing=RowTiming(2, 1, "frames"))


def test_damaged_clip_chunk_is_found_by_verify_and_refused_by_reads(folder, tmp_path):
    root, _ = folder
    out = tmp_path / "s.zarr"
    import_feature_files(root, out, rows_per_chunk=2)
    fs = FeatureStore.open(out)
    row = fs.row_of("walk/b.npz")  # 2000 clips: spans several feature chunks
    chunk = next(p for p in sorted((out / "features").rglob("*")) if p.is_file() and p.name != "zarr.json")
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    fs = FeatureStore.open(out)
    damaged = fs.verify()
    assert damaged and all("features" in d["arrays"] for d in damaged)
    first = damaged[0]["rows"]
    with pytest.raises(ScaleError, match="damaged"):
        fs.read([first[0]], names=("features",))
    assert row is not None


def test_a_compressed_member_declaring_a_huge_shape_is_refused_before_any_allocation(tmp_path, monkeypatch):
    import scale_toolkit.extract.feature_files as imp

    monkeypatch.setattr(imp, "MAX_VALUES", 1000)  # the real limit is 2**30 values; same rule, small files
    (tmp_path / "c").mkdir()
    np.savez_compressed(tmp_path / "c" / "big.npz", x=np.zeros((200, 8), np.float32))  # 1600 values
    np.save(tmp_path / "c" / "ok.npy", np.ones((100, 8), np.float32))
    import_feature_files(tmp_path, tmp_path / "s.zarr")
    fs = FeatureStore.open(tmp_path / "s.zarr")
    reasons = dict(zip(fs.video_ids, fs.reasons))
    assert "at most 1000" in reasons["c/big.npz"] and reasons["c/ok.npy"] == ""


def test_nothing_importable_is_one_clear_error(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a.npy").write_bytes(b"nope")
    with pytest.raises(ScaleError, match="none of the 1 feature files"):
        import_feature_files(tmp_path / "x", tmp_path / "s.zarr")
    assert not (tmp_path / "s.zarr").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScaleError, match="no feature files"):
        import_feature_files(tmp_path / "empty", tmp_path / "t.zarr")


def test_cli_import_folder_then_info(folder, tmp_path, run_cli):
    root, _ = folder
    code, out, err = run_cli("import", root, "--out", tmp_path / "s.zarr")
    assert code == 0, err
    out = " ".join(out.split())
    assert "imported 6 of 11 videos" in out and "median 34, max 2000" in out
    code, out, err = run_cli("info", tmp_path / "s.zarr", "--json", "--verify")
    assert code == 0, err
    assert '"max": 2000' in out
    code, out, err = run_cli("import", root, "--out", tmp_path / "s.zarr", "--time-unit", "minutes")
    assert code == 2 and "--time-unit" in (out + err)


def test_import_memory_is_bounded_by_one_file(tmp_path):
    """The peak is one file (plus a few store chunks), whatever the number of files."""
    import tracemalloc

    rng = np.random.default_rng(0)
    one_file = 1500 * 128 * 4
    peaks = []
    for n in (8, 32):
        folder = tmp_path / f"f{n}"
        folder.mkdir()
        for i in range(n):
            np.save(folder / f"v{i:02d}.npy", rng.standard_normal((1500, 128)).astype(np.float32))
        tracemalloc.start()
        try:
            import_feature_files(folder, tmp_path / f"s{n}.zarr")
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert FeatureStore.open(tmp_path / f"s{n}.zarr").clip_counts.sum() == n * 1500
    assert peaks[1] < 1.25 * peaks[0], peaks  # 4x the files, about the same peak
    assert peaks[1] < 32 * one_file / 3, peaks  # far below the folder's 24.6 MB


@pytest.mark.slow
def test_cli_import_train_probe_retrieve(tmp_path, run_cli):
    """The one-command path of README "Already have features?", on files of 3 to 2,000 rows."""
    rng = np.random.default_rng(3)
    lines = ["path,label,split"]
    for i, t in enumerate([3, 2000, 40, 7, 120, 15, 64, 9, 300, 5, 33, 80]):
        cls = ("walk", "run")[i % 2]
        x = rng.standard_normal((t, D)).astype(np.float32) + (2.0 if cls == "run" else -2.0)
        name = f"{cls}_{i}.npz" if i % 3 == 0 else f"{cls}_{i}.npy"
        (np.savez if name.endswith(".npz") else np.save)(tmp_path / name, x)
        lines.append(f"{name},{cls},{'test' if i >= 8 else 'train'}")
    bad = rng.standard_normal((5, D))
    bad[2, 0] = np.inf
    np.save(tmp_path / "inf.npy", bad)
    np.save(tmp_path / "dim.npy", rng.standard_normal((5, D + 1)))
    (tmp_path / "junk.npz").write_bytes(b"PK not really")
    lines += ["inf.npy,walk,train", "dim.npy,run,train", "junk.npz,run,test"]
    (tmp_path / "list.csv").write_text("\n".join(lines) + "\n")
    store, run = tmp_path / "s.zarr", tmp_path / "run"
    code, out, err = run_cli("import", tmp_path / "list.csv", "--out", store)
    assert code == 0, err
    assert "imported 12 of 15 videos" in " ".join(out.split())
    code, out, err = run_cli("train", "--store", store, "--split", "1", "--out", run, "--epochs", "2", "--batch-size", "4",
                             "--hidden", "16", "--layers", "1", "--heads", "2", "--ssl-val", "0")
    assert code == 0, err
    code, out, err = run_cli("probe", "--store", store, "--split", "1", "--model", run, "--knn", "3", "--linear",
                             "--json", tmp_path / "probe.json")
    assert code == 0, err
    results = json.loads((tmp_path / "probe.json").read_text())["results"]
    assert results["knn"]["top1"] == 100.0  # the classes differ by their mean: clip means over all rows find them
    assert {"knn", "scale_knn", "linear", "scale_linear"} <= set(results)
    code, out, err = run_cli("retrieve", "--store", store, "--split", "1", "--model", run)
    assert code == 0, err
    assert "R@1" in out
    code, out, err = run_cli("probe", "--store", store, "--split", "1", "--transformer", "--epochs", "1",
                             "--json", tmp_path / "sets.json")  # sets of K of each video's clips (probes/set_inputs.py)
    assert code == 0, err
    assert 0 <= json.loads((tmp_path / "sets.json").read_text())["results"]["transformer"]["top1"] <= 100
    code, out, err = run_cli("probe", "--store", store, "--split", "1", "--knn", "3", "--knn-median")
    assert code == 2 and "any length" in err  # the median row reads every video's V clips


def test_whole_store_reads_and_export_of_a_ragged_store(folder, tmp_path, run_cli):
    root, _ = folder
    import_feature_files(root, tmp_path / "s.zarr")
    fs = FeatureStore.open(tmp_path / "s.zarr")
    whole = fs.read(None, names=("features", "valid", "splits", "labels"))
    assert whole["splits"].shape == (3, fs.n_videos) and whole["labels"].shape == (fs.n_videos,)
    assert whole["features"].shape == (fs.n_videos, 2000, D) and (whole["valid"].sum(1) == fs.clip_counts).all()
    code, _, err = run_cli("export", tmp_path / "s.zarr", "--out", tmp_path / "x.npz")
    assert code == 2 and "any length" in err and not (tmp_path / "x.npz").exists()


def test_fixed_stores_keep_schema_1_and_ragged_ones_say_2(folder, tmp_path):
    """A scale from before ragged stores (schema 1 only) refuses them in one line instead of misreading them."""
    root, _ = folder
    import_feature_files(root, tmp_path / "r.zarr")
    fixed = FeatureStore.create(tmp_path / "f.zarr", video_ids=["a"], labels=[0], splits=np.ones((3, 1), np.int8),
                                class_names=["c"], n_clips=2, feature_dim=D)
    assert fixed.schema_version == 1 and FeatureStore.open(tmp_path / "r.zarr").schema_version == 2


def test_a_ragged_stores_clip_bytes_are_those_of_one_clip(folder, tmp_path):
    """What budgets size themselves by: one clip's float16 features and float32 coords, not a row of the flat array's."""
    import_feature_files(folder[0], tmp_path / "s.zarr")
    fs = FeatureStore.open(tmp_path / "s.zarr")
    assert isinstance(fs, RaggedStore)
    assert fs.clip_bytes(("features", "coords")) == 2 * fs.feature_dim + 4 * 6

import json

import h5py
import numpy as np
import pytest

from scale_toolkit.store import FeatureStore
from tests.store.helpers import make_store, random_arrays


def _npz(path, a, **overrides):
    arrays = {k: (np.array(v) if isinstance(v, list) else v) for k, v in a.items()}
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return path


def test_npz_zarr_h5_round_trip_bit_exact(tmp_path, run_cli):
    a = random_arrays(n=11, v=3, d=5)
    src = make_store(tmp_path / "src.zarr", a)
    src.mark_failed([4], ["corrupted"])
    assert run_cli("export", tmp_path / "src.zarr", "--out", tmp_path / "a.npz")[0] == 0
    assert run_cli("import", tmp_path / "a.npz", "--out", tmp_path / "b.zarr")[0] == 0
    assert run_cli("export", tmp_path / "b.zarr", "--out", tmp_path / "b.h5")[0] == 0
    assert run_cli("import", tmp_path / "b.h5", "--out", tmp_path / "c.zarr")[0] == 0
    c = FeatureStore.open(tmp_path / "c.zarr")
    got = c.read(None, names=("features", "coords", "boxes", "flip"))
    done = np.array([i for i in range(11) if i != 4])
    for name in ("features", "coords", "boxes", "flip"):
        np.testing.assert_array_equal(got[name][done], a[name][done])
    assert c.video_ids == a["video_ids"] and c.class_names == a["class_names"]
    np.testing.assert_array_equal(c.labels, a["labels"])
    np.testing.assert_array_equal(c.splits, a["splits"])
    assert list(c.failed()) == [4]
    with h5py.File(tmp_path / "b.h5") as f:
        assert set(f.keys()) >= {"features", "coords", "labels", "video_ids", "class_names", "splits", "boxes", "flip"}
        assert json.loads(f.attrs["attrs"])["view"]["name"] == "eval15"


def test_minimal_import_defaults_boxes_and_flip(tmp_path, run_cli):
    a = random_arrays(n=5)
    _npz(tmp_path / "m.npz", a, boxes=None, flip=None)
    code, out, err = run_cli("import", tmp_path / "m.npz", "--out", tmp_path / "m.zarr")
    assert code == 0, err
    fs = FeatureStore.open(tmp_path / "m.zarr")
    assert not fs.read(None, names=("flip",))["flip"].any()
    assert (fs.read(None, names=("boxes",))["boxes"] == 0).all()


@pytest.mark.parametrize(
    "override, message",
    [
        ({"features": np.zeros((5, 4), np.float32)}, "features must be a float array"),
        ({"coords": np.zeros((5, 4, 5), np.float32)}, "coords must have shape"),
        ({"labels": np.array([0, 1, 2, 7, 0])}, "labels must be in"),
        ({"splits": None}, "missing arrays splits"),
        ({"splits": np.full((3, 5), 4, np.int8)}, "splits values"),
        ({"video_ids": np.array(["a", "a", "b", "c", "d"])}, "unique"),
    ],
)
def test_bad_imports_fail_with_one_line(tmp_path, run_cli, override, message):
    a = random_arrays(n=5, classes=3)
    _npz(tmp_path / "bad.npz", a, **override)
    code, out, err = run_cli("import", tmp_path / "bad.npz", "--out", tmp_path / "x.zarr")
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.zarr").exists()


def test_nan_features_rejected(tmp_path, run_cli):
    a = random_arrays(n=5)
    feats = a["features"].astype(np.float32)
    feats[2, 1, 0] = np.nan
    with h5py.File(tmp_path / "nan.h5", "w") as f:
        for k, v in {**a, "features": feats}.items():
            if k in ("video_ids", "class_names"):
                f.create_dataset(k, data=np.array(v, dtype=object), dtype=h5py.string_dtype())
            else:
                f.create_dataset(k, data=v)
    code, _, err = run_cli("import", tmp_path / "nan.h5", "--out", tmp_path / "x.zarr")
    assert code == 2 and "NaN" in err
    assert not (tmp_path / "x.zarr").exists()


def test_unreadable_and_unknown_format(tmp_path, run_cli):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    assert run_cli("import", tmp_path / "junk.npz", "--out", tmp_path / "x.zarr")[0] == 2
    (tmp_path / "f.txt").write_text("a,b")
    code, _, err = run_cli("import", tmp_path / "f.txt", "--out", tmp_path / "x.zarr")
    assert code == 2 and "unsupported format" in err
    (tmp_path / "f.csv").write_text("a,b")  # a .csv lists per-video feature files (extract/feature_files.py)
    code, _, err = run_cli("import", tmp_path / "f.csv", "--out", tmp_path / "x.zarr")
    assert code == 2 and "path,label" in err
    assert run_cli("import", tmp_path / "missing.npz", "--out", tmp_path / "x.zarr")[0] == 2

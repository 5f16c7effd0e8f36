"""extract (tiny) -> train -> probe -> retrieve on the real UCF101/HMDB51 clips with the official split files."""
import json
import shutil

import numpy as np
import pytest

from scale_toolkit.store import DONE, FAILED, FeatureStore


@pytest.fixture
def hmdb_root(shared_data, tmp_path):
    """hmdb51-mini plus the corrupted file under a name the official split files list."""
    root = tmp_path / "hmdb51"
    shutil.copytree(shared_data / "videos/hmdb51-mini", root)
    shutil.copy(shared_data / "videos/misc/corrupted.mp4", root / "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_1.avi")
    return root


@pytest.mark.slow
def test_hmdb51_pipeline_on_real_clips(shared_data, hmdb_root, tmp_path, run_cli):
    splits = shared_data / "splits/hmdb51"
    for view in ("train16", "eval15"):
        code, out, err = run_cli("extract", "--backbone", "tiny", "--dataset", "hmdb51", "--root", hmdb_root, "--splits", splits,
                                 "--view", view, "--out", tmp_path / f"{view}.zarr", "--workers", "1")
        assert code == 0, err
        assert "1 failed" in out and "April_09_brush_hair_u_nm_np1_ba_goo_1.avi" in out
    eval15 = FeatureStore.open(tmp_path / "eval15.zarr")
    assert eval15.n_videos == 5 and eval15.n_clips == 15 and len(eval15.class_names) == 51
    failed = eval15.video_ids.index("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_1.avi")
    assert eval15.status[failed] == FAILED and eval15.reasons[failed]
    done = np.flatnonzero(eval15.status == DONE)
    assert [eval15.class_names[label] for label in eval15.labels[done]] == ["brush_hair", "punch", "shoot_bow", "swing_baseball"]
    # membership from the official split files: split 1 has 3 train videos and 1 test video among these
    assert sorted(eval15.splits[0][done].tolist()) == [1, 1, 1, 2]
    coords = eval15.read(done)["coords"]
    assert coords.shape == (4, 15, 6) and (coords >= 0).all() and (coords <= 1).all()

    code, out, err = run_cli("train", "--store", tmp_path / "train16.zarr", "--split", "1", "--out", tmp_path / "run",
                             "--epochs", "3", "--batch-size", "2", "--device", "cpu")
    assert code == 0, err
    assert (tmp_path / "run" / "model.pt").exists()

    code, out, err = run_cli("probe", "--store", tmp_path / "eval15.zarr", "--split", "1", "--model", tmp_path / "run",
                             "--knn", "2", "--json", tmp_path / "probe.json")
    assert code == 0, err
    probe = json.loads((tmp_path / "probe.json").read_text())
    assert set(probe["results"]) == {"knn", "scale_knn"}
    assert probe["results"]["knn"]["n_train"] == 3 and probe["results"]["knn"]["n_test"] == 1
    # one video per class cannot give a validation hold-out for trained probes: a clear refusal
    code, _, err = run_cli("probe", "--store", tmp_path / "eval15.zarr", "--split", "1", "--linear")
    assert code == 2 and "too small" in err

    code, out, err = run_cli("retrieve", "--store", tmp_path / "eval15.zarr", "--split", "1", "--model", tmp_path / "run",
                             "--k", "1,3", "--json", tmp_path / "ret.json")
    assert code == 0, err
    ret = json.loads((tmp_path / "ret.json").read_text())
    assert set(ret["recall"]) == {"1", "3"} and set(ret["scale_recall"]) == {"1", "3"}
    # 3 gallery videos of 3 other classes than the query: no hit at any k
    assert ret["recall"]["3"] == 0.0


@pytest.mark.slow
def test_ucf101_store_and_training_on_real_clips(shared_data, tmp_path, run_cli):
    for view in ("train16", "eval15"):
        code, _, err = run_cli("extract", "--backbone", "tiny", "--dataset", "ucf101", "--root", shared_data / "videos/ucf101-mini/UCF-101",
                               "--splits", shared_data / "splits/ucf101", "--view", view, "--out", tmp_path / f"{view}.zarr", "--workers", "1")
        assert code == 0, err
    train16 = FeatureStore.open(tmp_path / "train16.zarr")
    assert train16.n_clips == 16 and (train16.status == DONE).all()
    # all four clips are split-1 test videos and split-2/3 train videos (official lists)
    assert (train16.splits[0] == 2).all() and (train16.splits[1] == 1).all() and (train16.splits[2] == 1).all()
    code, _, err = run_cli("train", "--store", tmp_path / "train16.zarr", "--split", "1", "--out", tmp_path / "r1", "--epochs", "1", "--batch-size", "2")
    assert code == 2 and "train" in err  # split 1 has no train video here: a clear refusal
    code, _, err = run_cli("train", "--store", tmp_path / "train16.zarr", "--split", "2", "--out", tmp_path / "r2", "--epochs", "2", "--batch-size", "2")
    assert code == 0, err
    code, out, _ = run_cli("info", tmp_path / "r2", "--json")
    assert code == 0 and json.loads(out)["logged_steps"] == 2

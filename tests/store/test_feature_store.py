import multiprocessing as mp
import os
import signal
import warnings

import numpy as np
import pytest

from scale_toolkit.errors import ScaleError
from scale_toolkit.info import describe, store_table
from scale_toolkit.store import DONE, FAILED, PENDING, FeatureStore
from tests.store.helpers import make_store, random_arrays


def test_round_trip_is_bit_exact(tmp_path):
    a = random_arrays(n=10, v=5, d=7)
    make_store(tmp_path / "s.zarr", a)
    fs = FeatureStore.open(tmp_path / "s.zarr")
    got = fs.read(None, names=("features", "coords", "boxes", "flip"))
    for name in ("features", "coords", "boxes", "flip"):
        assert got[name].dtype == {"features": np.float16, "coords": np.float32, "boxes": np.int32, "flip": bool}[name]
        np.testing.assert_array_equal(got[name], a[name])
    assert fs.video_ids == a["video_ids"]
    assert fs.class_names == a["class_names"]
    np.testing.assert_array_equal(fs.labels, a["labels"])
    np.testing.assert_array_equal(fs.splits, a["splits"])
    assert (fs.status == DONE).all()


def test_read_subset_keeps_caller_order(tmp_path):
    a = random_arrays(n=12)
    fs = make_store(tmp_path / "s.zarr", a)
    idx = np.array([9, 2, 2, 7])
    np.testing.assert_array_equal(fs.read(idx)["features"], a["features"][idx])


def test_split_indices_only_done_rows(tmp_path):
    a = random_arrays(n=9)
    fs = make_store(tmp_path / "s.zarr", a)
    fs.mark_failed([1], ["broken"])
    train = fs.split_indices(1, "train")
    test = fs.split_indices(1, "test")
    assert set(train).isdisjoint(test)
    assert 1 not in train and 1 not in test
    np.testing.assert_array_equal(test, [i for i in range(9) if i % 3 == 0])
    with pytest.raises(ScaleError):
        fs.split_indices(4, "train")


def test_write_block_records_failures_and_keeps_done_rows(tmp_path):
    a = random_arrays(n=6, v=2, d=3)
    fs = FeatureStore.create(tmp_path / "s.zarr", video_ids=a["video_ids"], labels=a["labels"], splits=a["splits"],
                             class_names=a["class_names"], n_clips=2, feature_dim=3, rows_per_chunk=4)
    fs.write_block(0, {0: {"features": a["features"][0], "coords": a["coords"][0]}, 2: {"error": "cannot decode"}})
    assert list(fs.status[:4]) == [DONE, PENDING, FAILED, PENDING]
    assert fs.reasons[2] == "cannot decode"
    fs.write_block(0, {1: {"features": a["features"][1], "coords": a["coords"][1]}})
    np.testing.assert_array_equal(fs.read([0, 1])["features"], a["features"][:2])
    assert list(fs.pending()) == [3, 4, 5] and list(fs.failed()) == [2]


def test_idempotent_rewrite(tmp_path):
    a = random_arrays(n=8)
    fs = make_store(tmp_path / "s.zarr", a)
    before = {p.relative_to(fs.path): p.read_bytes() for p in fs.path.rglob("*") if p.is_file()}
    fs.write_rows(np.arange(8), features=a["features"], coords=a["coords"], boxes=a["boxes"], flip=a["flip"])
    after = {p.relative_to(fs.path): p.read_bytes() for p in fs.path.rglob("*") if p.is_file()}
    assert before == after


def test_refuses_existing_and_non_finite(tmp_path):
    a = random_arrays(n=4)
    fs = make_store(tmp_path / "s.zarr", a)
    with pytest.raises(ScaleError, match="already exists"):
        make_store(tmp_path / "s.zarr", a)
    bad = a["features"].copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ScaleError, match="non-finite"):
        fs.write_rows(np.arange(4), features=bad, coords=a["coords"])
    with pytest.raises(ScaleError, match="not found"):
        FeatureStore.open(tmp_path / "missing.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ScaleError, match="not a scale feature store"):
        FeatureStore.open(tmp_path / "plain")


def _crash_between_data_and_status(path):
    """Write a block's data, then die (SIGKILL) before its status is written."""
    fs = FeatureStore.open(path, mode="r+")
    rows = fs.block_rows(1)
    a = random_arrays(n=fs.n_videos, v=fs.n_clips, d=fs.feature_dim, seed=5)
    fs.group["features"][rows.start:rows.stop] = a["features"][rows.start:rows.stop]
    os.kill(os.getpid(), signal.SIGKILL)


def test_resume_after_crash_between_data_and_status(tmp_path):
    a = random_arrays(n=8, v=3, d=4, seed=5)
    path = tmp_path / "s.zarr"
    fs = FeatureStore.create(path, video_ids=a["video_ids"], labels=a["labels"], splits=a["splits"],
                             class_names=a["class_names"], n_clips=3, feature_dim=4, rows_per_chunk=4)
    fs.write_block(0, {i: {"features": a["features"][i], "coords": a["coords"][i]} for i in range(4)})
    proc = mp.get_context("spawn").Process(target=_crash_between_data_and_status, args=(path,))
    proc.start()
    proc.join()
    assert proc.exitcode == -signal.SIGKILL
    fs = FeatureStore.open(path, mode="r+")
    # the block whose status never landed is still pending, the finished one is intact
    assert list(fs.pending()) == [4, 5, 6, 7]
    np.testing.assert_array_equal(fs.read(np.arange(4))["features"], a["features"][:4])
    fs.write_block(1, {i: {"features": a["features"][i], "coords": a["coords"][i]} for i in range(4, 8)})
    assert (fs.status == DONE).all()
    np.testing.assert_array_equal(fs.read(None)["features"], a["features"])


def _write_blocks(path, blocks, seed):
    fs = FeatureStore.open(path, mode="r+")
    a = random_arrays(n=fs.n_videos, v=fs.n_clips, d=fs.feature_dim, seed=seed)
    for b in blocks:
        fs.write_block(b, {i: {"features": a["features"][i], "coords": a["coords"][i]} for i in fs.block_rows(b)})


def test_two_concurrent_writers_on_disjoint_blocks(tmp_path):
    a = random_arrays(n=64, v=4, d=16, seed=3)
    path = tmp_path / "s.zarr"
    FeatureStore.create(path, video_ids=a["video_ids"], labels=a["labels"], splits=a["splits"],
                        class_names=a["class_names"], n_clips=4, feature_dim=16, rows_per_chunk=4)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_write_blocks, args=(path, list(range(r, 16, 2)), 3)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert all(p.exitcode == 0 for p in procs)
    fs = FeatureStore.open(path)
    assert (fs.status == DONE).all()
    np.testing.assert_array_equal(fs.read(None)["features"], a["features"])
    np.testing.assert_array_equal(fs.read(None)["coords"], a["coords"])


def test_info_counts(tmp_path):
    fs = make_store(tmp_path / "s.zarr", random_arrays(n=9))
    fs.mark_failed([0], ["zero-byte file"])
    info = fs.info()
    assert info.status == {"pending": 0, "done": 8, "failed": 1}
    assert info.done_per_split[1] == {"train": 6, "test": 2, "unused": 0}
    assert info.failures == {"class0/video 0.avi": "zero-byte file"}
    assert info.disk_bytes > 0
    assert info.attrs.view_name == "eval15" and info.schema_version == 1


def test_info_as_scale_info_shows_it(tmp_path):
    fs = make_store(tmp_path / "s.zarr", random_arrays(n=9))
    fs.mark_failed([0], ["zero-byte file"])
    table = store_table(fs.info())
    assert table["status"] == {"pending": 0, "done": 8, "failed": 1}
    assert table["splits_done"]["1"] == {"train": 6, "test": 2, "unused": 0}
    assert table["failures"] == {"class0/video 0.avi": "zero-byte file"}
    assert table["view"] == {"name": "eval15", "clips": 4} and table["backbone"] is None
    assert describe(fs.path) == table
    a = random_arrays(n=4)
    bare = FeatureStore.create(tmp_path / "folder.zarr", video_ids=a["video_ids"], labels=a["labels"],
                               splits=np.zeros((3, 4), np.int8), class_names=a["class_names"], n_clips=4, feature_dim=8,
                               attrs={"backbone": {"name": "tiny"}, "precision": "auto", "precision_resolved": "fp32",
                                      "precision_reason": "no bf16"})
    table = store_table(bare.info())
    assert table["splits_done"].startswith("none (every video is SSL") and bare.info().done_per_split is None
    assert table["backbone"] == "tiny" and table["precision"] == "fp32 (no bf16)"


def test_zarrs_string_codec_warning_never_reaches_the_user(tmp_path, monkeypatch):
    """zarr 3.0 / 3.1.0 warn each time a string array's metadata is read (its vlen-utf8 codec is not in
    the v3 spec): every store operation keeps that warning to itself, and no filter outlives it."""
    from zarr.codecs.vlen_utf8 import VLenUTF8Codec

    from scale_toolkit.store.interchange import export_store, import_features

    parse = VLenUTF8Codec.from_dict.__func__

    def warning_parse(cls, data):  # as zarr 3.1.0 does
        warnings.warn_explicit("The codec `vlen-utf8` is currently not part in the Zarr format 3 specification.",
                               UserWarning, "vlen_utf8.py", 43, module="zarr.codecs.vlen_utf8")
        return parse(cls, data)

    monkeypatch.setattr(VLenUTF8Codec, "from_dict", classmethod(warning_parse))
    a = random_arrays(n=6, v=2, d=3)
    before = list(warnings.filters)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fs = make_store(tmp_path / "s.zarr", a)
        fs = FeatureStore.open(tmp_path / "s.zarr", mode="r+")
        fs.write_block(1, {4: {"error": "cannot decode"}})
        fs.mark_failed([0], ["broken"])
        fs.reset_rows([0])
        assert fs.video_ids == a["video_ids"] and fs.reasons[4] == "cannot decode" and fs.info().failures
        export_store(fs.path, tmp_path / "e.npz")
        assert import_features(tmp_path / "e.npz", tmp_path / "i.zarr").video_ids == a["video_ids"]
        assert warnings.filters[0][0] == "error"  # nothing stacked on top of the caller's filters
    assert warnings.filters == before

"""Class: silent partial data. An index and its sidecar are replaced as a pair: killed between
the two renames, the previous index still loads with its own sidecar."""
from __future__ import annotations

import os

import pytest

from scale_toolkit.retrieval import index as index_mod
from scale_toolkit.retrieval.query import build_gallery_index, query_index
from scale_toolkit.store import FeatureStore

from .helpers import make_store, message_lines


@pytest.mark.parametrize("die_at", [1, 2])
def test_kill_between_index_renames_leaves_a_loadable_index(tmp_path, monkeypatch, die_at):
    make_store(tmp_path / "a.zarr", n=24)
    make_store(tmp_path / "b.zarr", n=30, seed=1)
    path = tmp_path / "g.index"
    build_gallery_index(FeatureStore.open(tmp_path / "a.zarr"), path)
    real, calls = os.replace, []

    def dying_replace(src, dst):  # the process "dies" before rename number `die_at`
        calls.append(dst)
        if len(calls) == die_at:
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(index_mod.os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        build_gallery_index(FeatureStore.open(tmp_path / "b.zarr"), path)
    monkeypatch.undo()
    index, meta = index_mod.load_index(path)
    assert index.ntotal == meta["n_videos"] == 24  # the previous index, with its own video ids
    assert query_index(path, "c0/v003.avi", top=3)["n_gallery"] == 24
    build_gallery_index(FeatureStore.open(tmp_path / "b.zarr"), path)  # a rebuild then succeeds
    assert index_mod.load_index(path)[0].ntotal == 30


# ---- probe and train refuse a split still being extracted, as retrieve does

TRAIN = ["train", "--device", "cpu", "--precision", "fp32", "--threads", "1", "--hidden", "32", "--heads", "4",
         "--head-hidden", "32",
         "--layers", "1", "--epochs", "1", "--batch-size", "8"]


def _one_line(code, err, words):
    lines = message_lines(err)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], (code, err)


def test_a_lost_status_chunk_is_damage_not_pending_videos(tmp_path, run_cli):
    """A lost status chunk would read back as pending (fill value): its checksum tells it is damage,
    so no command shrinks the data silently, --allow-incomplete included."""
    for view in ("train16", "eval15"):
        make_store(tmp_path / f"{view}.zarr", view=view, n=24)  # 8 rows per chunk
        (tmp_path / f"{view}.zarr" / "status" / "c" / "0").unlink()
    for extra in ([], ["--allow-incomplete"]):
        code, _, err = run_cli(*TRAIN, "--store", tmp_path / "train16.zarr", "--out", tmp_path / "run", *extra)
        _one_line(code, err, f"{tmp_path / 'train16.zarr'} is damaged: status of rows 0-7 (block 0)")
        code, _, err = run_cli("probe", "--store", tmp_path / "eval15.zarr", "--device", "cpu", *extra)
        _one_line(code, err, f"{tmp_path / 'eval15.zarr'} is damaged: status of rows 0-7 (block 0)")
    assert not (tmp_path / "run").exists()


def test_probe_and_train_refuse_an_incomplete_split_unless_allowed(tmp_path, run_cli):
    for view in ("train16", "eval15"):
        fs = make_store(tmp_path / f"{view}.zarr", view=view, n=24)  # 8 rows per chunk
        fs.reset_rows([1, 2])  # train videos of split 1
    n_pending = 2
    code, _, err = run_cli(*TRAIN, "--store", tmp_path / "train16.zarr", "--out", tmp_path / "run")
    _one_line(code, err, f"{n_pending} of the 16 train videos of split 1 in {tmp_path / 'train16.zarr'} are still pending")
    assert not (tmp_path / "run").exists()
    code, _, err = run_cli("probe", "--store", tmp_path / "eval15.zarr", "--device", "cpu", "--json", tmp_path / "r.json")
    _one_line(code, err, "train/test videos of split 1")
    assert not (tmp_path / "r.json").exists()

    code, _, err = run_cli(*TRAIN, "--store", tmp_path / "train16.zarr", "--out", tmp_path / "run", "--allow-incomplete")
    assert code == 0, err
    code, _, err = run_cli("probe", "--store", tmp_path / "eval15.zarr", "--device", "cpu", "--json", tmp_path / "r.json",
                           "--allow-incomplete")
    assert code == 0, err
    import json

    assert any("left out (--allow-incomplete)" in n for n in json.loads((tmp_path / "r.json").read_text())["notes"])

"""Class: silent partial data. An index and its sidecar are replaced as a pair: killed between
the two renames, the previous index still loads with its own sidecar."""
from __future__ import annotations

import os

import pytest

from scale_toolkit.retrieval import index as index_mod
from scale_toolkit.retrieval.query import build_gallery_index, query_index
from scale_toolkit.store import FeatureStore

from .helpers import make_store


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

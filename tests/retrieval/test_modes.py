"""`scale retrieve`'s mode rules: which flags go together and what runs, without touching a store."""
from __future__ import annotations

from pathlib import Path

import pytest

from scale_toolkit.errors import ScaleError
from scale_toolkit.retrieval.modes import Mode, RetrieveTargets, build_summary

STORE, MODEL, INDEX = Path("eval15.zarr"), Path("run"), Path("g.faiss")


@pytest.mark.parametrize("targets, modes, loads_model", [
    (RetrieveTargets(store=STORE), [Mode.EVALUATE], False),
    (RetrieveTargets(store=STORE, model=MODEL), [Mode.EVALUATE], True),
    (RetrieveTargets(store=STORE, model=MODEL, build_index=INDEX), [Mode.BUILD_INDEX], True),
    (RetrieveTargets(store=STORE, build_index=INDEX, query="v.avi"), [Mode.BUILD_INDEX, Mode.QUERY], False),
    (RetrieveTargets(index=INDEX, query="c0/v0001.avi"), [Mode.QUERY], False),
    (RetrieveTargets(store=STORE, index=INDEX, query="c0/v0001.avi"), [Mode.QUERY], False),
])
def test_modes_and_model_use(targets, modes, loads_model):
    assert targets.modes() == modes
    assert targets.loads_model() is loads_model


@pytest.mark.parametrize("targets, message", [
    (RetrieveTargets(query="x"), "--query needs --index"),
    (RetrieveTargets(store=STORE, index=INDEX), "--index is for queries"),
    (RetrieveTargets(), "--store STORE.zarr is required"),
    (RetrieveTargets(build_index=INDEX), "--store STORE.zarr is required"),
    (RetrieveTargets(index=INDEX, query="a", model=MODEL), "--model is not used with --index"),
])
def test_flags_that_do_not_go_together(targets, message):
    with pytest.raises(ScaleError, match=message):
        targets.modes()


def test_a_query_reads_the_index_it_names_or_the_one_just_built():
    built = RetrieveTargets(store=STORE, build_index=INDEX, query="v.avi")
    assert built.index_to_query() == INDEX and built.store_for_query() is None  # the new sidecar names the store
    given = RetrieveTargets(store=STORE, index=Path("other.faiss"), query="v.avi")
    assert given.index_to_query() == Path("other.faiss") and given.store_for_query() == STORE


def test_build_summary_drops_the_per_video_lists():
    info = {"n_videos": 2, "video_ids": ["a", "b"], "labels": [0, 1], "class_names": ["x", "y"],
            "center_vector": None, "media": None, "descriptor": "mean"}
    assert build_summary(info) == {"n_videos": 2, "descriptor": "mean"}

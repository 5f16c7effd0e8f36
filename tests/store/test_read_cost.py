"""A read costs in proportion to the rows asked, not to the store (issue #25).

Shown on real stores by garbling the chunk files of every block a read must not touch: the
status and checksum chunks of the other blocks, and their data. A read of some rows, a video-id
lookup and a retrieval query by id must then still work, and the blocks they do read are still
checked (a garbled block that *is* read is reported).
"""
from __future__ import annotations

import numpy as np
import pytest

from scale_toolkit.errors import ScaleError
from scale_toolkit.store import FeatureStore

from .helpers import make_store, random_arrays

N, RPC = 40, 4  # ten blocks


def _garble_blocks(path, blocks):
    """Overwrite every per-block chunk file of these blocks (all row arrays, status, checksums)."""
    for name in ("features", "coords", "boxes", "flip", "video_meta", "status", "reasons", "checksums"):
        for chunk in (path / name / "c").glob("*"):
            first = int(chunk.name)
            if first in blocks:
                if chunk.is_dir():
                    for f in chunk.rglob("*"):
                        if f.is_file():
                            f.write_bytes(b"garbage")
                else:
                    chunk.write_bytes(b"garbage")


@pytest.fixture
def store(tmp_path):
    arrays = random_arrays(n=N)
    make_store(tmp_path / "s.zarr", arrays, rows_per_chunk=RPC)
    return tmp_path / "s.zarr", arrays


def test_reading_rows_touches_only_their_blocks(store):
    path, arrays = store
    _garble_blocks(path, set(range(2, 10)))  # keep blocks 0 and 1
    fs = FeatureStore.open(path)
    rows = np.array([6, 1, 5])
    got = fs.read(rows)
    np.testing.assert_array_equal(got["features"], arrays["features"][rows])
    np.testing.assert_array_equal(fs.status_of(rows), [1, 1, 1])
    assert fs.row_of(arrays["video_ids"][5]) == 5 and fs.row_of("no such video") is None
    with pytest.raises(ScaleError, match="damaged"):  # a garbled block that is read is still caught
        fs.read([12])


def test_a_damaged_block_is_still_found_by_a_read_of_it(store):
    path, arrays = store
    fs = FeatureStore.open(path)
    chunk = next((path / "features" / "c").glob("3*"))
    target = next(f for f in ([chunk] if chunk.is_file() else chunk.rglob("*")) if f.is_file())
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    fs = FeatureStore.open(path)
    np.testing.assert_array_equal(fs.read([0])["features"], arrays["features"][[0]])
    with pytest.raises(ScaleError, match="rows 12-15"):
        fs.read([13])


def test_whole_metadata_arrays_are_the_callers_copies(store):
    path, arrays = store
    fs = FeatureStore.open(path)
    labels = fs.labels
    labels[:] = -5  # the caller's own array: the store's answer does not change
    np.testing.assert_array_equal(fs.labels, arrays["labels"])
    ids = fs.video_ids
    ids[0] = "changed"
    assert fs.video_ids[0] == arrays["video_ids"][0]


def test_a_writer_sees_its_own_status_changes(store):
    path, _ = store
    fs = FeatureStore.open(path, mode="r+")
    assert (fs.status == 1).all()
    fs.reset_rows([3])
    assert fs.status[3] == 0 and fs.status_of([3])[0] == 0


def test_status_of_reads_each_status_chunk_once_and_keeps_the_rows_order(store, monkeypatch):
    path, _ = store
    writer = FeatureStore.open(path, mode="r+")
    writer.reset_rows([2, 9, 10, 33])  # pending again: statuses that differ inside and across blocks
    fs = FeatureStore.open(path)
    reads = []
    rows_of = fs._rows_of
    read = fs.read
    monkeypatch.setattr(fs, "_rows_of", lambda name, *a: reads.append(name) or rows_of(name, *a))
    monkeypatch.setattr(fs, "read", lambda idx=None, names=(), **kw: reads.extend(names) or read(idx, names, **kw))
    rows = np.array([33, 2, 9, 9, 0, 39, 10, 11])
    got = fs.status_of(rows)
    assert reads.count("status") == len(_runs(rows // RPC))  # once per run of blocks (was: twice)
    monkeypatch.undo()
    np.testing.assert_array_equal(got, FeatureStore.open(path).status[rows])
    assert got.tolist() == [0, 0, 0, 0, 1, 1, 0, 1]


def _runs(blocks):
    """Runs of consecutive blocks (a run is read in one piece)."""
    b = np.unique(blocks)
    return list(np.split(b, np.flatnonzero(np.diff(b) > 1) + 1))

"""Class: store integrity. Any damaged chunk - deleted (it would read back as zeros), truncated,
one flipped byte, or its checksum lost - is found: reads of it refuse in one line, `scale info
--verify` lists the damaged rows (exit 1), and rerunning `scale extract` extracts exactly those
rows again, ending bit-identical to the undamaged store."""
from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from scale_toolkit.demo.synthetic import SyntheticSpec, make_synthetic_dataset
from scale_toolkit.store import FeatureStore

from .helpers import message_lines

ARRAYS = ("features", "coords", "boxes", "flip", "video_meta", "status")


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    d = tmp_path_factory.mktemp("integrity")
    csv = make_synthetic_dataset(d / "videos", SyntheticSpec(videos_per_class=2, frames=16, height=32, width=40))
    return d, csv


def _extract(run_cli, csv, out):
    return run_cli("extract", "--backbone", "tiny", "--dataset", "csv", "--csv", csv, "--root", csv.parent,
                   "--out", out, "--workers", "0", "--threads", "1", "--rows-per-chunk", "2")


def _flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {  # block 1 = rows 2-3 (--rows-per-chunk 2)
    "deleted features chunk": lambda s: (s / "features" / "c" / "1" / "0" / "0").unlink(),
    "truncated features chunk": lambda s: (s / "features" / "c" / "1" / "0" / "0").write_bytes(
        (s / "features" / "c" / "1" / "0" / "0").read_bytes()[:40]),
    "flipped byte in coords": lambda s: _flip_byte(s / "coords" / "c" / "1" / "0" / "0"),
    "deleted checksum chunk": lambda s: (s / "checksums" / "c" / "1" / "0").unlink(),
}


def _reference_and_copy(run_cli, clean, tmp_path):
    """An extracted store and a copy of it to damage."""
    ref, store = tmp_path / "ref.zarr", tmp_path / "s.zarr"
    assert _extract(run_cli, clean[1], ref)[0] == 0
    shutil.copytree(ref, store)
    return ref, store


def _verified_and_equal(run_cli, ref, store):
    """After the re-extraction: the store verifies clean and holds exactly the reference's data."""
    assert run_cli("info", store, "--verify")[0] == 0
    a, b = FeatureStore.open(ref).read(None, ARRAYS), FeatureStore.open(store).read(None, ARRAYS)
    for name in ARRAYS:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_damaged_chunk_is_found_refused_and_reextracted(kind, clean, tmp_path, run_cli):
    ref, store = _reference_and_copy(run_cli, clean, tmp_path)
    code, out, _ = run_cli("info", store, "--verify")
    assert code == 0 and "every block with done rows matches its checksum" in out
    DAMAGE[kind](store)

    code, out, err = run_cli("info", store, "--verify")
    assert code == 1 and "damaged: rows 2-3 " in out and "2 rows in 1 damaged blocks" in out, (out, err)
    for cmd in (["export", store, "--out", tmp_path / "e.npz"],
                ["probe", "--store", store, "--device", "cpu", "--allow-incomplete"]):
        code, _, err = run_cli(*cmd)
        lines = message_lines(err)
        assert code == 2 and len(lines) == 1 and "is damaged" in lines[0] and "rows 2-3 (block 1)" in lines[0], err
    assert not (tmp_path / "e.npz").exists()

    code, out, err = _extract(run_cli, clean[1], store)
    assert code == 0, err
    assert re.search(r"2 videos extracted now, 10 already done", out) and "2 videos whose stored data was damaged" in out
    _verified_and_equal(run_cli, ref, store)


def test_truncated_status_chunk_is_one_line(clean, tmp_path, run_cli):
    assert _extract(run_cli, clean[1], tmp_path / "s.zarr")[0] == 0
    chunk = tmp_path / "s.zarr" / "status" / "c" / "1"
    chunk.write_bytes(chunk.read_bytes()[:3])
    for cmd in (["info", tmp_path / "s.zarr"], ["probe", "--store", tmp_path / "s.zarr", "--device", "cpu"]):
        code, _, err = run_cli(*cmd)
        lines = message_lines(err)
        assert code == 2 and len(lines) == 1 and "its status array cannot be read" in lines[0], err


def _edit(store, name, row, value):
    """A change that decodes cleanly (as a flipped bit in an uncompressed byte would): only a checksum can tell."""
    import zarr

    zarr.open_group(str(store), mode="r+")[name][row] = value


def _bump(store, name, row, change):
    import zarr

    array = zarr.open_group(str(store), mode="r+")[name]
    array[row] = change(array[row])


ROW_STATE_DAMAGE = {  # block 1 = rows 2-3: a done row reads as pending, or a failure reason appears
    "status": lambda s: _edit(s, "status", 2, 0),
    "reasons": lambda s: _edit(s, "reasons", 3, "decoder crashed"),
}


@pytest.mark.parametrize("name", sorted(ROW_STATE_DAMAGE))
def test_damaged_row_state_is_found_refused_and_reextracted(name, clean, tmp_path, run_cli):
    ref, store = _reference_and_copy(run_cli, clean, tmp_path)
    ROW_STATE_DAMAGE[name](store)
    code, out, err = run_cli("info", store, "--verify")
    assert code == 1 and "damaged: rows 2-3 " in out and f"{name} checksum mismatch" in out, (out, err)
    if name == "status":  # a read of the block refuses; it never takes the edited status as data
        code, _, err = run_cli("probe", "--store", store, "--device", "cpu", "--allow-incomplete")
        lines = message_lines(err)
        assert code == 2 and len(lines) == 1 and "status" in lines[0] and "is damaged" in lines[0], err
    code, out, err = _extract(run_cli, clean[1], store)
    assert code == 0 and "2 videos extracted now" in out, (out, err)
    _verified_and_equal(run_cli, ref, store)


def _edit_attributes(store):
    import json

    meta = json.loads((store / "zarr.json").read_text())
    meta["attributes"]["class_names"] = list(reversed(meta["attributes"]["class_names"]))
    (store / "zarr.json").write_text(json.dumps(meta))


WHOLE_DAMAGE = {  # written once at creation: checked against the attributes' record whenever read
    "labels": (lambda s: _bump(s, "labels", 1, lambda v: v + 1), "its labels array does not match its checksum"),
    "splits": (lambda s: _bump(s, "splits", (0, 1), lambda v: 3 - v), "its splits array does not match its checksum"),
    "video_ids": (lambda s: _edit(s, "video_ids", 0, "other.avi"), "its video_ids array does not match its checksum"),
    "attributes": (_edit_attributes, "its attributes (zarr.json) do not match their checksum"),
    "checksums array deleted": (lambda s: shutil.rmtree(s / "checksums"), "its checksums array is missing"),
}


@pytest.mark.parametrize("kind", sorted(WHOLE_DAMAGE))
def test_damaged_store_metadata_is_one_line_everywhere(kind, clean, tmp_path, run_cli):
    store = tmp_path / "s.zarr"
    assert _extract(run_cli, clean[1], store)[0] == 0
    damage, message = WHOLE_DAMAGE[kind]
    damage(store)
    for cmd in (["info", store, "--verify"], ["probe", "--store", store, "--device", "cpu", "--knn", "1"],
                ["export", store, "--out", tmp_path / "e.npz"]):
        code, _, err = run_cli(*cmd)
        lines = message_lines(err)
        assert code == 2 and len(lines) == 1 and message in lines[0], (cmd, err)
    assert not (tmp_path / "e.npz").exists()

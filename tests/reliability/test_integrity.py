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


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_damaged_chunk_is_found_refused_and_reextracted(kind, clean, tmp_path, run_cli):
    ref = tmp_path / "ref.zarr"
    assert _extract(run_cli, clean[1], ref)[0] == 0
    store = tmp_path / "s.zarr"
    shutil.copytree(ref, store)
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
    assert run_cli("info", store, "--verify")[0] == 0
    a, b = FeatureStore.open(ref).read(None, ARRAYS), FeatureStore.open(store).read(None, ARRAYS)
    for name in ARRAYS:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_truncated_status_chunk_is_one_line(clean, tmp_path, run_cli):
    assert _extract(run_cli, clean[1], tmp_path / "s.zarr")[0] == 0
    chunk = tmp_path / "s.zarr" / "status" / "c" / "1"
    chunk.write_bytes(chunk.read_bytes()[:3])
    for cmd in (["info", tmp_path / "s.zarr"], ["probe", "--store", tmp_path / "s.zarr", "--device", "cpu"]):
        code, _, err = run_cli(*cmd)
        lines = message_lines(err)
        assert code == 2 and len(lines) == 1 and "its status array cannot be read" in lines[0], err

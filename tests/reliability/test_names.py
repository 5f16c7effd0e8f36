"""Class: any byte sequence in a file name. Names that are not UTF-8 (Latin-1, lone 0xff, a
literal backslash-x) are extracted, stored losslessly (the store gives back the exact bytes on
disk), resumed, exported and imported; a bad video with such a name is recorded as failed; a CSV
manifest in another encoding is one line."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest

from scale_toolkit.demo.synthetic import SyntheticSpec, make_synthetic_dataset
from scale_toolkit.store import DONE, FAILED, FeatureStore

from .helpers import message_lines

NAMES = [b"caf\xe9 [x].mp4", b"\xff\xfe.mp4", b"a\\x41\\\\b\xe9.mp4"]  # Latin-1, no UTF-8 at all, escapes


@pytest.fixture
def videos(tmp_path):
    root = tmp_path / "videos"
    make_synthetic_dataset(root, SyntheticSpec(videos_per_class=1, frames=16, height=32, width=40))
    (root / "manifest.csv").unlink()
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    for name, cls in zip(NAMES, classes):  # one renamed video per class
        src = next(cls.iterdir())
        os.rename(bytes(src), os.fsencode(cls) + b"/" + name)
    os.rename(os.fsencode(classes[3]), os.fsencode(root) + b"/cl\xe4ss")  # a class folder too
    (root / "cl\udce4ss" / "bad\udcfe.mp4").write_bytes(b"not a video")
    return root


def _on_disk(root) -> set[bytes]:
    return {os.path.relpath(os.path.join(d, f), os.fsencode(root)) for d, _, fs in os.walk(os.fsencode(root)) for f in fs}


def test_non_utf8_names_are_extracted_losslessly_and_resumed(videos, tmp_path, run_cli):
    args = ["extract", "--backbone", "tiny", "--root", videos, "--out", tmp_path / "s.zarr", "--workers", "1", "--threads", "1"]
    code, out, err = run_cli(*args)
    assert code == 0, err
    fs = FeatureStore.open(tmp_path / "s.zarr")
    assert {os.fsencode(v) for v in fs.video_ids} == _on_disk(videos)  # the exact bytes of every name
    status = dict(zip(fs.video_ids, fs.status))
    assert status["cl\udce4ss/bad\udcfe.mp4"] == FAILED and sum(s == DONE for s in status.values()) == 6
    assert "failed: cl\\xe4ss/bad\\xfe.mp4: " in out
    assert "bad\\xfe.mp4" in fs.reasons[list(status).index("cl\udce4ss/bad\udcfe.mp4")]
    code, out, err = run_cli(*args)  # the rerun recognises every row
    assert code == 0 and re.search(r"0 videos extracted now, 6 already done", out), (out, err)
    for fmt in ("npz", "h5"):
        assert run_cli("export", tmp_path / "s.zarr", "--out", tmp_path / f"e.{fmt}")[0] == 0
        assert run_cli("import", tmp_path / f"e.{fmt}", "--out", tmp_path / f"i{fmt}.zarr")[0] == 0
        back = FeatureStore.open(tmp_path / f"i{fmt}.zarr")
        assert back.video_ids == fs.video_ids and back.class_names == fs.class_names
        np.testing.assert_array_equal(back.read(None)["features"], fs.read(None)["features"])


def test_csv_in_another_encoding_is_one_line(videos, tmp_path, run_cli):
    (tmp_path / "latin1.csv").write_bytes("path,label\ncaf\xe9.mp4,caf\xe9\n".encode("latin-1"))
    code, out, err = run_cli("extract", "--backbone", "tiny", "--dataset", "csv", "--csv", tmp_path / "latin1.csv",
                             "--root", videos, "--out", tmp_path / "s.zarr", "--workers", "0")
    lines = message_lines(err)
    assert code == 2 and len(lines) == 1 and "is not UTF-8 text (byte 0xe9 on line 2)" in lines[0], err
    assert not (tmp_path / "s.zarr").exists()

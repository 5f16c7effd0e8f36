"""`scale_toolkit.atomic`: files written through a temp file get the mode the user's umask gives."""
import os
import stat

import numpy as np
import pytest

from scale_toolkit.atomic import write_json


@pytest.fixture
def umask():
    def set_mask(mask: int) -> None:
        os.umask(mask)
    before = os.umask(0o022)
    os.umask(before)
    yield set_mask
    os.umask(before)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_files_follow_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    path = write_json(tmp_path / "config.json", {"a": 1})
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_index_files_follow_the_umask(tmp_path, umask):
    from scale_toolkit.retrieval.index import build_index, save_index, sidecar_path

    umask(0o022)
    vectors = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    path = save_index(build_index(vectors)[0], tmp_path / "gallery.faiss", {"n": 8})
    for file in (path, sidecar_path(path)):
        assert stat.S_IMODE(file.stat().st_mode) == 0o644, file.name

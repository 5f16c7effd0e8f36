"""Class: terminal escape sequences and control characters in any printed name - video ids, class
names, failure reasons, paths in results and in error lines - reach the terminal escaped (`\\x1b`,
`\\x0d`, `\\u202e`), never active: one place (cli/text.py, used by both consoles and the error line)
does it for every print. Real CLI processes; their raw bytes are checked."""
from __future__ import annotations

import numpy as np
import pytest

from scale_toolkit.store import FeatureStore

from .helpers import import_arrays, message_lines, scale

HOSTILE = ["\x1b]0;owned\x07title", "clear\x1b[2J\x1b[H", "over\rwrite", "bell\x07", "rtl\u202egpj.exe", "two\nlines",
           "del\x7f", "c1\x9bcsi"]
ACTIVE = ["\x1b", "\r", "\x07", "\u202e", "\x7f", "\x9b"]


@pytest.fixture
def store(tmp_path):
    n, v, d = len(HOSTILE), 3, 4
    rng = np.random.default_rng(0)
    lo = rng.random((n, v, 3)) * 0.5
    fs = FeatureStore.create(tmp_path / "s.zarr", video_ids=HOSTILE, labels=np.arange(n) % 2,
                             splits=np.ones((3, n), np.int8), class_names=["cls\x1b[31m", "ok"], n_clips=v,
                             feature_dim=d, attrs={"dataset": "x\x1b[5mblink"}, rows_per_chunk=4)
    fs.write_rows(np.arange(n - 2), features=rng.standard_normal((n - 2, v, d)).astype(np.float16),
                  coords=np.concatenate([lo, lo + 0.5], axis=2)[: n - 2].astype(np.float32))
    fs.mark_failed([n - 2, n - 1], ["reason \x1b[31mred", "cut\rshort"])
    return tmp_path / "s.zarr"


def _clean(text: str) -> None:
    for ch in ACTIVE:
        assert ch not in text, (ch, text[-3000:])


def test_info_shows_every_name_escaped(store):
    code, out, err = scale("info", store)
    assert code == 0, err
    _clean(out + err)
    assert "\\x1b]0;owned\\x07title" in out or "\\x1b" in out  # failures and their reasons are listed
    assert "reason \\x1b[31mred" in out and "cut\\x0dshort" in out


def test_error_lines_escape_the_path_and_stay_one_line(tmp_path):
    for name in ("x\x1b[31mred.zarr", "a\nb.zarr", "c\rd\u202e.zarr"):
        code, out, err = scale("info", tmp_path / name)
        lines = message_lines(err)
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
        _clean(out + err.rstrip("\n"))
        assert "\n" not in err.rstrip("\n")


def test_import_and_export_print_escaped_paths(tmp_path):
    np.savez(tmp_path / "in.npz", **import_arrays())
    out_store = tmp_path / "s\x1b[2J.zarr"
    code, out, err = scale("import", tmp_path / "in.npz", "--out", out_store)
    assert code == 0, err
    _clean(out + err)
    assert "s\\x1b[2J.zarr" in out
    code, out, err = scale("export", out_store, "--out", tmp_path / "e\x07.npz")
    assert code == 0, err
    _clean(out + err)

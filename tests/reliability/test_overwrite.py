"""Class: data loss. `--overwrite`, `--build-index`, `--json`, `train --out` and `demo --out` may
only replace (or write into) scale's own output of the right kind; a folder of the user's files,
`sub/..`, a plain file or a symlink is refused in one line, exit 2, and left exactly as it was."""
from __future__ import annotations

import numpy as np
import pytest

from .helpers import import_arrays, make_store, message_lines, tree


@pytest.fixture
def home(tmp_path):
    """A user's folder of files, a store, an npz to import and a previous export."""
    user = tmp_path / "user"
    (user / "sub").mkdir(parents=True)
    (user / "thesis.tex").write_text("years of work\n")
    (user / "sub" / "data.csv").write_text("1,2\n")
    (tmp_path / "notes.npz").write_bytes(b"not numpy, but the user's file")
    (tmp_path / "notes.json").write_text("my notes, not JSON\n")
    np.savez(tmp_path / "in.npz", **import_arrays())
    make_store(tmp_path / "s.zarr", view="eval15")
    make_store(tmp_path / "t16.zarr", view="train16")
    return tmp_path


def _snapshot(root):
    return {p: (root / p).read_bytes() for p in tree(root) if (root / p).is_file()}


def _assert_refused(run_cli, home, args, words):
    before = _snapshot(home)
    code, out, err = run_cli(*args)
    lines = message_lines(err)
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], err
    assert _snapshot(home) == before  # nothing the user had is lost or changed


@pytest.mark.parametrize("target", ["user", "user/sub/..", "notes.npz", "link"])
def test_import_overwrite_refuses_anything_but_a_store(run_cli, home, target):
    (home / "link").symlink_to(home / "s.zarr")
    _assert_refused(run_cli, home, ["import", home / "in.npz", "--out", f"{home}/{target}", "--overwrite"], "refusing")


def test_import_overwrite_replaces_a_store(run_cli, home):
    code, _, err = run_cli("import", home / "in.npz", "--out", home / "s.zarr", "--overwrite")
    assert code == 0, err
    from scale_toolkit.store import FeatureStore

    assert FeatureStore.open(home / "s.zarr").n_videos == 6
    assert not [p for p in home.iterdir() if p.name.startswith(".s.zarr")]  # the old store went away


def test_import_refuses_to_replace_the_store_holding_its_input(run_cli, home):
    np.savez(home / "s.zarr" / "in.npz", **import_arrays())
    _assert_refused(run_cli, home, ["import", home / "s.zarr" / "in.npz", "--out", home / "s.zarr", "--overwrite"],
                    "holds the input")


@pytest.mark.parametrize("target, flags, words", [
    ("notes.npz", [], "already exists"),
    ("notes.npz", ["--overwrite"], "not a file written by scale export"),
    ("user", ["--overwrite"], "is a directory"),
])
def test_export_refuses_to_replace_user_files(run_cli, home, target, flags, words):
    (home / "user.npz").mkdir()
    target = "user.npz" if target == "user" else target
    _assert_refused(run_cli, home, ["export", home / "s.zarr", "--out", home / target, *flags], words)


def test_export_overwrite_replaces_an_earlier_export(run_cli, home):
    assert run_cli("export", home / "s.zarr", "--out", home / "e.npz")[0] == 0
    assert run_cli("export", home / "t16.zarr", "--out", home / "e.npz", "--overwrite")[0] == 0
    assert np.load(home / "e.npz")["features"].shape[1] == 16


def test_build_index_refuses_to_replace_a_user_file_but_rebuilds_an_index(run_cli, home):
    _assert_refused(run_cli, home, ["retrieve", "--store", home / "s.zarr", "--build-index", home / "notes.npz"],
                    "not a scale retrieval index")
    for _ in range(2):  # the second build replaces the first index
        code, _, err = run_cli("retrieve", "--store", home / "s.zarr", "--build-index", home / "g.index")
        assert code == 0, err


@pytest.mark.parametrize("cmd", ["probe", "retrieve"])
def test_json_refuses_to_replace_a_non_json_file_or_a_folder(run_cli, home, cmd):
    base = [cmd, "--store", home / "s.zarr"] + (["--device", "cpu"] if cmd == "probe" else [])
    _assert_refused(run_cli, home, [*base, "--json", home / "notes.json"], "not a JSON result file")
    _assert_refused(run_cli, home, [*base, "--json", home / "user"], "not a JSON result file")


def test_train_refuses_an_out_folder_of_user_files(run_cli, home):
    _assert_refused(run_cli, home, ["train", "--store", home / "t16.zarr", "--out", home / "user", "--device", "cpu",
                                    "--precision", "fp32", "--epochs", "1", "--batch-size", "8"], "not a training run")


def test_demo_refuses_an_out_folder_of_user_files(run_cli, home):
    _assert_refused(run_cli, home, ["demo", "--out", home / "user", "--epochs", "1"], "not a scale demo folder")

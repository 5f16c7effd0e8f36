"""Class: tracebacks on ordinary faults. A full disk (a real small tmpfs, filled) or a read-only
folder (the tmpfs remounted read-only) under train, probe --json, retrieve --build-index, export,
import and a resumed extract; an h5 with extra groups or a non-string `attrs`; a store whose
schema_version is not an integer; `scale info` on a damaged run. Each is one `error:` line, exit
2, and leaves nothing half-written (no temp files, existing files unchanged). Skipped where
mounting a tmpfs is not allowed (needs root)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from scale_toolkit.demo.synthetic import SyntheticSpec, make_synthetic_dataset
from scale_toolkit.store import FeatureStore
from tests.conftest import cli_runner

from .helpers import import_arrays, make_store, message_lines, tree

OWN_LOCKS = (".lock", ".locks")


@pytest.fixture
def run_fd(capfd):
    """Like run_cli, but captures file descriptors 1 and 2: C++ libraries (faiss, HDF5) write there directly."""
    return cli_runner(capfd)


def _one_line(code, out, err, words=""):
    lines = message_lines(err)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], (code, out[-1500:], err[-3000:])
    assert "Traceback" not in out + err


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("fault_inputs")
    make_store(d / "t16.zarr", view="train16", n=24)
    make_store(d / "e15.zarr", view="eval15")
    np.savez(d / "x.npz", **import_arrays())
    csv = make_synthetic_dataset(d / "videos", SyntheticSpec(videos_per_class=1, frames=16, height=32, width=40))
    return d, csv


def _extract_args(csv, out):
    return ["extract", "--backbone", "tiny", "--dataset", "csv", "--csv", csv, "--root", csv.parent, "--out", out,
            "--workers", "0", "--threads", "1", "--rows-per-chunk", "2"]


@pytest.fixture(params=["full", "read-only"])
def disk(request, tmp_path, inputs, run_fd):
    """A 4 MiB tmpfs holding a store whose last block is pending, then filled or made read-only."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip()[:80]})")
    request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(mnt)], capture_output=True))
    code, _, err = run_fd(*_extract_args(inputs[1], mnt / "s.zarr"))
    assert code == 0, err
    fs = FeatureStore.open(mnt / "s.zarr", mode="r+")
    fs.reset_rows(list(fs.block_rows(fs.n_blocks - 1)))
    if request.param == "full":
        with open(mnt / "filler", "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
    else:
        assert subprocess.run(["mount", "-o", "remount,ro", str(mnt)]).returncode == 0
    return mnt


def _files(root: Path) -> dict[str, bytes]:
    return {p: (root / p).read_bytes() for p in tree(root) if (root / p).is_file() and not p.endswith(OWN_LOCKS)
            and "/.locks/" not in f"/{p}"}


COMMANDS = {
    "train": lambda i, d: ["train", "--store", i / "t16.zarr", "--out", d / "run", "--epochs", "2", "--batch-size", "8",
                           "--device", "cpu", "--precision", "fp32", "--threads", "1", "--hidden", "32", "--heads", "4",
                           "--layers", "1", "--head-hidden", "32"],
    "probe-json": lambda i, d: ["probe", "--store", i / "e15.zarr", "--device", "cpu", "--json", d / "r.json"],
    "build-index": lambda i, d: ["retrieve", "--store", i / "e15.zarr", "--build-index", d / "g.index"],
    "export": lambda i, d: ["export", i / "e15.zarr", "--out", d / "e.npz"],
    "import": lambda i, d: ["import", i / "x.npz", "--out", d / "i.zarr"],
}


@pytest.mark.parametrize("cmd", [*sorted(COMMANDS), "resumed-extract"])
def test_full_or_read_only_disk_is_one_line_and_half_writes_nothing(cmd, disk, inputs, run_fd):
    before = _files(disk)
    args = _extract_args(inputs[1], disk / "s.zarr") if cmd == "resumed-extract" else COMMANDS[cmd](inputs[0], disk)
    code, out, err = run_fd(*args)
    _one_line(code, out, err)
    after = _files(disk)
    assert {p: b for p, b in after.items() if p in before} == before, "an existing file changed"
    new = set(after) - set(before)
    assert not new, f"left behind: {sorted(new)}"
    hidden = [p for p in tree(disk) if any(part.startswith(".") and not part.startswith(OWN_LOCKS)
                                           for part in Path(p).parts)]
    assert not hidden, f"temp files left: {hidden}"
    if cmd == "resumed-extract":  # the blocks written before are still there and still done
        assert (FeatureStore.open(disk / "s.zarr").status == 1).sum() == 4


def test_h5_with_extra_groups_imports_and_bad_attrs_is_one_line(tmp_path, run_cli):
    import h5py

    a = import_arrays()
    with h5py.File(tmp_path / "extra.h5", "w") as f:
        for k, v in a.items():
            f.create_dataset(k, data=v.astype("S") if v.dtype.kind == "U" else v)
        f.create_group("my_notes").create_dataset("x", data=np.arange(3))
        f.create_dataset("other_array", data=np.zeros(2))
    code, _, err = run_cli("import", tmp_path / "extra.h5", "--out", tmp_path / "a.zarr")
    assert code == 0, err
    for name, value in (("int", 5), ("list", "[1, 2]"), ("array", np.arange(3))):
        with h5py.File(tmp_path / f"{name}.h5", "w") as f:
            for k, v in a.items():
                f.create_dataset(k, data=v.astype("S") if v.dtype.kind == "U" else v)
            f.attrs["attrs"] = value
        _one_line(*run_cli("import", tmp_path / f"{name}.h5", "--out", tmp_path / f"{name}.zarr"), "attrs")
        assert not (tmp_path / f"{name}.zarr").exists()
    with h5py.File(tmp_path / "group.h5", "w") as f:
        for k, v in a.items():
            if k != "labels":
                f.create_dataset(k, data=v.astype("S") if v.dtype.kind == "U" else v)
        f.create_group("labels")
    _one_line(*run_cli("import", tmp_path / "group.h5", "--out", tmp_path / "g.zarr"), "'labels' is an HDF5 group")


@pytest.mark.parametrize("version", ["1", 1.5, None, True, [1]])
def test_store_with_a_non_integer_schema_version_is_one_line(tmp_path, run_cli, version):
    make_store(tmp_path / "s.zarr")
    meta = json.loads((tmp_path / "s.zarr" / "zarr.json").read_text())
    meta["attributes"]["schema_version"] = version
    (tmp_path / "s.zarr" / "zarr.json").write_text(json.dumps(meta))
    for cmd in (["info", tmp_path / "s.zarr"], ["export", tmp_path / "s.zarr", "--out", tmp_path / "e.npz"],
                ["probe", "--store", tmp_path / "s.zarr", "--device", "cpu"]):
        _one_line(*run_cli(*cmd), "schema_version")
    assert not (tmp_path / "e.npz").exists()


def test_info_on_a_damaged_run(tmp_path, run_cli):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"train": {"lr": 0.001}, "model": {}}')
    (run / "metrics.jsonl").write_text('{"epoch": 1, "loss": 2.0}\n{"epoch": 2, "lo')  # a cut last line
    code, out, err = run_cli("info", run, "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["logged_steps"] == 1 and info["damaged_metrics_lines"] == 1
    (run / "config.json").write_bytes(b'{"train": \xff\x00')
    _one_line(*run_cli("info", run), "config.json is damaged")

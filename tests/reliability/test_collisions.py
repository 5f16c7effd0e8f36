"""Class: runs that collide or restart. A second `scale train` on a run directory in use, a
`--resume` with nothing to resume, and extractions whose blocks would overlap (a whole-store run
and a --shard run, or shards of different layouts) are one line, exit 2, and change nothing."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scale_toolkit.demo.synthetic import SyntheticSpec, make_synthetic_dataset

from .helpers import make_store, message_lines, tree

WORKER = Path(__file__).with_name("cli_worker.py")
REPO = Path(__file__).resolve().parents[2]


def _paused(mode: str, args: list, marker: Path) -> subprocess.Popen:
    """A real `scale` process stopped mid-work (holding its locks) until the test kills it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(WORKER), mode, str(marker), *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600  # hang guard only
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{mode} ended before it paused: {proc.communicate()[1][-2000:]}")
        time.sleep(0.05)
    return proc


def _one_line(code, err, words):
    lines = message_lines(err)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], (code, err)


TRAIN = ["train", "--device", "cpu", "--precision", "fp32", "--threads", "1", "--hidden", "32", "--heads", "4",
         "--head-hidden", "32",
         "--layers", "1", "--epochs", "3", "--batch-size", "8"]


def test_second_train_on_a_run_in_use_refuses(tmp_path, run_cli):
    make_store(tmp_path / "t16.zarr", view="train16", n=24)
    args = [*TRAIN, "--store", tmp_path / "t16.zarr", "--out", tmp_path / "run"]
    first = _paused("train", args, tmp_path / "marker")
    try:
        before = {p: (tmp_path / "run" / p).read_bytes() for p in tree(tmp_path / "run") if (tmp_path / "run" / p).is_file()}
        _one_line(*run_cli(*args, "--resume")[::2], "another scale train is already writing")
        _one_line(*run_cli(*args)[::2], "already holds a training run")
        after = {p: (tmp_path / "run" / p).read_bytes() for p in tree(tmp_path / "run") if (tmp_path / "run" / p).is_file()}
        assert after == before
    finally:
        first.kill()
        first.wait()
    code, _, err = run_cli(*args, "--resume")  # the lock died with its holder
    assert code == 0, err


def test_resume_with_nothing_to_resume_is_one_line(tmp_path, run_cli):
    make_store(tmp_path / "t16.zarr", view="train16", n=24)
    _one_line(*run_cli(*TRAIN, "--store", tmp_path / "t16.zarr", "--out", tmp_path / "run", "--resume")[::2],
              "nothing to resume")
    assert not (tmp_path / "run").exists()


@pytest.fixture
def videos(tmp_path):
    return make_synthetic_dataset(tmp_path / "videos", SyntheticSpec(videos_per_class=2, frames=16, height=32, width=40))


def _extract(csv, out, *extra):
    return ["extract", "--backbone", "tiny", "--dataset", "csv", "--csv", csv, "--root", csv.parent, "--out", out,
            "--workers", "0", "--threads", "1", "--rows-per-chunk", "2", *extra]


@pytest.mark.parametrize("running, second, words", [
    ([], ["--shard", "0/2"], "(a whole-store run) and --shard 0/2 would write the same blocks"),
    (["--shard", "1/2"], [], "(shards of --shard i/2) and this whole-store run would"),
    (["--shard", "0/2"], ["--shard", "0/3"], "(shards of --shard i/2) and --shard 0/3 would"),
    (["--shard", "0/2"], ["--shard", "0/2"], "(the same shard)"),
])
def test_overlapping_extractions_refuse(tmp_path, videos, run_cli, running, second, words):
    store = tmp_path / "s.zarr"
    first = _paused("extract", _extract(videos, store, *running), tmp_path / "marker")
    try:
        status = (store / "status").exists() and sorted(tree(store / "status"))
        _one_line(*run_cli(*_extract(videos, store, *second))[::2], words)
        assert ((store / "status").exists() and sorted(tree(store / "status"))) == status
    finally:
        first.kill()
        first.wait()


def test_shards_of_one_layout_run_together(tmp_path, videos, run_cli):
    store = tmp_path / "s.zarr"
    first = _paused("extract", _extract(videos, store, "--shard", "0/2"), tmp_path / "marker")
    try:
        code, out, err = run_cli(*_extract(videos, store, "--shard", "1/2"))
        assert code == 0 and "shard 1/2" in out, err
    finally:
        first.kill()
        first.wait()

"""Class: false success on signals. A real SIGINT (to the whole process group, as Ctrl-C sends
it) or SIGTERM (as batch schedulers send it) during extract, train, probe or import exits 130 /
143 with one line saying what was kept and how to continue; what was kept is really there."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from scale_toolkit.demo.synthetic import SyntheticSpec, make_synthetic_dataset
from scale_toolkit.store import DONE, FeatureStore

from .helpers import import_arrays, make_store, message_lines

WORKER = Path(__file__).with_name("cli_worker.py")
REPO = Path(__file__).resolve().parents[2]
SIGNALS = {"SIGINT": (signal.SIGINT, 130), "SIGTERM": (signal.SIGTERM, 143)}


def _interrupt(mode: str, args: list, marker: Path, signame: str) -> tuple[int, str]:
    """Run the CLI through the worker, wait for MARKER (the command is mid-work), send the signal."""
    signum, _ = SIGNALS[signame]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(WORKER), mode, str(marker), *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 600  # hang guard only: a loaded machine may be slow to get there
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{mode} ended before it was interrupted: {proc.communicate()[1][-2000:]}")
        time.sleep(0.05)
    if signum == signal.SIGINT:
        os.killpg(proc.pid, signum)  # Ctrl-C: the whole foreground group, decode workers included
    else:
        proc.send_signal(signum)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def _assert_one_line(code: int, err: str, signame: str, words: str) -> None:
    lines = message_lines(err)
    assert code == SIGNALS[signame][1], (code, err[-3000:])
    assert "Traceback" not in err, err[-3000:]
    assert len(lines) == 1 and lines[0].startswith(f"scale: interrupted by {signame}") and words in lines[0], err


@pytest.mark.parametrize("signame", sorted(SIGNALS))
def test_interrupted_extract_keeps_its_blocks_and_resumes(tmp_path, signame):
    root = tmp_path / "videos"
    csv = make_synthetic_dataset(root, SyntheticSpec(videos_per_class=2, frames=16, height=32, width=40))
    args = ["extract", "--backbone", "tiny", "--dataset", "csv", "--csv", csv, "--root", root, "--out",
            tmp_path / "s.zarr", "--workers", "1", "--threads", "1", "--rows-per-chunk", "2"]
    code, err = _interrupt("extract", args, tmp_path / "marker", signame)
    _assert_one_line(code, err, signame, "rerun the same command")
    kept = int((FeatureStore.open(tmp_path / "s.zarr").status == DONE).sum())
    assert 0 < kept < 12
    res = subprocess.run([sys.executable, "-m", "cli.main", *map(str, args)], cwd=REPO, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert re.search(rf"(\d+) videos extracted now, {kept} already done", res.stdout), res.stdout


@pytest.mark.parametrize("signame", sorted(SIGNALS))
def test_interrupted_train_keeps_its_checkpoint_and_resumes(tmp_path, signame):
    make_store(tmp_path / "t16.zarr", view="train16", n=16)
    args = ["train", "--store", tmp_path / "t16.zarr", "--out", tmp_path / "run", "--epochs", 3, "--batch-size", 8,
            "--device", "cpu", "--precision", "fp32", "--threads", 1, "--hidden", 32, "--heads", 4, "--layers", 1,
            "--head-hidden", 32, "--checkpoint-every", 0]  # after every epoch: the interrupt lands after the first, mid-run
    code, err = _interrupt("train", args, tmp_path / "marker", signame)
    _assert_one_line(code, err, signame, "--resume")
    assert (tmp_path / "run" / "checkpoint_last.pt").exists() and not (tmp_path / "run" / "model.pt").exists()
    res = subprocess.run([sys.executable, "-m", "cli.main", *map(str, args), "--resume"], cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "run" / "model.pt").exists()


@pytest.mark.parametrize("signame", sorted(SIGNALS))
def test_interrupted_probe_writes_no_result(tmp_path, signame):
    make_store(tmp_path / "e15.zarr", view="eval15")
    args = ["probe", "--store", tmp_path / "e15.zarr", "--linear", "--device", "cpu", "--json", tmp_path / "r.json"]
    code, err = _interrupt("probe", args, tmp_path / "marker", signame)
    _assert_one_line(code, err, signame, "no result was written")
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("signame", sorted(SIGNALS))
def test_interrupted_import_leaves_nothing(tmp_path, signame):
    np.savez(tmp_path / "in.npz", **import_arrays())
    before = sorted(p.name for p in tmp_path.iterdir())
    code, err = _interrupt("import", ["import", tmp_path / "in.npz", "--out", tmp_path / "s.zarr"],
                           tmp_path / "marker", signame)
    _assert_one_line(code, err, signame, "nothing was written")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "marker") == before  # no store, no hidden temp

"""Smaller faults: a refused second extraction prints exactly one line (no "Exception ignored ...
Bad file descriptor" from decode workers killed on the way out: the lock is now taken before any
worker is spawned); probe errors are not preceded by a blank line; export -> import keeps
video_meta and the failure reasons."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from scale_toolkit.demo.synthetic import SyntheticSpec, make_synthetic_dataset
from scale_toolkit.store import FeatureStore

from .helpers import make_store

WORKER = Path(__file__).with_name("cli_worker.py")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("small_faults")
    csv = make_synthetic_dataset(d / "videos", SyntheticSpec(videos_per_class=1, frames=16, height=32, width=40))
    (csv.parent / "bad.mp4").write_bytes(b"not a video")
    with open(csv, "a") as f:
        f.write("bad.mp4,red_disc,train\n")
    return csv


def _extract(csv, out, workers="0"):
    return ["extract", "--backbone", "tiny", "--dataset", "csv", "--csv", str(csv), "--root", str(csv.parent),
            "--out", str(out), "--workers", workers, "--threads", "1"]


def test_refused_second_extraction_prints_exactly_one_line(videos, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    marker = tmp_path / "marker"
    first = subprocess.Popen([sys.executable, str(WORKER), "extract", str(marker), *_extract(videos, tmp_path / "s.zarr"),
                              "--rows-per-chunk", "2"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600  # hang guard only
        while not marker.exists():
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()[1][-2000:]
            time.sleep(0.05)
        for _ in range(3):  # the message was rare: try a few times, with decode workers
            res = subprocess.run([sys.executable, "-m", "cli.main", *_extract(videos, tmp_path / "s.zarr", "2"),
                                  "--rows-per-chunk", "2"],
                                 cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
            assert res.returncode == 2 and res.stderr.startswith("error: another extraction"), res.stderr
            assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    finally:
        first.kill()
        first.wait()


@pytest.mark.parametrize("args", [["--store", "{T}/nope.zarr"], ["--store", "{T}/e.zarr", "--knn-temperature", "nan"],
                                  ["--store", "{T}/e.zarr", "--split", "5"]])
def test_probe_errors_start_with_error(tmp_path, run_cli, args):
    make_store(tmp_path / "e.zarr")
    code, _, err = run_cli("probe", "--device", "cpu", *[a.replace("{T}", str(tmp_path)) for a in args])
    assert code == 2 and err.startswith("error:") and err.count("\n") == 1, repr(err)


@pytest.mark.parametrize("fmt", ["npz", "h5"])
def test_export_import_keeps_video_meta_and_failure_reasons(videos, tmp_path, run_cli, fmt):
    assert run_cli(*_extract(videos, tmp_path / "s.zarr"))[0] == 0
    a = FeatureStore.open(tmp_path / "s.zarr")
    assert run_cli("export", tmp_path / "s.zarr", "--out", tmp_path / f"e.{fmt}")[0] == 0
    assert run_cli("import", tmp_path / f"e.{fmt}", "--out", tmp_path / "i.zarr")[0] == 0
    b = FeatureStore.open(tmp_path / "i.zarr")
    meta = a.read(None, ("video_meta",))["video_meta"]
    assert (meta[a.status == 1] > 0).all()  # height, width, frames, fps were recorded
    np.testing.assert_array_equal(b.read(None, ("video_meta",))["video_meta"], meta)
    assert b.reasons == a.reasons and any(a.reasons) and (b.status == a.status).all()

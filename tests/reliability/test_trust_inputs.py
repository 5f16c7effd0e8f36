"""Classes at the edges of what scale trusts, each through the real CLI process:
- `import --overwrite` never replaces a store an extraction is writing (its flock, held by a live process);
- `train --resume --store OTHER` refuses to continue a run on other data (same shape and attributes
  included: the content identity recorded in the checkpoint decides; runs from before it, their config);
- a bad `--device` is a bad device, never a "corrupted model";
- an empty or garbage model / checkpoint file is one line, not a traceback."""
from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from .helpers import REPO, import_arrays, make_model_dir, make_store, message_lines, scale

TRAIN = ["train", "--device", "cpu", "--precision", "fp32", "--threads", "1", "--hidden", "32", "--heads", "4",
         "--head-hidden", "32",
         "--layers", "1", "--batch-size", "8"]


def _one_line(code, out, err, words):
    lines = message_lines(err)
    assert code == 2, (code, out[-1500:], err[-1500:])
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err[-1500:]
    for w in words if isinstance(words, (list, tuple)) else [words]:
        assert w in lines[0], lines[0]
    return lines[0]


def test_import_overwrite_waits_for_no_one_and_refuses_a_store_being_extracted(tmp_path):
    make_store(tmp_path / "s.zarr")
    np.savez(tmp_path / "in.npz", **import_arrays())
    marker = tmp_path / "locked"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time, pathlib\n"
         "from scale_toolkit.store.shard_lock import ShardLock\n"
         "with ShardLock(pathlib.Path(sys.argv[1]), (0, 1)):\n"
         "    pathlib.Path(sys.argv[2]).touch(); time.sleep(600)\n",
         str(tmp_path / "s.zarr"), str(marker)], cwd=REPO)
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        before = (tmp_path / "s.zarr" / "zarr.json").read_bytes()
        _one_line(*scale("import", tmp_path / "in.npz", "--out", tmp_path / "s.zarr", "--overwrite"),
                  "an extraction is writing")
        assert (tmp_path / "s.zarr" / "zarr.json").read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npz", "locked", "s.zarr"]
    finally:
        holder.kill()
        holder.wait()
    code, _, err = scale("import", tmp_path / "in.npz", "--out", tmp_path / "s.zarr", "--overwrite")
    assert code == 0, err  # the holder is gone: its flock died with it


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    w = tmp_path_factory.mktemp("resume")
    make_store(w / "a.zarr", view="train16", seed=0)
    make_store(w / "b.zarr", view="train16", seed=1)  # same shape and attributes, other features
    make_store(w / "c.zarr", view="train16", n=32)
    code, _, err = scale(*TRAIN, "--store", w / "a.zarr", "--out", w / "run", "--epochs", "1")
    assert code == 0, err
    return w


def test_resume_on_other_data_is_refused(trained):
    w = trained
    before = (w / "run" / "checkpoint_last.pt").read_bytes()
    for other in ("b.zarr", "c.zarr"):
        _one_line(*scale(*TRAIN, "--store", w / other, "--out", w / "run", "--epochs", "2", "--resume"),
                  ["cannot resume", "holds other data"])
    assert (w / "run" / "checkpoint_last.pt").read_bytes() == before


def test_resume_of_a_run_without_a_recorded_identity_compares_its_config(trained, tmp_path):
    import shutil

    import torch

    run = tmp_path / "old_run"
    shutil.copytree(trained / "run", run)
    ckpt = torch.load(run / "checkpoint_last.pt", weights_only=True)
    ckpt.pop("store_identity")  # as written by an earlier scale
    torch.save(ckpt, run / "checkpoint_last.pt")
    _one_line(*scale(*TRAIN, "--store", trained / "c.zarr", "--out", run, "--epochs", "2", "--resume"),
              ["cannot resume", "n_train_videos"])
    code, _, err = scale(*TRAIN, "--store", trained / "a.zarr", "--out", run, "--epochs", "2", "--resume")
    assert code == 0, err


def test_resume_on_its_own_store_continues(trained, tmp_path):
    import shutil

    shutil.copytree(trained / "run", tmp_path / "run")
    code, _, err = scale(*TRAIN, "--store", trained / "a.zarr", "--out", tmp_path / "run", "--epochs", "2", "--resume")
    assert code == 0, err


@pytest.mark.parametrize("device, words", [
    ("cuda:7", "--device cuda"), ("meta", "--device 'meta' is not supported"), ("gpu", "unknown --device 'gpu'"),
    ("", "--device must name a device"),
])
def test_a_bad_device_is_reported_as_a_bad_device(tmp_path, device, words):
    make_store(tmp_path / "s.zarr")
    make_model_dir(tmp_path / "m")
    for cmd in (["probe", "--knn", "3"], ["retrieve"]):
        line = _one_line(*scale(*cmd, "--store", tmp_path / "s.zarr", "--model", tmp_path / "m", "--device", device),
                         words)
        assert "corrupt" not in line and "model" not in line.split("--device")[0]


def test_empty_or_garbage_model_and_checkpoint_files_are_one_line(tmp_path, shared_data):
    make_store(tmp_path / "s.zarr")
    for name, blob in (("empty", b""), ("garbage", np.random.default_rng(0).bytes(3000)), ("zip", b"PK\x03\x04junk")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.pt").write_bytes(blob)
        _one_line(*scale("probe", "--knn", "3", "--device", "cpu", "--store", tmp_path / "s.zarr", "--model",
                         tmp_path / name), "cannot read SCALE model")
        (tmp_path / f"{name}.pt").write_bytes(blob)
        (tmp_path / f"{name}.safetensors").write_bytes(blob)
        for ckpt in (f"{name}.pt", f"{name}.safetensors"):
            _one_line(*scale("extract", "--backbone", "videomae-b", "--checkpoint", tmp_path / ckpt, "--workers", "0",
                             "--dataset", "folder", "--root", shared_data / "videos", "--limit", "1",
                             "--out", tmp_path / "x.zarr"), "checkpoint")
            assert not (tmp_path / "x.zarr").exists()


def test_an_eof_inside_a_command_is_an_error_not_an_interrupt():
    """click turns any EOFError escaping a command into Abort, the exception of Ctrl-C: an empty file
    read by a library was reported as "interrupted by SIGINT" (exit 130). It is an error line, exit 2."""
    script = ("from cli.app import app, main\n"
              "@app.command('boom')\n"
              "def boom():\n"
              "    raise EOFError('No data left in file')\n"
              "main(['boom'])\n")
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=600)
    _one_line(res.returncode, res.stdout, res.stderr, ["ended early", "empty or truncated"])
    assert "interrupted" not in res.stderr

"""`scale train` SIGKILLed mid-epoch and mid-checkpoint-write: `--resume` continues from the last
complete checkpoint and ends bit-identical to an uninterrupted run; a half-written temp file is
never loaded (and is cleaned up); a damaged checkpoint_last.pt is refused with one clear line."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from scale_toolkit.model import ScaleConfig
from scale_toolkit.train import TrainConfig, train

from .helpers import make_store, message_lines, tree

WORKER = Path(__file__).with_name("train_worker.py")
ARCH = {"hidden": 32, "heads": 4, "layers": 1, "head_hidden": 32}
EPOCHS = 4


# Checkpoint cadence never changes a run's result (train.run_dir.Checkpointer), only how much a kill loses:
# the runs that are killed write a checkpoint after every epoch, so the kills land between known ones; the
# reference and the resumed runs write theirs at the end only (each checkpoint is ~64 MB, fsynced: issue #30).
AT_THE_END_ONLY = 3600.0


def _config(store: Path, out: Path, checkpoint_every: float = 0) -> TrainConfig:
    return TrainConfig(store=str(store), out=str(out), epochs=EPOCHS, batch_size=8, warmup=1.0, seed=3,
                       device="cpu", precision="fp32", save_every=0, checkpoint_every=checkpoint_every, threads=1,
                       model=ScaleConfig(**ARCH))


def _resume_args(store: Path, out: Path) -> list[str]:
    """The same run as `_config`, through the CLI (its checkpoint at the end)."""
    return ["train", "--store", store, "--out", out, "--epochs", EPOCHS, "--batch-size", 8, "--warmup", 1.0,
            "--seed", 3, "--device", "cpu", "--precision", "fp32", "--save-every", 0,
            "--checkpoint-every", AT_THE_END_ONLY, "--threads", 1, "--hidden", 32, "--heads", 4, "--layers", 1,
            "--head-hidden", 32, "--resume"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("train_ref")
    make_store(d / "train16.zarr", view="train16", n=32)
    train(_config(d / "train16.zarr", d / "ref", checkpoint_every=AT_THE_END_ONLY))
    return d / "train16.zarr", d / "ref"


def _spawn(mode: str, cfg: TrainConfig, at: int) -> subprocess.Popen:
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen([sys.executable, str(WORKER), mode, json.dumps(cfg.to_dict()), str(at)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 900.0) -> None:
    deadline = time.monotonic() + timeout  # hang guard only
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the worker ended before {path.name}: {proc.stderr.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()


def _assert_same_run(a: Path, b: Path) -> None:
    ca = torch.load(a / "checkpoint_last.pt", weights_only=True)
    cb = torch.load(b / "checkpoint_last.pt", weights_only=True)
    assert ca["epoch"] == cb["epoch"] == EPOCHS
    for k, t in ca["state_dict"].items():
        assert torch.equal(t, cb["state_dict"][k]), k
    for k, st in ca["optimizer"]["state"].items():
        for name, t in st.items():
            assert torch.equal(t, cb["optimizer"]["state"][k][name]), (k, name)
    ma = torch.load(a / "model.pt", weights_only=True)["state_dict"]
    mb = torch.load(b / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(ma[k], mb[k]) for k in ma)
    la = [json.loads(x)["loss"] for x in (a / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x)["loss"] for x in (b / "metrics.jsonl").read_text().splitlines()]
    assert la == lb and len(la) == EPOCHS


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bit_identical(reference, tmp_path, run_cli):
    store, ref = reference
    steps_per_epoch = 2  # 21 train videos, batch 8
    rng = np.random.default_rng(11)
    # a seeded step strictly inside an epoch after the first checkpoint (epochs 2..3 of 4)
    kill_step = int(rng.choice([s for s in range(steps_per_epoch + 1, (EPOCHS - 1) * steps_per_epoch + 1)
                                if s % steps_per_epoch]))
    run = tmp_path / "run"
    proc = _spawn("pause-step", _config(store, run), kill_step)
    _wait_for(run / f".step-{kill_step}", proc)  # the worker waits there: the kill lands after exactly that step
    _kill(proc)
    last = torch.load(run / "checkpoint_last.pt", weights_only=True)
    assert last["epoch"] == (kill_step - 1) // steps_per_epoch  # the last complete epoch, not the one cut
    with open(run / "metrics.jsonl", "a") as f:  # as if the kill had cut a metrics line in half
        f.write('{"epoch": 9, "loss": 0.12')
    code, out, err = run_cli(*_resume_args(store, run))
    assert code == 0, err
    assert json.loads((run / "summary.json").read_text())["resumed_from_epoch"] == last["epoch"]
    _assert_same_run(ref, run)


@pytest.mark.slow
def test_sigkill_while_checkpoint_is_written_leaves_previous_checkpoint(reference, tmp_path, run_cli):
    store, ref = reference
    run = tmp_path / "run"
    proc = _spawn("pause-save", _config(store, run), 2)
    _wait_for(run / ".half-written-2", proc)  # half of epoch 2's checkpoint is in its temp file; the worker waits
    _kill(proc)
    temps = sorted(run.glob(".checkpoint_last.pt.*.tmp"))
    assert len(temps) == 1, "the kill should leave exactly one half-written temp file"
    with pytest.raises(Exception):  # it is truncated: proof that it must never be loaded
        torch.load(temps[0], weights_only=True)
    assert torch.load(run / "checkpoint_last.pt", weights_only=True)["epoch"] == 1  # untouched, complete
    code, out, err = run_cli(*_resume_args(store, run))
    assert code == 0, err
    assert json.loads((run / "summary.json").read_text())["resumed_from_epoch"] == 1
    assert not list(run.glob(".checkpoint_last.pt.*.tmp")), "resume should remove the dead temp file"
    _assert_same_run(ref, run)


def test_damaged_checkpoint_is_refused_in_one_line_and_kept(reference, tmp_path, run_cli):
    store, ref = reference
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    shutil.copy(run / "checkpoint_last.pt", run / "checkpoint_epoch0002.pt")  # a kept snapshot (any complete checkpoint)
    blob = (run / "checkpoint_last.pt").read_bytes()
    for damaged in (blob[: len(blob) // 3], b"\x00" * 1000, blob[:100] + b"\xff" * 64 + blob[164:]):
        (run / "checkpoint_last.pt").write_bytes(damaged)
        before = {p: (run / p).read_bytes() for p in tree(run) if (run / p).is_file()}
        code, out, err = run_cli(*_resume_args(store, run))
        lines = message_lines(err)
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: cannot resume"), err
        assert "checkpoint_epoch0002.pt" in lines[0] and "Traceback" not in err
        assert {p: (run / p).read_bytes() for p in tree(run) if (run / p).is_file()} == before, "nothing may change"
    # following the advice works: the snapshot becomes the last checkpoint and the run resumes from it
    shutil.copy(run / "checkpoint_epoch0002.pt", run / "checkpoint_last.pt")
    code, out, err = run_cli(*_resume_args(store, run))
    assert code == 0, err

"""Extraction SIGKILLed at seeded random points: every rerun resumes, nothing is lost or duplicated,
no row is ever marked done with wrong data, and the final store equals an uninterrupted run bit for bit."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from scale_toolkit.demo.synthetic import SyntheticSpec, make_synthetic_dataset
from scale_toolkit.store import DONE, PENDING, FeatureStore

ARRAYS = ("features", "coords", "boxes", "flip", "video_meta", "status")
ROW_DATA = ("features", "coords", "boxes", "flip", "video_meta")
SEED = 2026  # kill points at about 21%, 63% and 47% of the extraction time
TRIALS = 3


def _cmd(root, csv, out):
    return [sys.executable, "-m", "cli.main", "extract", "--backbone", "tiny", "--dataset", "csv", "--csv", str(csv),
            "--root", str(root), "--view", "train16", "--out", str(out), "--workers", "0", "--threads", "1"]


def _check_partial(store_path, ref: dict, ref_ids: list[str]) -> int:
    """After a kill: same rows as the reference, every row pending or done, every done row exact."""
    fs = FeatureStore.open(store_path)
    assert fs.video_ids == ref_ids, "rows lost, duplicated or reordered"
    data = fs.read(None, names=ARRAYS)
    status = data["status"]
    assert np.isin(status, (PENDING, DONE)).all(), f"unexpected status values {np.unique(status)}"
    done = status == DONE
    for name in ROW_DATA:
        np.testing.assert_array_equal(data[name][done], ref[name][done], err_msg=f"a done row holds wrong {name}")
    return int(done.sum())


def _all_done(store) -> bool:
    try:
        return bool((FeatureStore.open(store).status == DONE).all())
    except Exception:  # caught mid-write of the status chunk
        return False


def _wait_for(store, proc) -> None:
    """Until the store appears (atomically, right before the first block starts); 120 s hang guard."""
    deadline = time.monotonic() + 120
    while not store.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)


@pytest.mark.slow
def test_random_sigkills_then_reruns_equal_uninterrupted(tmp_path):
    root = tmp_path / "videos"
    csv = make_synthetic_dataset(root, SyntheticSpec(videos_per_class=2, frames=24, height=64, width=80, test_fraction=0.5))
    env = {**os.environ, "SCALE_ROWS_PER_CHUNK": "2"}  # 12 videos -> 6 blocks of 2
    proc = subprocess.Popen(_cmd(root, csv, tmp_path / "ref.zarr"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for(tmp_path / "ref.zarr", proc)
    t0 = time.monotonic()
    while proc.poll() is None and not _all_done(tmp_path / "ref.zarr") and time.monotonic() < t0 + 120:
        time.sleep(0.02)
    work_s = time.monotonic() - t0  # from the store's appearance to its last block: the extraction proper
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]
    ref_fs = FeatureStore.open(tmp_path / "ref.zarr")
    ref, ref_ids = ref_fs.read(None, names=ARRAYS), ref_fs.video_ids
    assert (ref["status"] == DONE).all()

    rng = np.random.default_rng(SEED)
    interrupted = 0
    for trial in range(TRIALS):
        out = tmp_path / f"trial{trial}.zarr"
        proc = subprocess.Popen(_cmd(root, csv, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for(out, proc)
        time.sleep(float(rng.uniform(0.05, 0.95)) * work_s)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done_before = _check_partial(out, ref, ref_ids) if out.exists() else 0
        interrupted += done_before < len(ref_ids)
        res = subprocess.run(_cmd(root, csv, out), env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        m = re.search(r"(\d+) videos extracted now, (\d+) already done", res.stdout)
        assert m, res.stdout
        now, already = int(m.group(1)), int(m.group(2))
        assert already == done_before, "the rerun did not resume from what the killed run had written"
        assert now + already == len(ref_ids), "the rerun redid finished videos or skipped pending ones"
        final = FeatureStore.open(out).read(None, names=ARRAYS)
        for name in ARRAYS:
            np.testing.assert_array_equal(final[name], ref[name], err_msg=f"trial {trial}: {name}")
        assert FeatureStore.open(out).video_ids == ref_ids and FeatureStore.open(out).reasons == ref_fs.reasons
        assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(f".{out.name}.")], "temp folders left"
        print(f"trial {trial}: killed with {done_before}/{len(ref_ids)} rows done; rerun did {now}")
    assert interrupted >= 1, "every kill landed after the run had finished; nothing was tested"


def _children(pid: int) -> list[int]:
    res = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in res.stdout.split()]


@pytest.mark.slow
def test_sigkilled_extraction_leaves_no_orphaned_decode_workers(tmp_path):
    """Decode workers of a SIGKILLed `scale extract --workers 1` exit by themselves (they used to
    live on forever, ~360 MB each, blocked on a task queue that never closes)."""
    root = tmp_path / "videos"
    csv = make_synthetic_dataset(root, SyntheticSpec(videos_per_class=4, frames=24, height=64, width=80))
    cmd = _cmd(root, csv, tmp_path / "s.zarr")
    cmd[cmd.index("--workers") + 1] = "1"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120  # hang guard only
    kids: list[int] = []
    while proc.poll() is None and time.monotonic() < deadline:
        kids = _children(proc.pid)
        if (tmp_path / "s.zarr").exists() and len(kids) >= 2:  # the decode worker (and mp's resource tracker)
            break
        time.sleep(0.05)
    assert proc.poll() is None and kids, "the extraction ended before its workers could be seen"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 60  # workers poll for their parent once a second (plus torch import time)
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{k}") and _state(k) != "Z" for k in kids):
        time.sleep(0.2)
    left = [k for k in kids if os.path.exists(f"/proc/{k}") and _state(k) != "Z"]
    for k in left:  # do not leak them into the rest of the test session
        os.kill(k, signal.SIGKILL)
    assert not left, f"orphaned decode workers still running: {left}"


def _state(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"

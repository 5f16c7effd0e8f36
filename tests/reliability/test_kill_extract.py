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
SEED = 2026  # seeded kill points, counted in written rows (not in seconds: a loaded machine is slower)
TRIALS = 3
HANG_GUARD_S = 900  # only against a hung child; never reached on a healthy (even a loaded) machine


def _cmd(root, csv, out, *extra):
    return [sys.executable, "-m", "cli.main", "extract", "--backbone", "tiny", "--dataset", "csv", "--csv", str(csv),
            "--root", str(root), "--view", "train16", "--out", str(out), "--workers", "0", "--threads", "1", *extra]


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


def _done_rows(store) -> int:
    try:
        return int((FeatureStore.open(store).status == DONE).sum())
    except Exception:  # not there yet, or caught mid-write of the status chunk
        return 0


def _wait_until(proc, ready) -> None:
    """Poll until `ready()` or the child exits; the deadline is a hang guard only."""
    deadline = time.monotonic() + HANG_GUARD_S
    while not ready() and proc.poll() is None:
        assert time.monotonic() < deadline, "the extraction hung"
        time.sleep(0.005)


@pytest.mark.slow
def test_random_sigkills_then_reruns_equal_uninterrupted(tmp_path):
    root = tmp_path / "videos"
    csv = make_synthetic_dataset(root, SyntheticSpec(videos_per_class=2, frames=24, height=64, width=80, test_fraction=0.5))
    small = ("--rows-per-chunk", "2")  # 12 videos -> 6 blocks of 2
    res = subprocess.run(_cmd(root, csv, tmp_path / "ref.zarr", *small), capture_output=True, text=True,
                         timeout=HANG_GUARD_S)
    assert res.returncode == 0, res.stderr[-2000:]
    ref_fs = FeatureStore.open(tmp_path / "ref.zarr")
    ref, ref_ids = ref_fs.read(None, names=ARRAYS), ref_fs.video_ids
    assert (ref["status"] == DONE).all()

    rng = np.random.default_rng(SEED)
    interrupted = attempts = 0
    while interrupted < TRIALS and attempts < 3 * TRIALS:  # a kill that lands after the end is retried
        out = tmp_path / f"trial{attempts}.zarr"
        attempts += 1
        # kill once at least `target` rows are done: the kill then lands at an arbitrary moment of a
        # later block (decoding, embedding or writing it), wherever the machine's load puts it
        target = int(rng.integers(1, len(ref_ids) - 2))
        proc = subprocess.Popen(_cmd(root, csv, out, *small), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_until(proc, lambda out=out, target=target: _done_rows(out) >= target)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done_before = _check_partial(out, ref, ref_ids) if out.exists() else 0
        if done_before == len(ref_ids):
            continue
        interrupted += 1
        res = subprocess.run(_cmd(root, csv, out, *small), capture_output=True, text=True, timeout=HANG_GUARD_S)
        assert res.returncode == 0, res.stderr[-2000:]
        m = re.search(r"(\d+) videos extracted now, (\d+) already done", res.stdout)
        assert m, res.stdout
        now, already = int(m.group(1)), int(m.group(2))
        assert already == done_before, "the rerun did not resume from what the killed run had written"
        assert now + already == len(ref_ids), "the rerun redid finished videos or skipped pending ones"
        final = FeatureStore.open(out).read(None, names=ARRAYS)
        for name in ARRAYS:
            np.testing.assert_array_equal(final[name], ref[name], err_msg=f"{out.name}: {name}")
        assert FeatureStore.open(out).video_ids == ref_ids and FeatureStore.open(out).reasons == ref_fs.reasons
        assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(f".{out.name}.")], "temp folders left"
        print(f"{out.name}: killed with {done_before}/{len(ref_ids)} rows done; rerun did {now}")
    assert interrupted == TRIALS, "the kills kept landing after the run had finished; nothing was tested"


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
    deadline = time.monotonic() + HANG_GUARD_S  # hang guard only
    kids: list[int] = []
    while proc.poll() is None and time.monotonic() < deadline:
        kids = _children(proc.pid)
        if (tmp_path / "s.zarr").exists() and len(kids) >= 2:  # the decode worker (and mp's resource tracker)
            break
        time.sleep(0.05)
    assert proc.poll() is None and kids, "the extraction ended before its workers could be seen"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 300  # hang guard: workers poll for their parent once a second (plus torch import)
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

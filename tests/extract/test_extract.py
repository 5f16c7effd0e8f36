import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from scale_toolkit.backbones import load_backbone
from scale_toolkit.backbones.inference import embed_clips
from scale_toolkit.extract import ExtractConfig, run_extraction
from scale_toolkit.extract.pipeline import BlockEmbedder
from scale_toolkit.precision import resolve_precision
from scale_toolkit.store import DONE, FAILED, FeatureStore
from scale_toolkit.store.shard_lock import ShardLock

ARRAYS = ("features", "coords", "boxes", "flip", "video_meta", "status")


def _cfg(root, csv, out, **kw):
    base = dict(backbone="tiny", dataset="csv", csv=csv, root=root, view="train16", out=out, workers=0, rows_per_chunk=2,
                threads=1)
    base.update(kw)
    return ExtractConfig(**base)


def _same_store(a: Path, b: Path) -> None:
    sa, sb = FeatureStore.open(a), FeatureStore.open(b)
    ra, rb = sa.read(None, names=ARRAYS), sb.read(None, names=ARRAYS)
    for name in ARRAYS:
        np.testing.assert_array_equal(ra[name], rb[name], err_msg=name)
    assert sa.video_ids == sb.video_ids and sa.reasons == sb.reasons


def test_extract_csv_dataset_all_rows(tiny_dataset, tmp_path):
    root, csv = tiny_dataset
    summary = run_extraction(_cfg(root, csv, tmp_path / "s.zarr"))
    fs = FeatureStore.open(tmp_path / "s.zarr")
    assert summary.done_now == 12 and not summary.failed_now
    assert (fs.status == DONE).all()
    assert fs.n_clips == 16 and fs.feature_dim == 64
    data = fs.read(None, names=("features", "coords", "boxes", "video_meta"))
    assert np.isfinite(data["features"].astype(np.float32)).all()
    # coords are the boxes normalised by the source size (Eq. 5 order y, x, t)
    h, w, t = data["video_meta"][:, 0], data["video_meta"][:, 1], data["video_meta"][:, 2]
    size = np.stack([h, w, t, h, w, t], axis=1)[:, None, :]
    np.testing.assert_allclose(data["coords"], data["boxes"] / size, atol=1e-6)
    assert fs.attrs["backbone_name"] == "tiny" and fs.attrs["view"]["name"] == "train16"
    chosen = resolve_precision("auto", "cpu")  # the requested precision, what it resolved to and why
    recorded = (fs.attrs["precision"], fs.attrs["precision_resolved"], fs.attrs["precision_reason"])
    assert recorded == ("auto", chosen.value, chosen.reason)
    assert summary.precision == chosen.describe()
    # rerun: nothing left to do
    again = run_extraction(_cfg(root, csv, tmp_path / "s.zarr"))
    assert again.done_now == 0 and again.already_done == 12


def test_block_embedder_equals_one_pass_over_the_block():
    """Clips arrive a video at a time and batches run early, yet every batch is the one a
    single pass over the whole block cuts: features are bit-identical."""
    import torch

    module = load_backbone("tiny").module
    videos = [np.random.default_rng(i).standard_normal((5, 3, 8, 64, 64), dtype=np.float32) for i in range(3)]
    embedder = BlockEmbedder(module, batch_size=4, precision="fp32")
    for row, clips in zip((7, 8, 9), videos):
        embedder.add(row, clips)
    assert len(embedder.features) == 3  # a full batch of 4 ran after each video, not all at the end
    rows, feats = embedder.finish()
    whole = embed_clips(module, torch.from_numpy(np.concatenate(videos)), 4, "fp32").numpy()
    assert rows == [7, 8, 9] and feats.shape == (3, 5, whole.shape[1])
    np.testing.assert_array_equal(feats.reshape(15, -1), whole)
    assert embedder.finish()[0] == []  # reset for the next block


def test_worker_processes_give_the_same_store(tiny_dataset, tmp_path):
    root, csv = tiny_dataset
    run_extraction(_cfg(root, csv, tmp_path / "a.zarr", workers=0))
    run_extraction(_cfg(root, csv, tmp_path / "b.zarr", workers=2))
    _same_store(tmp_path / "a.zarr", tmp_path / "b.zarr")


def _extract_cmd(root, csv, out, *extra):
    return [sys.executable, "-m", "cli.main", "extract", "--backbone", "tiny", "--dataset", "csv", "--csv", str(csv),
            "--root", str(root), "--view", "train16", "--out", str(out), "--workers", "0", "--threads", "1",
            "--rows-per-chunk", "2", *extra]


@pytest.mark.slow
def test_sigkill_then_rerun_equals_uninterrupted(tiny_dataset, tmp_path):
    root, csv = tiny_dataset
    subprocess.run(_extract_cmd(root, csv, tmp_path / "ref.zarr"), check=True, capture_output=True)
    killed = tmp_path / "killed.zarr"
    proc = subprocess.Popen(_extract_cmd(root, csv, killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 900  # hang guard only: a loaded machine may be slow to get there
    while time.monotonic() < deadline and proc.poll() is None:  # kill once some but not all blocks are written
        try:
            done = int((FeatureStore.open(killed).status == DONE).sum())
        except Exception:
            done = 0
        if 0 < done < 12:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = FeatureStore.open(killed)
    assert (partial.status != DONE).any(), "the run finished before it could be killed"
    subprocess.run(_extract_cmd(root, csv, killed), check=True, capture_output=True)
    _same_store(tmp_path / "ref.zarr", killed)


@pytest.mark.slow
def test_two_shards_equal_single_process(tiny_dataset, tmp_path):
    root, csv = tiny_dataset
    subprocess.run(_extract_cmd(root, csv, tmp_path / "one.zarr"), check=True, capture_output=True)
    shards = [subprocess.Popen(_extract_cmd(root, csv, tmp_path / "two.zarr", "--shard", f"{i}/2"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]
    for p in shards:
        _, err = p.communicate()
        assert p.returncode == 0, err.decode()
    _same_store(tmp_path / "one.zarr", tmp_path / "two.zarr")


@pytest.mark.slow
def test_torchrun_ranks_shard_automatically(tiny_dataset, tmp_path):
    root, csv = tiny_dataset
    subprocess.run(_extract_cmd(root, csv, tmp_path / "one.zarr"), check=True, capture_output=True)
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--nproc-per-node", "2", "--master-port", "29631", "-m", "cli.main",
           *_extract_cmd(root, csv, tmp_path / "ddp.zarr")[3:]]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    _same_store(tmp_path / "one.zarr", tmp_path / "ddp.zarr")


def test_refuses_other_backbone_or_view(tiny_dataset, tmp_path, run_cli):
    root, csv = tiny_dataset
    run_extraction(_cfg(root, csv, tmp_path / "s.zarr", limit=2))
    base = ["extract", "--dataset", "csv", "--csv", csv, "--root", root, "--out", tmp_path / "s.zarr", "--limit", "2",
            "--workers", "0"]
    code, _, err = run_cli(*base, "--backbone", "tiny", "--view", "eval15")
    assert code == 2 and "refusing to mix" in err
    code, _, err = run_cli(*base, "--backbone", "tiny", "--view", "train16", "--seed", "3")
    assert code == 2 and "seed" in err


def test_second_extraction_on_same_store_refuses(tiny_dataset, tmp_path, run_cli):
    root, csv = tiny_dataset
    run_extraction(_cfg(root, csv, tmp_path / "s.zarr", limit=2))
    with ShardLock(tmp_path / "s.zarr", (0, 1)):
        code, _, err = run_cli("extract", "--backbone", "tiny", "--dataset", "csv", "--csv", csv, "--root", root,
                               "--view", "train16", "--out", tmp_path / "s.zarr", "--limit", "2", "--workers", "0")
    assert code == 2 and "another extraction" in err


def test_bad_input_is_one_line_and_writes_nothing(tiny_dataset, tmp_path, run_cli):
    root, csv = tiny_dataset
    common = ["--dataset", "csv", "--csv", csv, "--root", root, "--workers", "0"]
    cases = [
        (["--backbone", "no-such-net", "--out", tmp_path / "a.zarr"], "unknown backbone"),
        (["--backbone", "videomae-b", "--out", tmp_path / "a.zarr"], "needs --checkpoint"),
        (["--backbone", "tiny", "--out", tmp_path / "a.zarr", "--batch-size", "0"], "--batch-size"),
        (["--backbone", "tiny", "--out", tmp_path / "a.zarr", "--view", "train8"], "--view"),
        (["--backbone", "tiny", "--out", tmp_path / "missing-dir" / "a.zarr"], "does not exist"),
        (["--backbone", "tiny", "--out", tmp_path / "a.zarr", "--checkpoint", tmp_path / "nope.pt"], "checkpoint not found"),
    ]
    for args, message in cases:
        code, _, err = run_cli("extract", *common, *args)
        assert code == 2, (args, err)
        assert message in err and len(err.strip().splitlines()) == 1, (args, err)
    assert not (tmp_path / "a.zarr").exists()


def test_read_only_output_directory(tiny_dataset, tmp_path, run_cli):
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    root, csv = tiny_dataset
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    code, _, err = run_cli("extract", "--backbone", "tiny", "--dataset", "csv", "--csv", csv, "--root", root,
                           "--out", ro / "s.zarr")
    assert code == 2 and "cannot write" in err


def test_real_clips_official_layouts(shared_data, tmp_path):
    ucf = run_extraction(ExtractConfig(backbone="tiny", dataset="ucf101", root=shared_data / "videos/ucf101-mini",
                                       splits=shared_data / "splits/ucf101", view="eval15", out=tmp_path / "u.zarr", workers=1))
    fs = FeatureStore.open(tmp_path / "u.zarr")
    assert ucf.done_now == 4 and not ucf.failed_now
    assert fs.video_ids[0].endswith("v_ApplyEyeMakeup_g01_c01.avi")
    names = [fs.class_names[label] for label in fs.labels]
    assert names == ["ApplyEyeMakeup", "BaseballPitch", "HeadMassage", "Shotput"]
    assert list(fs.splits[0]) == [2, 2, 2, 2]  # all four are split-1 test videos
    meta = fs.read(None, names=("video_meta",))["video_meta"]
    np.testing.assert_array_equal(meta[:, 2], [164, 107, 307, 130])  # decoded frame counts
    assert (meta[:, :2] == [240, 320]).all()
    boxes = fs.read(None, names=("boxes",))["boxes"]
    assert (boxes[:, :, 3] <= 240).all() and (boxes[:, :, 4] <= 320).all()
    assert (boxes[..., 5] <= meta[:, 2, None]).all()

    hmdb = run_extraction(ExtractConfig(backbone="tiny", dataset="hmdb51", root=shared_data / "videos/hmdb51-mini",
                                        splits=shared_data / "splits/hmdb51", view="train16", out=tmp_path / "h.zarr", workers=1))
    assert hmdb.done_now == 4 and len(hmdb.missing) > 6000
    fs = FeatureStore.open(tmp_path / "h.zarr")
    assert len(fs.class_names) == 51 and fs.class_names.index("sword") < fs.class_names.index("sword_exercise")
    assert [fs.class_names[label] for label in fs.labels] == ["brush_hair", "punch", "shoot_bow", "swing_baseball"]


def test_corrupted_file_is_recorded_and_run_continues(shared_data, tmp_path):
    root = tmp_path / "videos"
    (root / "broken").mkdir(parents=True)
    (root / "ok").mkdir()
    (root / "broken" / "corrupted.mp4").write_bytes((shared_data / "videos/misc/corrupted.mp4").read_bytes())
    (root / "broken" / "empty.avi").write_bytes(b"")
    src = shared_data / "videos/ucf101-mini/UCF-101/Shotput/v_Shotput_g05_c02.avi"
    (root / "ok" / "name with spaces [1] é.avi").write_bytes(src.read_bytes())
    summary = run_extraction(ExtractConfig(backbone="tiny", dataset="folder", root=root, out=tmp_path / "s.zarr", workers=1))
    fs = FeatureStore.open(tmp_path / "s.zarr")
    assert summary.done_now == 1
    assert set(summary.failed_now) == {"broken/corrupted.mp4", "broken/empty.avi"}
    assert all(summary.failed_now.values())
    assert list(fs.status) == [FAILED, FAILED, DONE]


def test_disk_full_is_one_line_and_leaves_the_block_pending(tiny_dataset, tmp_path, run_cli, monkeypatch):
    import errno

    root, csv = tiny_dataset
    calls = {"n": 0}
    original = FeatureStore.write_block

    def flaky(self, block, results):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, block, results)

    monkeypatch.setattr(FeatureStore, "write_block", flaky)
    code, _, err = run_cli("extract", "--backbone", "tiny", "--dataset", "csv", "--csv", csv, "--root", root,
                           "--view", "train16", "--out", tmp_path / "s.zarr", "--workers", "0", "--rows-per-chunk", "4")
    lines = err.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "No space left" in errors[0] and lines[-1] == errors[0]
    assert "Traceback" not in err
    fs = FeatureStore.open(tmp_path / "s.zarr")
    assert list(fs.status[:4]) == [DONE] * 4 and (fs.status[4:] == 0).all()
    monkeypatch.setattr(FeatureStore, "write_block", original)
    assert run_cli("extract", "--backbone", "tiny", "--dataset", "csv", "--csv", csv, "--root", root,
                   "--view", "train16", "--out", tmp_path / "s.zarr", "--workers", "0")[0] == 0
    assert (FeatureStore.open(tmp_path / "s.zarr").status == DONE).all()


def test_retry_failed_only_when_asked(tiny_dataset, tmp_path):
    root, _ = tiny_dataset
    videos = tmp_path / "videos" / "c"
    videos.mkdir(parents=True)
    good = next(root.rglob("*.mp4"))
    (videos / "a.mp4").write_bytes(good.read_bytes())
    (videos / "b.mp4").write_bytes(b"not a video")
    cfg = dict(backbone="tiny", dataset="folder", root=tmp_path / "videos", out=tmp_path / "s.zarr", workers=0)
    first = run_extraction(ExtractConfig(**cfg))
    assert list(first.failed_now) == ["c/b.mp4"]
    (videos / "b.mp4").write_bytes(good.read_bytes())  # the user repaired the file
    assert run_extraction(ExtractConfig(**cfg)).done_now == 0
    assert FeatureStore.open(tmp_path / "s.zarr").status[1] == FAILED
    again = run_extraction(ExtractConfig(**cfg, retry_failed=True))
    assert again.done_now == 1 and not again.failed_now
    fs = FeatureStore.open(tmp_path / "s.zarr")
    assert (fs.status == DONE).all() and fs.reasons == ["", ""]
    np.testing.assert_array_equal(fs.read([0])["features"], fs.read([1])["features"])  # same file, same clips


def test_progress_in_a_log_counts_videos_written_to_the_store(tiny_dataset, tmp_path):
    """Not a terminal: plain lines; the count is of videos embedded and written, not decoded."""
    import shutil

    root, csv = tiny_dataset
    scale = shutil.which("scale", path=os.path.dirname(sys.executable)) or "scale"
    with open(tmp_path / "err.log", "w") as err:
        done = subprocess.run([scale, "extract", "--backbone", "tiny", "--dataset", "csv", "--csv", str(csv), "--root",
                               str(root), "--view", "eval15", "--out", str(tmp_path / "s.zarr"), "--workers", "0",
                               "--rows-per-chunk", "4"],  # 3 blocks of 4 videos
                              stdout=subprocess.PIPE, stderr=err, text=True, timeout=600)
    assert done.returncode == 0
    lines = [ln for ln in (tmp_path / "err.log").read_text().splitlines() if " extract: " in ln]
    assert lines and "extract: 12/12 (100%)" in lines[-1] and "decoded 12" in lines[-1]
    written = [int(re.search(r"extract: (\d+)/12", ln).group(1)) for ln in lines]
    assert all(n % 4 == 0 for n in written)  # only whole written blocks are counted

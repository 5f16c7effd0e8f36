"""Every kind of bad video ends as features or a recorded failure with a reason: never a crash or a hang."""
import fractions
import os

import av
import numpy as np
import pytest

from scale_toolkit.demo.synthetic import write_video
from scale_toolkit.extract import ExtractConfig, run_extraction
from scale_toolkit.extract.prepare import ViewRecipe
from scale_toolkit.extract.workers import DecodePool
from scale_toolkit.store import DONE, FAILED, FeatureStore

from . import _decoders


def _frames(n, h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (n, h, w, 3), dtype=np.uint8)


def _write_vfr(path, n=30):
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.time_base = fractions.Fraction(1, 1000)
        pts = 0
        for i, img in enumerate(_frames(n)):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = pts, fractions.Fraction(1, 1000)
            pts += 20 if i % 3 else 90  # irregular frame spacing
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _write_audio_only(path):
    with av.open(str(path), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 8000), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.fixture(scope="module")
def bad_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    good, bad = root / "good", root / "bad"
    good.mkdir()
    bad.mkdir()
    write_video(good / "normal.mp4", _frames(40), 25)
    write_video(good / "one frame.mp4", _frames(1), 25)
    write_video(good / "very short [3 frames].mp4", _frames(3), 25)
    write_video(good / "odd fps 7.5.mp4", _frames(20), 7.5)
    write_video(good / "ünïcødé (1).mp4", _frames(20), 29.97)
    write_video(good / "huge.mp4", _frames(2, 2160, 3840), 25)
    _write_vfr(good / "variable rate.mkv")
    (bad / "zero.mp4").write_bytes(b"")
    data = (good / "normal.mp4").read_bytes()
    (bad / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (bad / "garbage.avi").write_bytes(os.urandom(5000))
    (bad / "folder.mp4").mkdir()
    os.symlink("loop.mp4", bad / "loop.mp4")
    _write_audio_only(bad / "audio only.mkv")
    return root


def test_each_bad_video_has_features_or_a_reason(bad_root, tmp_path):
    # no video here hangs: a timeout far above any decode, so a loaded machine cannot fail a good video
    summary = run_extraction(ExtractConfig(backbone="tiny", dataset="folder", root=bad_root, out=tmp_path / "s.zarr",
                                           workers=1, timeout_s=900))
    fs = FeatureStore.open(tmp_path / "s.zarr")
    status = dict(zip(fs.video_ids, fs.status))
    reasons = dict(zip(fs.video_ids, fs.reasons))
    for vid in status:
        if vid.startswith("good/"):
            assert status[vid] == DONE, (vid, reasons[vid])
        elif vid != "bad/truncated.mp4":
            assert status[vid] == FAILED and reasons[vid], vid
    # a truncated file is either cut short cleanly (features of what decodes) or rejected with a reason
    assert status["bad/truncated.mp4"] == DONE or reasons["bad/truncated.mp4"]
    assert (fs.status != 0).all()
    assert summary.done_now + len(summary.failed_now) == fs.n_videos
    feats = fs.read(np.flatnonzero(fs.status == DONE))["features"].astype(np.float32)
    assert np.isfinite(feats).all()
    one = fs.video_ids.index("good/one frame.mp4")
    boxes = fs.read([one], names=("boxes",))["boxes"][0]
    assert (boxes[:, 2] == 0).all() and (boxes[:, 5] == 1).all()  # the true span: one frame


RECIPE = ViewRecipe("eval15", 8, 2, 64, (0.45,) * 3, (0.225,) * 3, 0, "auto")


def test_hanging_decoder_times_out_and_others_continue():
    tasks = [(0, "a", "a"), (1, "b", "hang"), (2, "c", "c"), (3, "d", "d")]
    # 5 s: far above what the other (instant) tasks take on a loaded machine (the workers' start-up is
    # outside the clock, and the stand-ins' module imports nothing heavy), so only the hang times out;
    # the outcome is asserted, not the duration
    with DecodePool(workers=2, timeout_s=5, prepare=_decoders.sleepy) as pool:
        results = dict(pool.run(tasks, RECIPE))
    assert "timed out" in results[1]["error"]
    assert [results[i] for i in (0, 2, 3)] == [{"ok": "a"}, {"ok": "c"}, {"ok": "d"}]


def test_crashing_decoder_costs_one_video():
    tasks = [(0, "a", "a"), (1, "b", "crash"), (2, "c", "c"), (3, "d", "d")]
    with DecodePool(workers=2, timeout_s=600, prepare=_decoders.crashing) as pool:
        results = dict(pool.run(tasks, RECIPE))
    assert "crashed" in results[1]["error"]
    assert [results[i] for i in (0, 2, 3)] == [{"ok": "a"}, {"ok": "c"}, {"ok": "d"}]

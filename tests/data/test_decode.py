"""Decoding: synthetic videos written with PyAV, the real UCF101/HMDB51 clips and bad files."""
from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest

from scale_toolkit.data.clips import all_frame_indices, clip_frames, plan_clips
from scale_toolkit.data.decode import VideoDecodeError, probe_video, read_frames
from scale_toolkit.errors import ScaleError
from tests.data.conftest import frame_numbers

BACKENDS = ["decord", "pyav"]

UCF_COUNTS = {
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi": 164,
    "BaseballPitch/v_BaseballPitch_g01_c01.avi": 107,
    "HeadMassage/v_HeadMassage_g02_c05.avi": 307,
    "Shotput/v_Shotput_g05_c02.avi": 130,
}


def _reference_frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


@pytest.mark.parametrize("backend", BACKENDS)
def test_probe_synthetic_videos(videos, backend):
    info = probe_video(videos["mp4"], backend)
    assert (info.height, info.width, info.num_frames) == (48, 64, 32)
    assert info.fps == pytest.approx(7.5)
    avi = probe_video(videos["avi"], backend)
    assert avi.num_frames == 32 and avi.fps == pytest.approx(29.97, abs=1e-2)
    assert probe_video(videos["mkv"], backend).num_frames == 32  # no count in the Matroska header
    assert probe_video(videos["one_frame"], backend).num_frames == 1


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["mp4", "avi", "mkv"])
def test_read_returns_exactly_the_requested_frames(videos, backend, kind):
    wanted = np.array([0, 3, 4, 17, 30, 31])
    frames = read_frames(videos[kind], wanted, backend)
    assert frames.dtype == np.uint8 and frames.shape == (6, 48, 64, 3)
    assert frame_numbers(frames) == wanted.tolist()


@pytest.mark.parametrize("backend", BACKENDS)
def test_indices_past_the_end_clamp_to_the_last_frame(videos, backend):
    frames = read_frames(videos["mp4"], np.array([30, 31, 32, 40]), backend)
    assert frame_numbers(frames) == [30, 31, 31, 31]
    single = read_frames(videos["one_frame"], np.array([0, 5]), backend)
    assert frame_numbers(single) == [0, 0] and single.shape == (2, 48, 64, 3)


def test_auto_backend_and_argument_checks(videos):
    assert probe_video(videos["mp4"], "auto").num_frames == 32
    assert frame_numbers(read_frames(videos["mp4"], np.array([2, 9]), "auto")) == [2, 9]
    with pytest.raises(ScaleError, match="unknown decoder backend"):
        probe_video(videos["mp4"], "opencv")
    with pytest.raises(ValueError, match="sorted"):
        read_frames(videos["mp4"], np.array([5, 2]))
    with pytest.raises(ValueError, match="sorted"):
        read_frames(videos["mp4"], np.array([2, 2]))


@pytest.mark.parametrize("backend", BACKENDS + ["auto"])
@pytest.mark.parametrize(
    "kind, reason",
    [
        ("empty", "empty file"),
        ("directory", "directory"),
        ("text", "not a readable video"),
        ("truncated", "not a readable video"),
        ("audio_only", "no video stream"),
    ],
)
def test_bad_files_raise_video_decode_error(videos, backend, kind, reason):
    with pytest.raises(VideoDecodeError, match=reason):
        probe_video(videos[kind], backend)
    with pytest.raises(VideoDecodeError, match=reason):
        read_frames(videos[kind], np.array([0]), backend)


def test_missing_and_unreadable_files(tmp_path, videos):
    with pytest.raises(VideoDecodeError, match="does not exist"):
        probe_video(tmp_path / "absent.mp4")
    os.symlink(tmp_path / "absent.mp4", tmp_path / "dangling.mp4")
    with pytest.raises(VideoDecodeError, match="broken symbolic link"):
        read_frames(tmp_path / "dangling.mp4", np.array([0]))
    locked = tmp_path / "locked.mp4"
    locked.write_bytes(videos["mp4"].read_bytes())
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):  # root reads anything: nothing to check here
            assert probe_video(locked).num_frames == 32
        else:
            with pytest.raises(VideoDecodeError, match="cannot read"):
                probe_video(locked)
    finally:
        locked.chmod(0o644)


# --------------------------------------------------------------------------- real files


@pytest.mark.parametrize("backend", BACKENDS)
def test_real_ucf101_counts(shared_data, backend):
    root = shared_data / "videos" / "ucf101-mini" / "UCF-101"
    for rel, count in UCF_COUNTS.items():
        info = probe_video(root / rel, backend)
        assert (info.height, info.width, info.num_frames) == (240, 320, count)
    assert probe_video(root / "BaseballPitch/v_BaseballPitch_g01_c01.avi", backend).fps == pytest.approx(29.97, abs=1e-2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_real_hmdb51_headers_overstate_by_one(shared_data, backend):
    for path in sorted((shared_data / "videos" / "hmdb51-mini").glob("*/*.avi")):
        with av.open(str(path)) as container:
            stated = container.streams.video[0].frames
        info = probe_video(path, backend)
        assert info.num_frames == stated - 1
        # the stated last frame does not exist: asking for it returns the last decodable one
        frames = read_frames(path, np.array([stated - 2, stated - 1]), backend)
        np.testing.assert_array_equal(frames[0], frames[1])


def test_real_mkv_without_frame_count(shared_data):
    path = shared_data / "videos" / "misc" / "flipping_a_pancake.mkv"
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0
    for backend in BACKENDS:
        info = probe_video(path, backend)
        assert (info.height, info.width, info.num_frames) == (240, 426, 310)


@pytest.mark.parametrize(
    "rel",
    [
        "hmdb51-mini/brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi",  # DivX AVI: decord's seek goes wrong here
        "hmdb51-mini/punch/AdvancedBoxingTechniquesandExercises_punch_u_nm_np1_ba_med_23.avi",
        "ucf101-mini/UCF-101/BaseballPitch/v_BaseballPitch_g01_c01.avi",
        "misc/flipping_a_pancake.mkv",
    ],
)
def test_backends_return_the_frames_of_a_full_sequential_decode(shared_data, rel):
    path = shared_data / "videos" / rel
    reference = _reference_frames(path)
    info = probe_video(path)
    assert info.num_frames == len(reference)
    boxes = plan_clips("eval15", info, 16, 4, 224, 0, rel)
    needed = all_frame_indices(boxes)
    for backend in BACKENDS:
        frames = read_frames(path, needed, backend)
        np.testing.assert_array_equal(frames, reference[needed], err_msg=backend)
        clip = clip_frames(frames, needed, boxes[7])
        np.testing.assert_array_equal(clip, reference[list(boxes[7].frame_indices)])


@pytest.mark.parametrize("backend", BACKENDS + ["auto"])
def test_real_corrupted_file_fails_cleanly(shared_data, backend):
    """Probing then reading the planned clips, as extraction does, ends in VideoDecodeError.

    (decord's probe already fails; PyAV's probe, and auto's fallback to it, trust the mp4
    header and the intact tail, so the corrupt middle surfaces when the frames are read.)"""
    path = shared_data / "videos" / "misc" / "corrupted.mp4"
    with pytest.raises(VideoDecodeError) as info:
        video = probe_video(path, backend)
        read_frames(path, all_frame_indices(plan_clips("eval15", video, 16, 4, 224, 0, "c")), backend)
    assert "\n" not in str(info.value) and len(str(info.value)) < 300
    if backend == "decord":
        with pytest.raises(VideoDecodeError):
            probe_video(path, backend)
    with pytest.raises(VideoDecodeError, match="decord cannot decode" if backend == "decord" else "corrupt video data"):
        read_frames(path, np.arange(0, 50, 7), backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_decoder_messages_stay_off_stderr(shared_data, backend):
    """The decoders' own ffmpeg lines ("[h264 @ 0x...] Invalid NAL unit size") never reach the
    user's terminal or log: the failure is the one recorded reason."""
    import subprocess
    import sys

    path = shared_data / "videos" / "misc" / "corrupted.mp4"
    code = ("import sys, numpy as np; from scale_toolkit.data.decode import VideoDecodeError, probe_video, read_frames\n"
            f"try:\n    probe_video(sys.argv[1], {backend!r}); read_frames(sys.argv[1], np.arange(0, 300, 7), {backend!r})\n"
            "except VideoDecodeError as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip(), done.stderr
    assert "@ 0x" not in done.stderr and done.stderr.strip() == ""

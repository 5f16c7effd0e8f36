"""Clip plans: determinism, PySlowFast-style jitter, exact 5x3 positions, short-video clamping."""
from __future__ import annotations

import math

import numpy as np
import pytest

from scale_toolkit.data.clips import VIEWS, ClipBox, VideoInfo, all_frame_indices, clip_frames, plan_clips
from scale_toolkit.errors import ScaleError

UCF = VideoInfo(height=240, width=320, num_frames=164, fps=25.0)
VIDEO_ID = "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"


def _plan(view, info=UCF, frames=16, stride=4, crop=224, seed=0, video_id=VIDEO_ID):
    return plan_clips(view, info, frames, stride, crop, seed, video_id)


def test_views_table():
    assert VIEWS == {"train16": 16, "eval15": 15}
    for view, count in VIEWS.items():
        assert len(_plan(view)) == count


def test_train16_is_reproducible_and_seeded_per_video():
    plan = _plan("train16")
    assert plan == _plan("train16")
    assert plan != _plan("train16", seed=1)
    assert plan != _plan("train16", video_id="ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c02.avi")
    # a stable hash of (seed, video_id): this value must never change between processes or versions
    assert plan[0] == ClipBox(51, 115, 19, 104, 205, 290, False, tuple(range(51, 115, 4)))
    assert plan[1].box().tolist() == [23, 66, 94, 233, 276, 158]


def test_train16_boxes_follow_the_pyslowfast_ranges():
    sides, flips, starts = set(), [], set()
    for n in range(30):
        for box in _plan("train16", video_id=f"video_{n}.avi"):
            side = box.y1 - box.y0
            assert side == box.x1 - box.x0  # a square in source pixels
            # short side 240 scaled to S in [256, 320], then a 224 crop: side = 224 * 240 / S
            assert round(224 * 240 / 320) <= side <= round(224 * 240 / 256)
            assert 0 <= box.y0 and box.y1 <= UCF.height and 0 <= box.x0 and box.x1 <= UCF.width
            assert 0 <= box.t0 <= UCF.num_frames - 64 and box.t1 == box.t0 + 64
            assert box.frame_indices == tuple(box.t0 + 4 * k for k in range(16))
            sides.add(side)
            flips.append(box.flip)
            starts.add(box.t0)
    assert len(sides) > 20 and len(starts) > 50
    assert 0.4 < np.mean(flips) < 0.6


def test_crop_size_scales_the_jitter():
    for box in _plan("train16", crop=112):
        assert round(112 * 240 / (112 * 320 / 224)) <= box.y1 - box.y0 <= round(112 * 240 / (112 * 256 / 224))


def test_coords_are_the_box_over_the_video_size():
    for view in VIEWS:
        for box in _plan(view):
            coords = box.coords(UCF)
            assert coords.dtype == np.float32 and coords.shape == (6,)
            expected = np.array([box.y0 / 240, box.x0 / 320, box.t0 / 164, box.y1 / 240, box.x1 / 320, box.t1 / 164])
            np.testing.assert_allclose(coords, expected, rtol=1e-6)
            assert box.box().dtype == np.int32
            assert box.box().tolist() == [box.y0, box.x0, box.t0, box.y1, box.x1, box.t1]
            assert np.all((coords >= 0) & (coords <= 1))


def test_eval15_positions_are_exact_landscape():
    plan = _plan("eval15")
    starts = [0, 25, 50, 75, 100]  # evenly from frame 0 to the last start 164 - 64
    for window, t0 in enumerate(starts):
        for crop, x0 in enumerate([0, 40, 80]):  # left, centre, right of the 320-wide frame
            box = plan[3 * window + crop]
            assert (box.t0, box.t1) == (t0, t0 + 64)
            assert (box.y0, box.x0, box.y1, box.x1) == (0, x0, 240, x0 + 240)
            assert box.frame_indices == tuple(range(t0, t0 + 64, 4))
            assert box.flip is False
    assert plan == _plan("eval15", seed=5, video_id="other")  # eval ignores the seed


def test_eval15_portrait_square_and_odd_sizes():
    portrait = _plan("eval15", info=VideoInfo(320, 240, 164, 30.0))
    assert [(b.y0, b.x0, b.y1, b.x1) for b in portrait[:3]] == [(0, 0, 240, 240), (40, 0, 280, 240), (80, 0, 320, 240)]
    square = _plan("eval15", info=VideoInfo(100, 100, 64, 30.0))
    assert {(b.y0, b.x0, b.y1, b.x1) for b in square} == {(0, 0, 100, 100)}
    odd = _plan("eval15", info=VideoInfo(240, 321, 164, 30.0))
    assert [b.x0 for b in odd[:3]] == [0, math.ceil(81 / 2), 81]


def test_short_videos_clamp_to_the_last_frame():
    short = VideoInfo(240, 320, 20, 30.0)
    for view in VIEWS:
        for box in _plan(view, info=short):
            assert (box.t0, box.t1) == (0, 20)  # the true span, not 64
            assert box.frame_indices == (0, 4, 8, 12, 16) + (19,) * 11
            assert box.coords(short)[5] == 1.0
    single = VideoInfo(48, 64, 1, 30.0)
    for view in VIEWS:
        assert all(b.frame_indices == (0,) * 16 and (b.t0, b.t1) == (0, 1) for b in _plan(view, info=single))
    exact = VideoInfo(240, 320, 64, 30.0)  # exactly one clip long: every clip is the whole video
    assert {(b.t0, b.t1) for b in _plan("train16", info=exact)} == {(0, 64)}


def test_no_index_reaches_num_frames():
    for num_frames in (1, 2, 63, 64, 65, 100, 1000):
        info = VideoInfo(48, 64, num_frames, 30.0)
        for view in VIEWS:
            for stride in (1, 2, 4):
                for box in plan_clips(view, info, 16, stride, 32, 3, "v"):
                    assert max(box.frame_indices) < num_frames and min(box.frame_indices) >= 0
                    assert 0 <= box.t0 < box.t1 <= num_frames


def test_all_frame_indices_and_clip_frames():
    plan = _plan("train16")
    needed = all_frame_indices(plan)
    assert needed.tolist() == sorted({i for b in plan for i in b.frame_indices})
    decoded = needed.reshape(-1, 1, 1, 1) * np.ones((1, 2, 2, 3), dtype=np.int64)  # frame i holds i
    for box in plan:
        frames = clip_frames(decoded, needed, box)
        assert frames[:, 0, 0, 0].tolist() == list(box.frame_indices)
    with pytest.raises(ValueError):
        clip_frames(decoded[:3], needed[:3], plan[0])
    assert all_frame_indices([]).size == 0


def test_bad_requests():
    with pytest.raises(ScaleError, match="unknown view"):
        _plan("train8")
    with pytest.raises(ScaleError):
        _plan("train16", stride=0)
    with pytest.raises(ValueError):
        _plan("eval15", info=VideoInfo(240, 320, 0, 25.0))

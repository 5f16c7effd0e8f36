"""Clip plans: where each clip of a video lies, in source frames and pixels.

A plan is a list of ``ClipBox`` per video, fixed by ``(view, video size, seed, video_id)``
so that the cached features of a store are reproducible.

Views (``VIEWS`` gives the clips per view):

* ``train16`` — 16 clips, PySlowFast training style. Each clip starts at a uniformly
  random frame ``t0`` in ``[0, T - frames*stride]``; the short side is jittered to
  ``S ~ U[crop*256/224, crop*320/224]`` (``[256, 320]`` for a 224 crop) and a random
  ``crop x crop`` square is cut, which in source pixels is a square of side
  ``round(crop * short / S)`` at a uniformly random position; flipped with p = 0.5.
  The RNG is seeded from ``sha256(f"{seed}:{video_id}")`` (never Python's ``hash``).
* ``eval15`` — the 5x3 test scheme: 5 windows whose starts are spaced evenly from the
  first frame to the last possible start (``round(i * (T - frames*stride) / 4)``), each
  with 3 crops of the full short side (the short side is resized to ``crop``) at the
  start, centre (``ceil((long - short) / 2)``) and end of the long side (left/centre/right
  for landscape, top/centre/bottom for portrait). Temporal-major order, no flip.

Short videos (``T < frames*stride``): every clip starts at frame 0, its frame indices
``t0 + k*stride`` are clamped to the last frame ``T - 1``, and the box keeps the true
span ``t1 = min(t0 + frames*stride, T)``. No index is ever ``>= T``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from scale_toolkit.errors import ScaleError

VIEWS: dict[str, int] = {"train16": 16, "eval15": 15}
EVAL_TEMPORAL_WINDOWS = 5
EVAL_SPATIAL_CROPS = 3
JITTER_SHORT_SIDE = (256 / 224, 320 / 224)  # PySlowFast [256, 320] for a 224 crop, as a ratio of the crop
FLIP_PROBABILITY = 0.5


@dataclass(frozen=True)
class VideoInfo:
    """Size of a decoded video: ``num_frames`` is the best knowledge of how many frames decode."""

    height: int
    width: int
    num_frames: int
    fps: float


@dataclass(frozen=True)
class ClipBox:
    """One clip in source units: frames ``[t0, t1)`` (true span after clamping), pixels
    ``[y0, y1) x [x0, x1)``, horizontal flip, and the source frame of each clip frame."""

    t0: int
    t1: int
    y0: int
    x0: int
    y1: int
    x1: int
    flip: bool
    frame_indices: tuple[int, ...]

    def box(self) -> np.ndarray:
        """``int32 [6] = [y0, x0, t0, y1, x1, t1]`` (the store's ``boxes`` row)."""
        return np.array([self.y0, self.x0, self.t0, self.y1, self.x1, self.t1], dtype=np.int32)

    def coords(self, info: VideoInfo) -> np.ndarray:
        """Eq. 5 of the paper: ``float32 [6] = [y0/H, x0/W, t0/T, y1/H, x1/W, t1/T]``."""
        scale = np.array([info.height, info.width, info.num_frames] * 2, dtype=np.float64)
        return (self.box().astype(np.float64) / scale).astype(np.float32)


def clip_rng(seed: int, video_id: str) -> np.random.Generator:
    """A generator that depends only on ``(seed, video_id)``, stable across processes and runs."""
    digest = hashlib.sha256(f"{int(seed)}:{video_id}".encode("utf-8", "surrogateescape")).digest()
    return np.random.default_rng(np.frombuffer(digest, dtype=np.uint32).tolist())


def plan_clips(
    view: str,
    info: VideoInfo,
    frames: int,
    stride: int,
    crop_size: int,
    seed: int,
    video_id: str,
) -> list[ClipBox]:
    """The clips of ``view`` for one video (see the module docstring for the rules)."""
    if view not in VIEWS:
        raise ScaleError(f"unknown view {view!r}: choose one of {', '.join(VIEWS)}")
    if frames < 1 or stride < 1 or crop_size < 1:
        raise ScaleError(f"frames, stride and crop size must be positive, got {frames}, {stride}, {crop_size}")
    if info.num_frames < 1 or info.height < 1 or info.width < 1:
        raise ValueError(f"cannot plan clips for an empty video: {info}")
    if view == "train16":
        return _plan_train(info, frames, stride, crop_size, clip_rng(seed, video_id), VIEWS[view])
    return _plan_eval(info, frames, stride)


def _temporal(t0: int, frames: int, stride: int, num_frames: int) -> tuple[int, int, tuple[int, ...]]:
    t1 = min(t0 + frames * stride, num_frames)
    indices = tuple(min(t0 + k * stride, num_frames - 1) for k in range(frames))
    return t0, t1, indices


def _plan_train(info: VideoInfo, frames: int, stride: int, crop: int, rng: np.random.Generator, count: int):
    short = min(info.height, info.width)
    last_start = max(info.num_frames - frames * stride, 0)
    boxes = []
    for _ in range(count):
        t0, t1, indices = _temporal(int(rng.integers(0, last_start + 1)), frames, stride, info.num_frames)
        scaled_short = rng.uniform(crop * JITTER_SHORT_SIDE[0], crop * JITTER_SHORT_SIDE[1])
        side = min(short, max(1, round(crop * short / scaled_short)))
        y0 = int(rng.integers(0, info.height - side + 1))
        x0 = int(rng.integers(0, info.width - side + 1))
        flip = bool(rng.random() < FLIP_PROBABILITY)
        boxes.append(ClipBox(t0, t1, y0, x0, y0 + side, x0 + side, flip, indices))
    return boxes


def _plan_eval(info: VideoInfo, frames: int, stride: int):
    short = min(info.height, info.width)
    long_excess = max(info.height, info.width) - short
    offsets = (0, math.ceil(long_excess / 2), long_excess)
    last_start = max(info.num_frames - frames * stride, 0)
    boxes = []
    for window in range(EVAL_TEMPORAL_WINDOWS):
        start = round(window * last_start / (EVAL_TEMPORAL_WINDOWS - 1))
        t0, t1, indices = _temporal(start, frames, stride, info.num_frames)
        for offset in offsets:
            if info.width >= info.height:
                y0, x0 = 0, offset
            else:
                y0, x0 = offset, 0
            boxes.append(ClipBox(t0, t1, y0, x0, y0 + short, x0 + short, False, indices))
    return boxes


def all_frame_indices(boxes: list[ClipBox]) -> np.ndarray:
    """Sorted unique source frames the clips need: one decode request per video."""
    if not boxes:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate([np.asarray(b.frame_indices, dtype=np.int64) for b in boxes]))


def clip_frames(decoded: np.ndarray, decoded_indices: np.ndarray, box: ClipBox) -> np.ndarray:
    """The frames of one clip, in clip order, from ``read_frames(path, all_frame_indices(boxes))``."""
    positions = np.searchsorted(decoded_indices, np.asarray(box.frame_indices))
    if np.any(positions >= len(decoded_indices)) or np.any(decoded_indices[positions] != box.frame_indices):
        raise ValueError("the decoded frames do not include every frame of this clip")
    return decoded[positions]

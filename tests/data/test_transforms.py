"""clip_to_tensor: crop, antialiased resize, flip, normalisation, frame order."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from scale_toolkit.data.clips import ClipBox, VideoInfo, plan_clips
from scale_toolkit.data.transforms import clip_to_tensor

MEAN, STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _box(y0, x0, y1, x1, flip=False, frames=4):
    return ClipBox(0, frames, y0, x0, y1, x1, flip, tuple(range(frames)))


def _smooth_frames(t=4, h=60, w=80, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(t, h // 4, w // 4, 3)).astype(np.uint8)
    return np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.BICUBIC)) for f in small])


def test_shape_dtype_and_normalisation_per_channel():
    frames = np.empty((4, 60, 80, 3), dtype=np.uint8)
    frames[..., 0], frames[..., 1], frames[..., 2] = 10, 128, 250
    out = clip_to_tensor(frames, _box(5, 10, 55, 60), 32, IMAGENET_MEAN, IMAGENET_STD)
    assert out.dtype == torch.float32 and tuple(out.shape) == (3, 4, 32, 32)
    for channel, value in enumerate((10, 128, 250)):
        expected = (value / 255 - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]
        torch.testing.assert_close(out[channel], torch.full((4, 32, 32), expected), atol=1e-5, rtol=0)


def test_crops_only_the_box_and_keeps_frame_order():
    frames = np.zeros((5, 60, 80, 3), dtype=np.uint8)
    for t in range(5):
        frames[t, 10:40, 20:50] = 40 * t + 10  # the box region; everything else is black
    out = clip_to_tensor(frames, _box(10, 20, 40, 50, frames=5), 16, (0, 0, 0), (1, 1, 1))
    for t in range(5):
        torch.testing.assert_close(out[:, t], torch.full((3, 16, 16), (40 * t + 10) / 255), atol=1e-6, rtol=0)


def test_flip_mirrors_the_width_axis():
    frames = _smooth_frames()
    plain = clip_to_tensor(frames, _box(4, 6, 52, 54), 24, MEAN, STD)
    flipped = clip_to_tensor(frames, _box(4, 6, 52, 54, flip=True), 24, MEAN, STD)
    torch.testing.assert_close(flipped, plain.flip(-1))
    assert not torch.allclose(flipped, plain)


def test_same_size_box_is_not_resampled():
    frames = _smooth_frames()
    out = clip_to_tensor(frames, _box(2, 3, 34, 35), 32, (0, 0, 0), (1, 1, 1))
    expected = torch.from_numpy(frames[:, 2:34, 3:35].astype(np.float32) / 255).permute(3, 0, 1, 2)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("size", [16, 112])  # downscale (antialiased) and upscale
def test_resize_matches_pil_bilinear(size):
    frames = _smooth_frames(t=2)
    out = clip_to_tensor(frames, _box(0, 10, 60, 70, frames=2), size, (0, 0, 0), (1, 1, 1))
    for t in range(2):
        pil = np.asarray(Image.fromarray(frames[t, 0:60, 10:70]).resize((size, size), Image.BILINEAR), dtype=np.float32)
        ours = out[:, t].permute(1, 2, 0).numpy() * 255
        assert np.abs(ours - pil).mean() < 0.6 and np.abs(ours - pil).max() < 2  # without antialias: 15 and 69


def test_works_on_a_real_plan():
    info = VideoInfo(48, 64, 32, 7.5)
    frames = _smooth_frames(t=16, h=48, w=64)
    for box in plan_clips("train16", info, 16, 2, 32, 0, "v") + plan_clips("eval15", info, 16, 2, 32, 0, "v"):
        out = clip_to_tensor(frames, box, 32, MEAN, STD)
        assert tuple(out.shape) == (3, 16, 32, 32) and torch.isfinite(out).all()


def test_bad_inputs():
    frames = np.zeros((2, 20, 30, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="outside"):
        clip_to_tensor(frames, _box(0, 0, 21, 10, frames=2), 8, MEAN, STD)
    with pytest.raises(ValueError, match="uint8"):
        clip_to_tensor(frames.astype(np.float32), _box(0, 0, 10, 10, frames=2), 8, MEAN, STD)
    with pytest.raises(ValueError, match="channel"):
        clip_to_tensor(frames, _box(0, 0, 10, 10, frames=2), 8, (0.5,), STD)

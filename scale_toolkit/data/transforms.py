"""Turn the decoded frames of one clip into a backbone input tensor."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from scale_toolkit.data.clips import ClipBox


def clip_to_tensor(
    frames: np.ndarray,
    box: ClipBox,
    crop_size: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> torch.Tensor:
    """Crop ``box`` from ``frames`` (uint8 ``[T, H, W, 3]`` RGB, one clip in clip order),
    resize to ``crop_size`` (bilinear, antialiased), flip if ``box.flip``, scale to
    [0, 1] and normalise with ``mean``/``std`` (given on the [0, 1] scale).

    Returns float32 ``[3, T, crop_size, crop_size]``.
    """
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    height, width = frames.shape[1:3]
    if not (0 <= box.y0 < box.y1 <= height and 0 <= box.x0 < box.x1 <= width):
        raise ValueError(
            f"clip box y[{box.y0}:{box.y1}] x[{box.x0}:{box.x1}] is outside the {height}x{width} frames"
        )
    if len(mean) != 3 or len(std) != 3:
        raise ValueError("mean and std need one value per RGB channel")
    crop = torch.from_numpy(np.ascontiguousarray(frames[:, box.y0 : box.y1, box.x0 : box.x1]))
    clip = crop.permute(0, 3, 1, 2).float()  # [T, 3, h, w]
    if clip.shape[-2:] != (crop_size, crop_size):
        clip = F.interpolate(clip, size=(crop_size, crop_size), mode="bilinear", antialias=True, align_corners=False)
    if box.flip:
        clip = clip.flip(-1)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    clip = (clip - mean_t) / std_t
    return clip.permute(1, 0, 2, 3).contiguous()

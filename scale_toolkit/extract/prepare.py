"""Turn one video file into the normalised clips of a view (runs inside decode workers)."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..data.clips import VIEWS, all_frame_indices, plan_clips
from ..data.decode import VideoDecodeError, probe_video, read_frames
from ..data.transforms import clip_to_tensor
from ..store.names import needs_escape, printable


@dataclass(frozen=True)
class ViewRecipe:
    """Everything a worker needs to cut a video into clips: picklable, backbone-agnostic."""

    view: str
    frames: int
    stride: int
    crop_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    seed: int
    decoder: str

    @classmethod
    def for_backbone(cls, view: str, spec, seed: int = 0, decoder: str = "auto") -> "ViewRecipe":
        """The recipe of `view` for a backbone spec (its frames, stride, crop and normalisation)."""
        return cls(view, spec.frames, spec.stride, spec.crop_size, tuple(spec.mean), tuple(spec.std), seed, decoder)

    @property
    def clips(self) -> int:
        return VIEWS[self.view]


def prepare_video(path: str | Path, video_id: str, recipe: ViewRecipe) -> dict:
    """Decode only the frames the view's clips need (one sorted request) and build the clips.

    Returns {"clips" float32 [V, 3, T, S, S], "boxes" int32 [V, 6], "coords" float32 [V, 6],
    "flip" bool [V], "video_meta" float32 [4]} or {"error": reason} for a bad video.
    """
    with _utf8_path(Path(path)) as readable:
        result = _prepare(readable, video_id, recipe)
    if "error" in result and readable != Path(path):  # name the user's file, not the link
        result["error"] = result["error"].replace(str(readable), printable(str(path)))
    return result


@contextmanager
def _utf8_path(path: Path) -> Iterator[Path]:
    """Decoders take UTF-8 paths only: reach a file whose name is other bytes through a symlink."""
    if not needs_escape(str(path)):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="scale-name-") as tmp:
        link = Path(tmp) / ("video" + printable(path.suffix))
        os.symlink(os.path.abspath(path), link)
        yield link


def _prepare(path: Path, video_id: str, recipe: ViewRecipe) -> dict:
    try:
        info = probe_video(Path(path), backend=recipe.decoder)
        boxes = plan_clips(recipe.view, info, recipe.frames, recipe.stride, recipe.crop_size, recipe.seed, video_id)
        needed = all_frame_indices(boxes)
        frames = read_frames(Path(path), needed, backend=recipe.decoder)
    except VideoDecodeError as exc:
        return {"error": str(exc) or type(exc).__name__}
    except (OSError, RuntimeError, ValueError) as exc:  # decoders raise these on broken streams
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}
    position = {int(f): i for i, f in enumerate(needed)}
    clips = []
    with torch.no_grad():
        for box in boxes:
            clip_frames = frames[[position[int(f)] for f in box.frame_indices]]
            clips.append(clip_to_tensor(clip_frames, box, recipe.crop_size, recipe.mean, recipe.std))
    return {
        "clips": torch.stack(clips).numpy(),
        "boxes": np.stack([b.box() for b in boxes]).astype(np.int32),
        "coords": np.stack([b.coords(info) for b in boxes]).astype(np.float32),
        "flip": np.array([b.flip for b in boxes], dtype=bool),
        "video_meta": np.array([info.height, info.width, info.num_frames, info.fps], dtype=np.float32),
    }

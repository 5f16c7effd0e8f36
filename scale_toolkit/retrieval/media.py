"""Gallery media of a retrieval index, for `scale serve`: one poster JPEG and one short muted preview per video.

Written at index build time (``scale retrieve --build-index --thumbs``) into ``INDEX.media/``
beside the index, so the server only ever sends small files and never decodes a gallery video
per request. Per video:

* ``<key>.poster.jpg``: the middle frame, POSTER_WIDTH pixels wide.
* ``<key>.preview.webp``: an animated WebP (PyAV's libwebp_anim encoder) of up to
  PREVIEW_SECONDS around the middle at PREVIEW_FPS, PREVIEW_WIDTH wide, looping; no audio.
  An image, so a page shows it with a plain <img> on hover. (The encoder merges identical
  frames: a still video gives a one-frame preview.)

``<key>`` hashes the video id with the source file's size and mtime: a rebuild of the index
(another descriptor, another model) reuses the files of unchanged videos. Each file is written
to a temp file and renamed. A video that cannot be read gets no media (the page shows a
placeholder); the build goes on and counts it.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from ..atomic import atomic_open
from ..contracts.index import IndexFiles, media_names
from ..errors import ScaleError

POSTER_WIDTH = 240
PREVIEW_WIDTH = 160
PREVIEW_SECONDS = 3.0
PREVIEW_FPS = 6.0

Progress = Optional[Callable[[int, int], None]]  # (done, total)


def media_dir(index_path: str | os.PathLike) -> Path:
    """Where an index's media live: INDEX.media/ beside INDEX."""
    return IndexFiles.at(index_path).media


def reachable(video_files: Sequence[str | os.PathLike]) -> bool:
    """Whether the gallery videos can be read here (the first one is checked: they share a root)."""
    return bool(video_files) and Path(video_files[0]).is_file()


def _key(video_id: str, file: Path) -> str:
    st = file.stat()
    return hashlib.sha1(f"{video_id}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:20]


def _resize(frame: np.ndarray, width: int) -> np.ndarray:
    from PIL import Image

    h, w = frame.shape[:2]
    height = max(2, int(round(h * width / w / 2)) * 2)  # even: yuv420p needs it
    return np.asarray(Image.fromarray(frame).resize((width, height), Image.BILINEAR))


def _write_poster(frame: np.ndarray, path: Path) -> None:
    from PIL import Image

    with atomic_open(path, "wb") as f:
        Image.fromarray(_resize(frame, POSTER_WIDTH)).save(f, format="JPEG", quality=82)


def _write_preview(frames: np.ndarray, fps: float, path: Path) -> None:
    import av

    small = [_resize(f, PREVIEW_WIDTH) for f in frames]
    with atomic_open(path, "wb") as f:
        with av.open(f, "w", format="webp", options={"loop": "0"}) as out:  # a muxer option: loop forever
            stream = out.add_stream("libwebp_anim", rate=max(1, int(round(fps))))
            stream.height, stream.width = small[0].shape[:2]
            stream.pix_fmt = "yuv420p"
            stream.options = {"quality": "60"}
            for img in small:
                for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)


def frame_plan(num_frames: int, fps: float) -> tuple[int, np.ndarray, float]:
    """(poster frame, preview frame indices, preview fps): the middle, and a window around it."""
    fps = fps if fps and fps > 0 else 25.0
    mid = max(0, (num_frames - 1) // 2)
    step = max(1, int(round(fps / PREVIEW_FPS)))
    span = int(round(PREVIEW_SECONDS * fps))
    start = max(0, min(mid - span // 2, num_frames - span))
    idx = np.arange(start, min(num_frames, start + span), step, dtype=np.int64)
    return mid, (idx if idx.size else np.array([mid])), fps / step


def video_media(video_id: str, file: str | os.PathLike, folder: Path, decoder: str = "auto") -> dict:
    """Write (or reuse) the poster and preview of one video; their file names relative to `folder`."""
    from ..data.decode import probe_video, read_frames

    file = Path(file)
    key = _key(video_id, file)
    names = media_names(key)
    if all((folder / n).is_file() for n in names.values()):
        return names
    info = probe_video(file, decoder)
    mid, idx, fps = frame_plan(info.num_frames, info.fps)
    wanted = np.union1d(idx, [mid])
    frames = read_frames(file, wanted, decoder)
    by_index = dict(zip(wanted.tolist(), frames))
    _write_preview(np.stack([by_index[i] for i in idx.tolist()]), fps, folder / names["preview"])
    _write_poster(by_index[mid], folder / names["poster"])
    return names


def write_gallery_media(index_path: str | os.PathLike, video_ids: Sequence[str], video_files: Sequence[str],
                        decoder: str = "auto", progress: Progress = None) -> dict:
    """Posters and previews of a gallery, for the sidecar: {"dir", "items" (per row or None), "failed"}."""
    folder = media_dir(index_path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ScaleError(f"cannot create the media folder {folder}: {exc.strerror or exc}") from exc
    items: list[dict | None] = []
    failed: dict[str, str] = {}
    for i, (vid, file) in enumerate(zip(video_ids, video_files)):
        try:
            items.append(video_media(vid, file, folder, decoder))
        except Exception as exc:  # noqa: BLE001  one unreadable video (any decoder error) does not stop the build
            items.append(None)
            failed[vid] = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        if progress:
            progress(i + 1, len(video_ids))
    return {"dir": folder.name, "items": items, "failed": failed,
            "poster_width": POSTER_WIDTH, "preview": f"animated WebP, {PREVIEW_WIDTH} px, <= {PREVIEW_SECONDS:g} s"}

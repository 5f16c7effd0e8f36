"""Decoding: probe a video's size and read only the frames its clips need.

Backends: ``decord`` (default), ``pyav``, and ``auto`` (decord, then PyAV when decord fails).

Rules worth knowing:

* Frame count. ``probe_video(...).num_frames`` is the number of frames that decode.
  AVI headers over-state it (the HMDB51 DivX files state one frame more than
  decodes) and Matroska/WebM headers often have none, so for AVI files, and for any
  file without a count, the frames are counted by a decode pass with PyAV (no colour
  conversion; tens of milliseconds for a UCF101/HMDB51 clip). AVIs stating more than
  ``EXACT_COUNT_MAX_FRAMES`` frames, and other containers, keep the header count after
  a check of the tail: decord decodes the last frame (walking back up to
  ``TAIL_WALK_BACK`` frames, then counting with PyAV); PyAV seeks to the key frame
  before the end and decodes to the end. Corrupt data in the middle of such a file
  then surfaces when its frames are read.
* Past the end. A requested index past the last decodable frame returns the last
  decodable frame (clamping, like the clip plans do for short videos) instead of failing.
  A stream that ends cleanly before its stated count is clamped this way; corrupt data
  (a packet the decoder rejects) raises VideoDecodeError instead.
* Seeking. decord seeks by timestamp; AVI files often carry none (decord reports
  negative timestamps) and seeking them returns wrong frames (seen on HMDB51's DivX
  AVIs). Such files are read sequentially from the first frame, keeping only the
  requested frames; files with valid timestamps use decord's batched seek.
* Frames are RGB uint8 at the stored size (no rotation or aspect-ratio correction).
* A video that cannot be decoded raises ``VideoDecodeError`` with a short reason; the
  extraction pipeline records it and goes on. Zero-byte files, directories, unreadable
  files and files without a video stream are rejected before decord sees them (decord
  can crash the process on some bad input, so extraction decodes in worker processes).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scale_toolkit.data.clips import VideoInfo
from scale_toolkit.errors import ScaleError

BACKENDS = ("decord", "pyav", "auto")
EXACT_COUNT_MAX_FRAMES = 20_000  # about 11 minutes at 30 fps
SEQUENTIAL_CHUNK = 16  # frames per decord request when reading sequentially (bounds memory)
TAIL_WALK_BACK = 16  # frames the decord probe walks back before counting with PyAV


class VideoDecodeError(Exception):
    """This video cannot be decoded; the message is a short human reason."""


@dataclass(frozen=True)
class _Header:
    container: str
    frames: int  # 0 when the header has no count
    fps: float
    height: int
    width: int


# --------------------------------------------------------------------------- public API


def probe_video(path: str | os.PathLike, backend: str = "decord", *, threads: int = 1) -> VideoInfo:
    """Height, width, decodable frame count and fps of a video (see the module rules)."""
    path = _checked_file(path)
    backend = _checked_backend(backend)
    if backend == "auto":
        try:
            return _probe_decord(path, threads)
        except VideoDecodeError:
            return _probe_pyav(path, threads)
    return _probe_decord(path, threads) if backend == "decord" else _probe_pyav(path, threads)


def read_frames(
    path: str | os.PathLike, indices: np.ndarray, backend: str = "decord", *, threads: int = 1
) -> np.ndarray:
    """Frames ``indices`` (sorted, unique, >= 0) as ``uint8 [len(indices), H, W, 3]`` RGB.

    Indices past the last decodable frame return the last decodable frame.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim != 1 or (indices.size and (indices[0] < 0 or np.any(np.diff(indices) <= 0))):
        raise ValueError("frame indices must be a 1-D array of sorted, unique, non-negative integers")
    path = _checked_file(path)
    backend = _checked_backend(backend)
    if backend == "auto":
        try:
            return _read_decord(path, indices, threads)
        except VideoDecodeError:
            return _read_pyav(path, indices, threads)
    if backend == "decord":
        return _read_decord(path, indices, threads)
    return _read_pyav(path, indices, threads)


# --------------------------------------------------------------------------- checks


def _checked_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ScaleError(f"unknown decoder backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    return backend


def _checked_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not os.path.lexists(path):
        raise VideoDecodeError("file does not exist")
    if path.is_dir():
        raise VideoDecodeError("is a directory, not a video file")
    if not path.exists():
        raise VideoDecodeError("broken symbolic link")
    if not path.is_file():
        raise VideoDecodeError("not a regular file")
    try:
        with open(path, "rb") as handle:
            if not handle.read(1):
                raise VideoDecodeError("empty file (0 bytes)")
    except OSError as exc:
        raise VideoDecodeError(f"cannot read file: {exc.strerror or exc}") from None
    return path


_LOG_PREFIX = re.compile(r"\[\d\d:\d\d:\d\d\]\s*\S+:\d+:\s*")


def _short_reason(exc: BaseException) -> str:
    """One short line from an exception (decord's messages carry C++ source locations)."""
    text = _LOG_PREFIX.sub("", str(exc)).strip()
    text = text.splitlines()[0] if text else type(exc).__name__
    return text[:200]


# --------------------------------------------------------------------------- PyAV


def _av():
    import av

    return av


def _open_av(path: Path):
    av = _av()
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise VideoDecodeError(f"not a readable video: {_short_reason(exc)}") from None
    if not container.streams.video:
        container.close()
        raise VideoDecodeError("no video stream (audio-only or not a video)")
    return container


def _header(path: Path) -> _Header:
    container = _open_av(path)
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        return _Header(
            container=container.format.name or "",
            frames=int(stream.frames or 0),
            fps=float(rate) if rate else 0.0,
            height=int(stream.codec_context.height or 0),
            width=int(stream.codec_context.width or 0),
        )
    finally:
        container.close()


def _needs_count(header: _Header) -> bool:
    if header.frames <= 0:
        return True
    return "avi" in header.container.split(",") and header.frames <= EXACT_COUNT_MAX_FRAMES


def _decoded_av_frames(container, threads: int):
    """Decoded frames in order; any decode error raises VideoDecodeError (corrupt data)."""
    av = _av()
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    stream.thread_count = max(0, int(threads))
    produced = 0
    try:
        for frame in container.decode(stream):
            produced += 1
            yield frame
    except (av.FFmpegError, OSError, ValueError) as exc:
        where = "" if produced == 0 else f" after frame {produced - 1}"
        raise VideoDecodeError(f"corrupt video data{where}: {_short_reason(exc)}") from None


def _count_frames_pyav(path: Path, threads: int) -> int:
    container = _open_av(path)
    try:
        count = sum(1 for _ in _decoded_av_frames(container, threads))
    finally:
        container.close()
    if count == 0:
        raise VideoDecodeError("no frame decodes")
    return count


def _probe_pyav(path: Path, threads: int) -> VideoInfo:
    header = _header(path)
    first = _read_pyav(path, np.zeros(1, dtype=np.int64), threads)
    height, width = first.shape[1:3]
    if _needs_count(header):
        num_frames = _count_frames_pyav(path, threads)
    else:
        _check_tail_pyav(path, threads)
        num_frames = header.frames
    return VideoInfo(int(height), int(width), int(num_frames), header.fps)


def _check_tail_pyav(path: Path, threads: int) -> None:
    """Seek to the key frame before the end and decode to the end; corrupt data raises."""
    container = _open_av(path)
    try:
        stream = container.streams.video[0]
        end = stream.duration if stream.duration else None
        if end is not None:
            start = stream.start_time or 0
            container.seek(int(start + end), stream=stream, backward=True, any_frame=False)
        if not any(True for _ in _decoded_av_frames(container, threads)):
            raise VideoDecodeError("the last frames do not decode")
    except _av().FFmpegError as exc:
        raise VideoDecodeError(f"cannot seek to the end: {_short_reason(exc)}") from None
    finally:
        container.close()


def _read_pyav(path: Path, indices: np.ndarray, threads: int) -> np.ndarray:
    container = _open_av(path)
    try:
        wanted = indices.tolist()
        out: list[np.ndarray] = []
        size = None
        last = None
        if not wanted:
            return np.zeros((0, 0, 0, 3), dtype=np.uint8)
        for position, frame in enumerate(_decoded_av_frames(container, threads)):
            last = frame
            if position == wanted[len(out)]:
                out.append(_frame_rgb(frame, size))
                size = size or (frame.width, frame.height)
                if len(out) == len(wanted):
                    break
        if last is None:
            raise VideoDecodeError("no frame decodes")
        if len(out) < len(wanted):  # past the real end: repeat the last decodable frame
            tail = _frame_rgb(last, size)
            out.extend([tail] * (len(wanted) - len(out)))
    finally:
        container.close()
    return np.stack(out)


def _frame_rgb(frame, size: tuple[int, int] | None) -> np.ndarray:
    """RGB array of a frame, rescaled to the first frame's size if the stream changes size."""
    if size is None or size == (frame.width, frame.height):
        return frame.to_ndarray(format="rgb24")
    return frame.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray()


# --------------------------------------------------------------------------- decord


def _decord_reader(path: Path, threads: int):
    try:
        import decord
    except ImportError:
        raise ScaleError("decord is not installed: use the pyav decoder backend") from None
    # its bundled ffmpeg prints "[h264 @ 0x...]" lines to stderr; a failure reaches the user
    # as one recorded reason instead
    decord.logging.set_level(decord.logging.QUIET)
    try:
        reader = decord.VideoReader(str(path), num_threads=max(0, int(threads)))
    except Exception as exc:  # decord raises DECORDError/RuntimeError with long C++ messages
        raise VideoDecodeError(f"decord cannot open it: {_short_reason(exc)}") from None
    if len(reader) <= 0:
        raise VideoDecodeError("decord finds no frames")
    return reader


def _decord_batch(reader, indices: list[int]) -> np.ndarray:
    try:
        return reader.get_batch(indices).asnumpy()
    except Exception as exc:
        raise VideoDecodeError(f"decord cannot decode frames: {_short_reason(exc)}") from None


def _decord_seekable(reader) -> bool:
    """decord seeks by timestamp; without valid timestamps (common in AVI) seeks land on wrong frames."""
    try:
        stamps = np.asarray(reader.get_frame_timestamp([0, len(reader) - 1]), dtype=np.float64)
    except Exception:
        return False
    return bool(np.all(np.isfinite(stamps)) and stamps.min() >= 0 and stamps[-1, 0] >= stamps[0, 0])


def _probe_decord(path: Path, threads: int) -> VideoInfo:
    header = _header(path)  # rejects non-video files before decord sees them
    reader = _decord_reader(path, threads)
    stated = len(reader)
    height, width = _decord_batch(reader, [0]).shape[1:3]
    fps = float(reader.get_avg_fps() or header.fps)
    if _needs_count(header):
        num_frames = _count_frames_pyav(path, threads)
    else:
        num_frames = _decord_last_decodable(reader, stated)
        if num_frames is None:
            num_frames = _count_frames_pyav(path, threads)
    return VideoInfo(int(height), int(width), int(num_frames), fps)


def _decord_last_decodable(reader, stated: int) -> int | None:
    """Frame count after checking the last frames decode; None if the tail is badly broken."""
    for last in range(stated - 1, max(stated - 1 - TAIL_WALK_BACK, -1), -1):
        try:
            _decord_batch(reader, [last])
            return last + 1
        except VideoDecodeError:
            continue
    return None


def _read_decord(path: Path, indices: np.ndarray, threads: int) -> np.ndarray:
    _header(path)
    reader = _decord_reader(path, threads)
    if indices.size == 0:
        return np.zeros((0, 0, 0, 3), dtype=np.uint8)
    clamped = np.minimum(indices, len(reader) - 1)
    if _decord_seekable(reader):
        unique, inverse = np.unique(clamped, return_inverse=True)
        return _decord_batch(reader, unique.tolist())[inverse]
    return _read_decord_sequential(reader, clamped)


def _read_decord_sequential(reader, indices: np.ndarray) -> np.ndarray:
    """Decode frames 0..max(indices) in order, keeping only the requested ones."""
    last = int(indices[-1])
    out = None
    for start in range(0, last + 1, SEQUENTIAL_CHUNK):
        stop = min(start + SEQUENTIAL_CHUNK, last + 1)
        lo, hi = np.searchsorted(indices, [start, stop])
        chunk = _decord_batch(reader, list(range(start, stop)))
        if out is None:
            out = np.empty((len(indices),) + chunk.shape[1:], dtype=np.uint8)
        if hi > lo:
            out[lo:hi] = chunk[indices[lo:hi] - start]
    return out

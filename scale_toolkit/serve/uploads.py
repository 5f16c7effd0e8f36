"""An uploaded video, in the worker process: its header checked against the size budget before
anything is decoded, then embedded as the store was made, and a poster for the query card.

The budget is width x height x frames (megapixel-frames): decoding keeps frames of that size in
memory, so a 19 KB file claiming 3840x2160 and 60 frames would cost gigabytes. The header gives
the frame size; the frames are counted from the container's packets (read, never decoded), so a
header that under-states its length does not pass either.
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from ..errors import ScaleError

POSTER_WIDTH = 240
_ERRNO = re.compile(r"\[Errno -?\d+\]\s*")
_CALL = re.compile(r"[;:,]?\s*'?\b[a-z_][a-z0-9_]*\(\)'?")
_LOG_TAIL = re.compile(r";?\s*last error log:.*$", re.IGNORECASE)


def plain_reason(text: str) -> str:
    """A decoder message without errno numbers, C function names or the library's log tail.

    >>> plain_reason("[Errno 1094995529] Invalid data found when processing input: 'avcodec_send_packet()'")
    'Invalid data found when processing input'
    """
    text = _LOG_TAIL.sub("", _CALL.sub("", _ERRNO.sub("", str(text))))
    text = " ".join(text.split()).strip(" :;,'")
    return text or "the decoder could not read it"


def _reason(exc: BaseException) -> str:
    """PyAV's own words without the errno or the file name (the user knows which file they sent)."""
    return plain_reason(getattr(exc, "strerror", None) or str(exc))


def header_size(path: str | Path) -> tuple[int, int, int]:
    """(width, height, frames) of the first video stream, from the header and the packets only."""
    import av

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise ScaleError(f"not a video the decoder can read ({_reason(exc)})") from None
    try:
        if not container.streams.video:
            raise ScaleError("the file holds no video stream")
        stream = container.streams.video[0]
        width, height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
        frames = 0
        for packet in container.demux(stream):
            frames += packet.size > 0
        frames = max(frames, int(stream.frames or 0))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise ScaleError(f"the video's container is damaged ({_reason(exc)})") from None
    finally:
        container.close()
    if width <= 0 or height <= 0 or frames <= 0:
        raise ScaleError("the video's header gives no frame size or no frames")
    return width, height, frames


def check_budget(width: int, height: int, frames: int, max_mpix: float) -> None:
    """Refuse a video over `max_mpix` million pixel-frames, naming its size.

    >>> check_budget(3840, 2160, 60, 250.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    scale_toolkit.errors.ScaleError: the video is 3840x2160 with 60 frames (498 million pixel-frames), over ...
    """
    size = width * height * frames / 1e6
    if size > max_mpix:
        raise ScaleError(f"the video is {width}x{height} with {frames} frames ({size:.0f} million pixel-frames), over "
                         f"this server's limit of {max_mpix:g} million (--max-upload-mpix); send a shorter or smaller video")


def poster_jpeg(path: str | Path, frames: int) -> bytes | None:
    """The middle frame as a small JPEG for the query card (None when it cannot be read)."""
    from PIL import Image

    from ..data.decode import read_frames

    try:
        frame = read_frames(path, np.array([max(0, (frames - 1) // 2)]), "auto")[0]
        img = Image.fromarray(frame)
        img = img.resize((POSTER_WIDTH, max(2, round(img.height * POSTER_WIDTH / img.width))), Image.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=82)
        return buf.getvalue()
    except Exception:  # noqa: BLE001  the poster is a nicety: its failure must not fail the query
        return None


def embed_upload(path: str, attrs: dict, feature_dim: int, device: str | None, max_mpix: float):
    """(features [V, D], coords [V, 6], poster JPEG or None) of an upload; runs in the worker."""
    from ..retrieval.query import embed_file

    width, height, frames = header_size(path)
    check_budget(width, height, frames, max_mpix)
    feats, coords = embed_file(Path(path), attrs, feature_dim, device)
    return feats, coords, poster_jpeg(path, frames)

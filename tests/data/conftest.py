"""Small test videos written with PyAV: frame i is a flat grey of level 8*i, so decoded
frames can be identified by their mean."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

LEVEL_STEP = 8


def write_video(path: Path, num_frames: int = 32, width: int = 64, height: int = 48, fps=Fraction(15, 2), codec="mpeg4") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"qscale": "2"} if codec == "mpeg4" else {}
        for i in range(num_frames):
            image = np.full((height, width, 3), LEVEL_STEP * i, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def frame_numbers(frames: np.ndarray) -> list[int]:
    """Which synthetic frame each decoded frame is."""
    return [int(round(float(f.mean()) / LEVEL_STEP)) for f in frames]


@pytest.fixture(scope="session")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    made = {
        "mp4": write_video(root / "my clip [v1] ünï (copy).mp4"),
        "avi": write_video(root / "odd fps.avi", fps=Fraction(30000, 1001)),
        "mkv": write_video(root / "no count.mkv"),
        "one_frame": write_video(root / "single.mp4", num_frames=1),
    }
    data = made["mp4"].read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    made["truncated"] = root / "truncated.mp4"
    (root / "empty.mp4").touch()
    made["empty"] = root / "empty.mp4"
    (root / "folder.mp4").mkdir()
    made["directory"] = root / "folder.mp4"
    (root / "text.avi").write_text("this is not a video\n" * 100)
    made["text"] = root / "text.avi"
    import wave

    with wave.open(str(root / "audio_only.wav"), "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(np.zeros(8000, dtype=np.int16).tobytes())
    (root / "audio_only.wav").rename(root / "audio_only.mp4")
    made["audio_only"] = root / "audio_only.mp4"
    return made

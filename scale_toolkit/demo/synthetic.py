"""A small labelled video dataset whose classes differ by the temporal ORDER of motions.

Four classes are two pairs that contain the same two motions in opposite order ("up then down" vs
"down then up", "grow then shrink" vs "shrink then grow"): every short clip of one looks like some
clip of the other, so averaging clip features can hardly tell them apart, while a model that sees
where in time each clip lies (SCALE's crop coordinates) can. The motions are vertical or a change
of size because training clips are flipped left-right at random: a left/right pair would look the
same to the SSL. The other classes differ by appearance (colour and shape), which any probe
solves. Written with PyAV (MPEG-4 Part 2).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# per-frame change of each motion: (dy, dx) in units of the speed, and the radius's direction
MOTIONS = {"up": (-1, 0, 0), "down": (1, 0, 0), "grow": (0, 0, 1), "shrink": (0, 0, -1), "still": (0, 0, 0)}
# (name, shape, colour RGB, first motion, second motion)
CLASSES = (
    ("up_then_down", "square", (240, 240, 240), "up", "down"),
    ("down_then_up", "square", (240, 240, 240), "down", "up"),
    ("grow_then_shrink", "square", (240, 240, 240), "grow", "shrink"),
    ("shrink_then_grow", "square", (240, 240, 240), "shrink", "grow"),
    ("red_disc", "disc", (230, 40, 40), "still", "still"),
    ("blue_disc", "disc", (40, 60, 230), "still", "still"),
)
ORDER_CLASSES = tuple(cls[0] for cls in CLASSES if cls[3] != cls[4])  # same two motions, opposite order
# the classes above in words, for the lines under `scale demo`'s table
CLASS_STORY = (f"Classes: {len(ORDER_CLASSES)} differ only by the ORDER of two motions (up/down, grow/shrink), "
               f"{len(CLASSES) - len(ORDER_CLASSES)} by appearance.",
               "Clip-averaged rows (k-NN, Linear) see what happens but hardly when; the SCALE rows also see "
               "each clip's place in time.")


@dataclass(frozen=True)
class SyntheticSpec:
    videos_per_class: int = 12
    frames: int = 48
    height: int = 96
    width: int = 128
    fps: float = 12.0
    speed: float = 2.0  # pixels per frame
    test_fraction: float = 0.34
    seed: int = 0


def render_video(cls: tuple, spec: SyntheticSpec, rng: np.random.Generator) -> np.ndarray:
    """uint8 [T, H, W, 3]: one object on a noisy background doing two motions in sequence."""
    _, shape, colour, first, second = cls
    t, h, w = spec.frames, spec.height, spec.width
    background = rng.integers(0, 40, size=(h, w, 3), dtype=np.uint8)
    radius = float(rng.integers(9, 14))
    y, x = h / 2 + rng.uniform(-8, 8), w / 2 + rng.uniform(-8, 8)
    jitter = rng.uniform(0.8, 1.2)
    yy, xx = np.mgrid[0:h, 0:w]
    video = np.empty((t, h, w, 3), np.uint8)
    half = max(1, t // 2)
    growth = 8.0 / half  # a growing or shrinking object changes its radius by 8 pixels over a half
    # start so that the first motion crosses the middle of the frame halfway through its half (both
    # motions stay inside the frame); a change of size starts at 7 or 15 pixels and spans about 8
    dy1, dx1, dr1 = MOTIONS[first]
    y -= dy1 * spec.speed * jitter * t / 4
    x -= dx1 * spec.speed * jitter * t / 4
    if dr1:
        radius = 11.0 - 4.0 * dr1
    for i in range(t):
        dy, dx, dr = MOTIONS[first] if i < half else MOTIONS[second]
        y = float(np.clip(y + dy * spec.speed * jitter, radius, h - radius - 1))
        x = float(np.clip(x + dx * spec.speed * jitter, radius, w - radius - 1))
        radius = float(np.clip(radius + dr * growth * jitter, 4.0, min(h, w) / 2 - 1))
        if shape == "disc":
            mask = (yy - y) ** 2 + (xx - x) ** 2 <= radius**2
        else:
            mask = (np.abs(yy - y) <= radius) & (np.abs(xx - x) <= radius)
        frame = background.copy()
        frame[mask] = colour
        video[i] = frame
    return video


def write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    """Write uint8 [T, H, W, 3] RGB frames as an MPEG-4 file with PyAV."""
    import fractions

    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fractions.Fraction(fps).limit_denominator(1001))
        stream.height, stream.width = frames.shape[1], frames.shape[2]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 800_000
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_synthetic_dataset(root: str | Path, spec: SyntheticSpec = SyntheticSpec()) -> Path:
    """Write `<root>/<class>/<class>_<i>.mp4` and `<root>/manifest.csv` (path,label,split).

    Split 1 holds a class-balanced train/test partition (`test_fraction` of each class is test).
    Returns the CSV path, ready for `scale extract --dataset csv --csv <it> --root <root>`.
    """
    root = Path(root)
    rng = np.random.default_rng(spec.seed)
    rows = []
    n_test = max(1, round(spec.videos_per_class * spec.test_fraction))
    for cls in CLASSES:
        for i in range(spec.videos_per_class):
            rel = f"{cls[0]}/{cls[0]}_{i:03d}.mp4"
            path = root / rel
            if not path.exists():
                write_video(path, render_video(cls, spec, rng), spec.fps)
            else:
                render_video(cls, spec, rng)  # keep the random stream identical on reruns
            rows.append((rel, cls[0], "test" if i < n_test else "train"))
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "split"])
        writer.writerows(rows)
    return manifest


def order_class_top1(class_names: list[str], labels: np.ndarray, predictions: np.ndarray) -> float:
    """Top-1 (%) on the videos of the order classes, found by NAME: a store sorts its class names, so
    their indices are not the positions in CLASSES.

    >>> order_class_top1(["blue_disc", "down_then_up", "up_then_down"], np.array([0, 1, 2]), np.array([0, 2, 2]))
    50.0
    """
    order = [i for i, name in enumerate(class_names) if name in ORDER_CLASSES]
    chosen = np.isin(labels, order)
    return 100.0 * float((np.asarray(predictions)[chosen] == np.asarray(labels)[chosen]).mean())

"""A generated long-video feature set: per-video `.npy` files [T, D] of hundreds of rows each, whose
classes differ only by the ORDER of two events (as `order_features` does for the demo's clips).

It is written as a feature extractor would leave it (one file per video, T varying with the video,
one row per second) plus a CSV `path,label,split`, so `scale import LIST.csv --out STORE` is the
way in. Class (g, AB) shows event A of group g in the first part of the video and event B after;
class (g, BA) the reverse; where the switch happens varies per video. The mean over a video's rows
is the same in expectation for AB and BA, so clip-mean probes can find the group but not the order
(a 50 % ceiling within a group), while a set model that reads the rows' time coordinates can.

Example:
    >>> import tempfile
    >>> csv = write_long_videos(tempfile.mkdtemp(), LongVideoSpec(groups=1, train_per_class=2, test_per_class=1,
    ...                                                             min_rows=5, max_rows=9))
    >>> csv.name, len(csv.read_text().splitlines())
    ('videos.csv', 7)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class LongVideoSpec:
    groups: int = 3  # classes = 2 x groups
    train_per_class: int = 24
    test_per_class: int = 8
    dim: int = 32
    min_rows: int = 240  # rows (clips) per video, uniform in [min_rows, max_rows]
    max_rows: int = 480
    switch: tuple[float, float] = (0.35, 0.65)  # where the second event starts, as a fraction of the video
    offset: float = 4.0  # common vector shared by every row (like real backbone features)
    nuisance: float = 0.5  # per-video vector
    noise: float = 0.6  # per-row noise
    seed: int = 0


def write_long_videos(root: str | Path, spec: LongVideoSpec = LongVideoSpec()) -> Path:
    """Write `root/<class>/<video>.npy` (float32 [T, D]) and `root/videos.csv`; returns the CSV's path.
    One video is in memory at a time."""
    root = Path(root)
    rng = np.random.default_rng(spec.seed)
    protos = rng.standard_normal((spec.groups, 2, spec.dim))
    offset = spec.offset * np.abs(rng.standard_normal(spec.dim))
    lines = ["path,label,split"]
    per = spec.train_per_class + spec.test_per_class
    for cls in range(2 * spec.groups):
        name = f"g{cls // 2}_{'ab' if cls % 2 == 0 else 'ba'}"
        first, second = protos[cls // 2, cls % 2], protos[cls // 2, 1 - cls % 2]
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per):
            rows = int(rng.integers(spec.min_rows, spec.max_rows + 1))
            t = (np.arange(rows) + 0.5) / rows
            late = (t >= rng.uniform(*spec.switch))[:, None]
            x = np.where(late, second, first) + offset + spec.nuisance * rng.standard_normal(spec.dim)
            x = x + spec.noise * rng.standard_normal((rows, spec.dim))
            rel = f"{name}/{name}_{i:03d}.npy"
            np.save(root / rel, x.astype(np.float32))
            lines.append(f"{rel},{name},{'test' if i >= spec.train_per_class else 'train'}")
    csv = root / "videos.csv"
    csv.write_text("\n".join(lines) + "\n")
    return csv

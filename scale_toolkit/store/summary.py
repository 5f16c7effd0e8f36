"""`StoreInfo`: what `FeatureStore.info()` returns about a store (scale_toolkit/info.py formats it for people)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .attributes import StoreAttrs


@dataclass(frozen=True)
class StoreInfo:
    """A store's counts and how it was made."""

    path: Path
    videos: int
    clips_per_video: int
    feature_dim: int
    status: dict[str, int]  # videos per status: pending, done, failed
    done_per_split: dict[int, dict[str, int]] | None  # split 1..3 -> done train/test/unused videos; None: no membership
    classes: int
    attrs: StoreAttrs
    schema_version: int
    disk_bytes: int
    failures: dict[str, str]  # video id -> why it failed
    clips: dict[str, float] | None = None  # a ragged store's clips per done video: min, median, max, mean, total

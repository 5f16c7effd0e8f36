"""`ExtractConfig`: what `scale extract` asks `run_extraction` to do (the store records the parts that
shaped its features in its attributes). Here, in the torch-free layer, so `scale extract --help`
reads its flag defaults without torch, zarr or numpy; scale_toolkit/extract/pipeline.py checks it."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .store import DEFAULT_ROWS_PER_CHUNK

DECODERS = ("auto", "decord", "pyav")


@dataclass
class ExtractConfig:
    backbone: str
    out: Path
    root: Path
    dataset: str = "folder"
    view: str = "eval15"
    checkpoint: Path | None = None
    random_init: bool = False
    strict: bool = True
    backbone_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"encoder": "momentum"}
    splits: Path | None = None
    csv: Path | None = None
    device: str = "cpu"
    precision: str = "auto"  # auto | bf16 | fp32 (scale_toolkit.precision)
    batch_size: int = 32  # clips per backbone forward
    workers: int = -1  # -1: pick from the core count; 0: decode in-process
    threads: int = 0  # torch intra-op threads for the backbone; 0 = torch's default
    limit: int | None = None
    seed: int = 0
    decoder: str = "auto"
    retry_failed: bool = False
    shard: str | None = None  # "i/n"
    timeout_s: float = 300.0
    rows_per_chunk: int = DEFAULT_ROWS_PER_CHUNK  # videos per store chunk = the unit of work, resume and sharding

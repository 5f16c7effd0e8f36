"""Process-wide settings, read or changed in one place: torchrun's rank environment, the device a
``--device`` names, and torch's thread count."""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch

from .errors import ScaleError


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_from_env() -> DistInfo:
    """Rank info from torchrun's RANK / WORLD_SIZE / LOCAL_RANK (single process when absent).

    >>> dist_from_env() if "WORLD_SIZE" not in os.environ else DistInfo()
    DistInfo(rank=0, world_size=1, local_rank=0)
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    return DistInfo(int(os.environ.get("RANK", "0")), world_size, int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """The device ``--device`` names: auto (CUDA when available, else the CPU), cpu, cuda or cuda:N.
    An unknown name or an unavailable GPU is one line. ``local_rank``: under torchrun, a bare
    ``cuda`` is this process's GPU.

    >>> resolve_device("cpu"), resolve_device("auto").type in ("cpu", "cuda")
    (device(type='cpu'), True)
    """
    if not isinstance(name, str) or not name.strip():
        raise ScaleError(f"--device must name a device (auto, cpu, cuda or cuda:N), got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ScaleError(f"unknown --device {name!r} (use auto, cpu, cuda or cuda:N)") from exc
    if device.type == "cpu":
        return device
    if device.type != "cuda":  # meta, mps, xpu, ...: torch knows the name, scale does not run there
        raise ScaleError(f"--device {name!r} is not supported: use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ScaleError(f"--device {name} was asked for, but no CUDA device is available; use --device cpu")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ScaleError(f"--device {name}: there is no CUDA device {device.index} (this machine has {count}: "
                         f"cuda:0{f'..cuda:{count - 1}' if count > 1 else ''})")
    return torch.device("cuda", local_rank) if device.index is None and local_rank is not None else device


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with `threads` intra-op threads (when positive), then restore the caller's count.

    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    if not threads or threads <= 0:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)

"""How much host memory a command may hold: `--max-memory` sizes, and the default budget from what
the system can give now. Training and the probes size what they hold resident by it.

Example:
    >>> parse_size("16G"), parse_size("1.5GiB"), parse_size("512M"), parse_size("1000")
    (17179869184, 1610612736, 536870912, 1000)
"""
from __future__ import annotations

import os
import re

from .errors import ScaleError

DEFAULT_FRACTION = 0.5  # of the memory available when the command starts: the rest is the model's and the OS's
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_size(text: str) -> int:
    """Bytes from "16G", "1.5GiB", "512M", "1000" (binary units)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", str(text).lower())
    if not match:
        raise ScaleError(f"--max-memory must be a size such as 16G, 1.5GiB or 512M, got {text!r}")
    value = float(match.group(1)) * _UNITS[match.group(2)]
    if value < 1:
        raise ScaleError(f"--max-memory must be positive, got {text!r}")
    return int(value)


def available_bytes() -> int:
    """Memory the system can give this process now (MemAvailable), or the physical total where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_budget(max_memory: str, processes: int = 1) -> tuple[int, str]:
    """The budget for the data one process holds, in bytes, and where it came from: `--max-memory`
    (per process), else an equal part for each of the `processes` sharing this machine (torchrun's
    ranks) of half of what it has available."""
    if max_memory:
        return parse_size(max_memory), f"--max-memory {max_memory}"
    share = f" / {processes} processes" if processes > 1 else ""
    return (int(DEFAULT_FRACTION * available_bytes()) // max(1, processes),
            f"{DEFAULT_FRACTION:.0%} of the memory available at start{share}")


def gib(n_bytes: int) -> str:
    """A size for people: '1.38 GiB'."""
    return f"{n_bytes / 2**30:.2f} GiB"

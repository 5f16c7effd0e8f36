"""How much host memory a command may hold: `--max-memory` sizes, and the default budget from what
the system can give now. Training and the probes size what they hold resident by it.

`--max-memory` bounds the whole process (what `ps` and the system's OOM killer see), not only the
data: the part left for data is the bound less what the process already holds (the interpreter,
torch, the model) and the working memory of one step (a batch's activations and gradients). At
50k videos those two are 0.5-1.3 GB next to a 1 GB store (benchmarks/RESULTS.md), so a bound
on the data alone let the process run far past it.

Example:
    >>> parse_size("16G"), parse_size("1.5GiB"), parse_size("512M"), parse_size("1000")
    (17179869184, 1610612736, 536870912, 1000)
"""
from __future__ import annotations

import os
import re

from .errors import ScaleError

# of a `--max-memory` bound, kept back for what neither the process's measure nor a step's estimate
# sees (the allocator's slack, the store reader's threads): without it a 10k-video `scale train` held
# its split and overshot a 1.2 GiB bound by 14 MiB
SLACK = 0.05
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


def _proc_bytes(path: str, key: str) -> int | None:
    """A "Key:   N kB" line of a Linux /proc file, in bytes; None where there is none."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def available_bytes() -> int:
    """Memory the system can give this process now (MemAvailable), or the physical total where unknown."""
    available = _proc_bytes("/proc/meminfo", "MemAvailable")
    return available if available is not None else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def resident_bytes() -> int:
    """What this process holds in memory now (VmRSS), or 0 where the system does not say."""
    return _proc_bytes("/proc/self/status", "VmRSS") or 0


def memory_budget(max_memory: str, processes: int = 1, working: int = 0) -> tuple[int, str]:
    """The budget for the data one process holds, in bytes, and where it came from.

    With `--max-memory` (per process): that bound less `SLACK`, what the process holds now and
    `working` (one step's activations and gradients, estimated by the caller), refused in one line
    where nothing is left. Without: an equal part for each of the `processes` sharing this machine
    (torchrun's ranks) of half of what it has available, less `working` (what the process holds
    already is not in "available")."""
    if max_memory:
        bound, in_use = parse_size(max_memory), resident_bytes() + working
        usable = int(bound * (1 - SLACK))
        if usable <= in_use:
            raise ScaleError(f"--max-memory {max_memory} leaves no room for data: this process holds "
                             f"{gib(in_use - working)} before reading any and one step needs about {gib(working)}; "
                             f"give more than {gib(int(in_use / (1 - SLACK)))}")
        kept = f" less the {gib(in_use - working)} this process held and a step's {gib(working)}" if in_use else ""
        return usable - in_use, f"--max-memory {max_memory}{kept}"
    share = f" / {processes} processes" if processes > 1 else ""
    default = int(DEFAULT_FRACTION * available_bytes()) // max(1, processes)
    kept = f", less a step's {gib(working)}" if working else ""
    return max(1, default - working), f"{DEFAULT_FRACTION:.0%} of the memory available at start{share}{kept}"


def gib(n_bytes: int) -> str:
    """A size for people: '1.38 GiB'."""
    return f"{n_bytes / 2**30:.2f} GiB"

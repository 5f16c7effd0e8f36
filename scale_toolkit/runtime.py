"""Process-wide settings, read or changed in one place: torchrun's rank environment, the device a
``--device`` names, and torch's thread count."""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from .errors import ScaleError


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1  # processes on this machine: they share its memory

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_from_env() -> DistInfo:
    """Rank info from torchrun's RANK / WORLD_SIZE / LOCAL_RANK (single process when absent).

    >>> dist_from_env() if "WORLD_SIZE" not in os.environ else DistInfo()
    DistInfo(rank=0, world_size=1, local_rank=0, local_world_size=1)
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    return DistInfo(int(os.environ.get("RANK", "0")), world_size, int(os.environ.get("LOCAL_RANK", "0")),
                    int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size))))


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


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def shared_cpu_threads(cores: int | None = None, load: float | None = None, most: int | None = None) -> int:
    """Torch threads for a CPU that other processes may be using: one per core that is not busy,
    counting the 1-minute load average (rounded) as busy cores; at least 1, at most ``most``
    (default: torch's current count, so a caller that asked for fewer threads keeps its choice).

    Why not every core: torch's threads meet at a barrier after every operator, so one thread
    that waits for a core held by another process stalls the others. Measured on a 2-core AMD
    EPYC (AVX2) at load 7-9 (docs/training.md, "Threads at run time"): the demo's training ran
    3.1x slower with 2 threads than with 1 on the old paper-size model, 14x slower on the demo's
    model; idle, 2 threads were 1.45x faster (the note of issue #20). Large operators do not
    collapse (a second thread is a second share of a busy machine): `scale probe` at scale keeps
    torch's count; this is for many small operators, as in the demo. The load average lags by
    about a minute and counts this process too: its own average use of the CPU since it started
    is taken off (else a long run would see itself as another job and drop to one thread).

    >>> shared_cpu_threads(cores=2, load=0.1, most=2), shared_cpu_threads(cores=2, load=1.2, most=2)
    (2, 1)
    >>> shared_cpu_threads(cores=2, load=9.0, most=2), shared_cpu_threads(cores=16, load=3.4, most=16)
    (1, 13)
    >>> shared_cpu_threads(cores=16, load=0.0, most=4)
    4
    """
    cores = usable_cores() if cores is None else cores
    most = torch.get_num_threads() if most is None else most
    if load is None:
        try:
            load = max(0.0, os.getloadavg()[0] - own_cpu_load())
        except (AttributeError, OSError):  # no load average (Windows): count the machine as ours
            load = 0.0
    return max(1, min(cores, most, int(cores - load + 0.5)))


def own_cpu_load() -> float:
    """This process's (and its finished children's) CPU seconds per second since it started: the
    part of the load average that is its own. 0 where /proc is missing."""
    import resource

    try:
        ticks = os.sysconf("SC_CLK_TCK")
        started = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19]) / ticks
        alive = float(open("/proc/uptime").read().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return 0.0
    used = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))
    return used / alive if alive > 1.0 else 0.0


def fastest_threads(work: Callable[[], object], most: int, repeats: int = 3) -> tuple[int, dict[int, float]]:
    """Of 1 and `most` torch threads, the one that runs `work` fastest on this machine now, and each
    one's best time in seconds (after a warm-up run). For many small operators the answer depends
    on the CPU, its load and the OpenMP wait policy, not on the core count: on a 2-core AMD EPYC
    (AVX2), idle, the demo's training took 27 s with 1 thread and 64 s with 2.

    >>> fastest_threads(lambda: None, most=1)
    (1, {})
    """
    if most <= 1:
        return 1, {}
    best: dict[int, float] = {}
    for threads in (1, most):
        with torch_threads(threads):
            work()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                work()
                times.append(time.perf_counter() - start)
        best[threads] = min(times)
    return min(best, key=lambda t: (best[t], t)), best


def import_what_runs_import_later() -> None:
    """Import now what training and the probes import part-way: the optimisers' torch._dynamo (about
    100 MB with sympy, on a torch optimiser's first parameter group) and matplotlib's Agg canvas and
    font list (the curves and confusion pictures). Called before `--max-memory` measures what the
    process holds, so that the measure counts them instead of the run growing past it later."""
    import torch._dynamo  # noqa: F401
    from matplotlib import font_manager  # noqa: F401  (reads the font list on import)
    from matplotlib.backends import backend_agg  # noqa: F401

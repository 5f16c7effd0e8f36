"""Exact search while it is cheap, IVF with its measured recall above (issue #25)."""
from __future__ import annotations

import numpy as np
import pytest

from scale_toolkit.probes.knn import knn_scores
from scale_toolkit.retrieval import neighbours
from scale_toolkit.retrieval.descriptors import l2_normalize
from scale_toolkit.retrieval.evaluate import _recall


def _clustered(n, d=32, centres=20, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d)).astype(np.float32)
    labels = rng.integers(0, centres, n)
    return l2_normalize(c[labels] + 0.3 * rng.standard_normal((n, d)).astype(np.float32)), labels


def test_exact_below_the_limit_matches_brute_force():
    mem, _ = _clustered(3000)
    q, _ = _clustered(50, seed=1)
    sims, ids, report = neighbours.top_k(mem, q, 5)
    assert report.method == "exact" and report.recall is None
    brute = np.argsort(-(q @ mem.T), axis=1)[:, :5]
    np.testing.assert_array_equal(ids, brute)


def test_approximate_search_reports_the_recall_it_measured():
    mem, _ = _clustered(5000)
    q, _ = _clustered(400, seed=1)
    sims, ids, report = neighbours.top_k(mem, q, 10, exact=False)
    assert report.method == "ivf" and report.sampled == 256
    truth = np.argsort(-(q @ mem.T), axis=1)[:, :10]
    overall = np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(ids, truth)])
    assert 0.5 < report.recall <= 1.0
    assert abs(report.recall - overall) < 0.1  # the sample's recall stands for the whole search's
    assert "approximate" in report.text() and f"{100 * report.recall:.1f} %" in report.text()


def test_large_work_switches_to_approximate_and_says_so(monkeypatch):
    monkeypatch.setattr(neighbours, "EXACT_WORK_LIMIT", 1e3)
    mem, labels = _clustered(3000)
    q, q_labels = _clustered(300, seed=1)
    scores = knn_scores(mem, labels, q, [10], n_classes=20)
    assert scores.search.method == "ivf"
    assert knn_scores(mem, labels, q, [10], n_classes=20, exact=True).search.method == "exact"
    recall, report = _recall(q, q_labels, mem, labels, (1, 5), None)
    assert report is not None and report.method == "ivf" and 0 < report.recall <= 1


@pytest.mark.parametrize("n_queries, n_memory, dim, expected", [(3783, 9537, 768, True), (20000, 240000, 768, False)])
def test_the_limit_keeps_ucf_size_exact_and_kinetics_size_approximate(n_queries, n_memory, dim, expected):
    assert neighbours.wants_exact(n_queries, n_memory, dim, None) is expected


def test_the_cells_scanned_are_the_fewest_that_reach_the_target_recall(monkeypatch):
    """nprobe doubles from 16 until the sample finds TARGET_RECALL of its exact top-k (or an eighth of
    the cells): an easy set stops early, and a lower target never scans more cells."""
    mem, _ = _clustered(20000, centres=200)
    q, _ = _clustered(400, centres=200, seed=1)
    _, _, high = neighbours.top_k(mem, q, 10, exact=False)
    monkeypatch.setattr(neighbours, "TARGET_RECALL", 0.5)
    _, _, low = neighbours.top_k(mem, q, 10, exact=False)
    nlist = high.params["nlist"]
    assert high.params["nprobe"] in {16, 32, 64, nlist // 8} and low.params["nprobe"] <= high.params["nprobe"]
    assert high.recall >= 0.98 or high.params["nprobe"] == nlist // 8
    assert low.recall >= 0.5 and low.params["nprobe"] == 16

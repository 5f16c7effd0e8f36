import numpy as np
import pytest

from scale_toolkit.probes.knn import knn_evaluate, knn_scores, prepare
from scale_toolkit.probes.metrics import topk_accuracy


def brute_force_knn(memory, memory_labels, queries, k, n_classes, T=0.07, center="none"):
    """Reference: dense cosine similarities, full sort, weighted vote, in float64 numpy."""
    m = np.asarray(memory, np.float64)
    q = np.asarray(queries, np.float64)
    if center == "train":
        mu = m.mean(0)
        m, q = m - mu, q - mu
    elif center == "split":
        m, q = m - m.mean(0), q - q.mean(0)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    sims = q @ m.T
    scores = np.zeros((len(q), n_classes))
    for i in range(len(q)):
        nn = np.argsort(-sims[i], kind="stable")[:k]
        for j in nn:
            scores[i, memory_labels[j]] += np.exp(sims[i, j] / T)
    return scores


@pytest.mark.parametrize("center", ["none", "train", "split"])
def test_knn_matches_brute_force_numpy(center):
    rng = np.random.default_rng(0)
    n_classes = 6
    means = rng.normal(size=(n_classes, 24))
    mem_y = rng.integers(0, n_classes, 300)
    q_y = rng.integers(0, n_classes, 120)
    mem = means[mem_y] + 1.5 * rng.normal(size=(300, 24)) + 0.7
    q = means[q_y] + 1.5 * rng.normal(size=(120, 24)) + 0.7
    m32, q32 = prepare(mem, q, center)
    scores = knn_scores(m32, mem_y, q32, [5, 20], n_classes)
    for k in (5, 20):
        ref = brute_force_knn(mem, mem_y, q, k, n_classes, center=center)
        np.testing.assert_allclose(scores[k], ref, rtol=1e-4)
        assert np.array_equal(scores[k].argmax(1), ref.argmax(1))
        acc = knn_evaluate(mem, mem_y, q, q_y, [k], n_classes, center=center)[k]
        assert acc == topk_accuracy(ref, q_y)
    # the probe is informative here (so the comparison is not between two constant outputs)
    assert topk_accuracy(scores[20], q_y)["top1"] > 50.0


def test_k_larger_than_memory_uses_all_memory():
    rng = np.random.default_rng(1)
    mem, q = rng.normal(size=(7, 5)), rng.normal(size=(3, 5))
    y = np.array([0, 1, 2, 0, 1, 2, 0])
    m32, q32 = prepare(mem, q)
    s = knn_scores(m32, y, q32, [20], 3)[20]
    np.testing.assert_allclose(s, brute_force_knn(mem, y, q, 7, 3), rtol=1e-4)


def test_topk_accuracy_counts_rank():
    scores = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.4, 0.35, 0.25]])
    labels = np.array([1, 2, 2])
    assert topk_accuracy(scores, labels, ks=(1, 2, 3)) == pytest.approx({"top1": 100 / 3, "top2": 200 / 3, "top3": 100.0})

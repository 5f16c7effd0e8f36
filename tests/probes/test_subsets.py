import math

import numpy as np
import pytest

from scale_toolkit.errors import ScaleError
from scale_toolkit.probes import ProbeOptions, run_probes
from scale_toolkit.probes import protocol as protocol_mod
from scale_toolkit.probes.subsets import class_balanced_subset, stratified_holdout


def test_holdout_is_stratified_disjoint_and_seeded():
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(1000, size=300, replace=False))
    labels = rng.integers(0, 7, size=300)
    fit, val = stratified_holdout(rows, labels, 0.1, seed=3)
    assert np.intersect1d(fit, val).size == 0
    assert np.array_equal(np.union1d(fit, val), rows)
    lab = dict(zip(rows, labels))
    for c in range(7):
        n_c = int((labels == c).sum())
        assert sum(lab[r] == c for r in val) == min(max(1, round(0.1 * n_c)), n_c - 1)
    fit2, val2 = stratified_holdout(rows, labels, 0.1, seed=3)
    assert np.array_equal(val, val2) and np.array_equal(fit, fit2)
    _, val3 = stratified_holdout(rows, labels, 0.1, seed=4)
    assert not np.array_equal(val, val3)


def test_holdout_keeps_singleton_classes_in_fit_and_refuses_all_singletons():
    rows, labels = np.arange(5), np.array([0, 0, 0, 1, 2])
    fit, val = stratified_holdout(rows, labels, 0.5, seed=0)
    assert set(labels[val]) == {0} and {3, 4} <= set(fit)
    with pytest.raises(ScaleError):
        stratified_holdout(np.arange(3), np.arange(3), 0.1, seed=0)


def test_low_shot_is_class_balanced_ceil_and_seeded():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, size=203)
    rows = np.arange(1000, 1203)
    sub = class_balanced_subset(rows, labels, 0.1, seed=7)
    assert set(sub) <= set(rows) and len(np.unique(sub)) == len(sub)
    picked = labels[sub - 1000]
    for c in range(5):
        assert (picked == c).sum() == max(1, math.ceil(0.1 * (labels == c).sum()))
    assert np.array_equal(sub, class_balanced_subset(rows, labels, 0.1, seed=7))
    assert not np.array_equal(sub, class_balanced_subset(rows, labels, 0.1, seed=8))


def test_validation_carve_out_never_contains_a_test_video(make_store, monkeypatch, tmp_path):
    """Every hold-out the runner carves (each split, seed, probe, with low-shot) lies inside the train split."""
    fs = make_store("separable", n_classes=3, per_class=12, dim=8)
    seen = []
    real = protocol_mod.stratified_holdout

    def spy(rows, labels, fraction, seed):
        fit, val = real(rows, labels, fraction, seed)
        seen.append((np.asarray(rows).copy(), fit, val))
        return fit, val

    monkeypatch.setattr(protocol_mod, "stratified_holdout", spy)
    run_probes(fs.path, rows=["linear", "mlp"], options=ProbeOptions(split="all", epochs=2, low_shot=0.5, seeds=[0, 1]))
    assert len(seen) == 3 * 2 * 2
    splits = fs.splits
    for s in range(3):
        test_ids = set(np.flatnonzero(splits[s] == 2))
        train_ids = set(np.flatnonzero(splits[s] == 1))
        mine = seen[s * 4:(s + 1) * 4]
        for _rows, fit, val in mine:
            assert not (set(val) | set(fit)) & test_ids
            assert set(val) <= train_ids and len(val) > 0


def test_low_shot_run_trains_on_balanced_subsets_and_averages_seeds(make_store):
    fs = make_store("separable", n_classes=3, per_class=20, dim=8)
    doc = run_probes(fs.path, rows=["knn", "linear"], options=ProbeOptions(split="1", low_shot=0.25, epochs=3))
    assert doc["seeds"] == [0, 1, 2]
    n_train_per_class = [(fs.splits[0][fs.labels == c] == 1).sum() for c in range(3)]
    expect = sum(math.ceil(0.25 * n) for n in n_train_per_class)
    for row in ("knn", "linear"):
        res = doc["results"][row]
        assert set(res["per_seed"]) == {"0", "1", "2"}
        for r in res["per_seed"].values():
            assert r["n_train"] == expect and r["n_train_full"] == sum(n_train_per_class)
        assert res["top1"] == pytest.approx(np.mean([r["top1"] for r in res["per_seed"].values()]))

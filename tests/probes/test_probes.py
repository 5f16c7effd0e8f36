"""Probe behaviour on synthetic stores whose structure fixes the right answer."""
import numpy as np
import pytest

from scale_toolkit.errors import ScaleError
from scale_toolkit.probes import ProbeOptions, run_probes

from .conftest import save_tiny_model

FAST = {"epochs": 30}


def test_linearly_separable_store_gives_full_linear_accuracy(make_store):
    fs = make_store("separable", n_classes=5, per_class=16, dim=24)
    doc = run_probes(fs.path, options=ProbeOptions(split="1", **FAST))
    assert doc["rows"] == ["knn", "linear"]
    assert doc["results"]["linear"]["top1"] >= 99.0
    assert doc["results"]["knn"]["top1"] >= 99.0
    assert doc["results"]["linear"]["top5"] == 100.0


def test_clip_probes_do_not_depend_on_the_feature_scale(make_store):
    """BatchNorm off (non-MAE backbone): the fixed 1/RMS input scale makes the lr/wd grid mean the same
    for features 64x larger, so every grid point and the result are unchanged."""
    kw = dict(n_classes=4, per_class=15, dim=24, seed=3)
    small = make_store("random", **kw)
    large = make_store("random", feature_scale=64.0, **kw)  # a power of two: exact in float16
    docs = [run_probes(fs.path, rows=["linear", "mlp"], options=ProbeOptions(split="1", epochs=20)) for fs in (small, large)]
    for row in ("linear", "mlp"):
        a, b = (d["results"][row] for d in docs)
        assert a["selected"]["batchnorm"] is False
        assert [g["val_nll"] for g in a["grid"]] == pytest.approx([g["val_nll"] for g in b["grid"]], rel=1e-3)
        assert a["top1"] == b["top1"]


def test_random_store_stays_near_chance(make_store):
    """Labels independent of the features: an honest protocol cannot beat chance by much."""
    fs = make_store("random", n_classes=4, per_class=25, dim=24)
    doc = run_probes(fs.path, rows=["knn", "linear"], options=ProbeOptions(split="1", **FAST))
    for row in ("knn", "linear"):
        assert doc["results"][row]["top1"] < 60.0  # chance is 25 %; 30 test videos


def test_selection_uses_validation_not_test(make_store, monkeypatch):
    """Grid points are ranked by validation scores only (also the early-stopping checks after each epoch);
    the test split is predicted once per probe."""
    from scale_toolkit.probes import protocol as P

    fs = make_store("separable", n_classes=3, per_class=15, dim=8)
    test_rows = set(fs.split_indices(1, "test"))
    calls = []
    real = P.predict_clip_head

    def spy(head, table):
        calls.append(table.n_videos)
        return real(head, table)

    monkeypatch.setattr(P, "predict_clip_head", spy)
    doc = run_probes(fs.path, rows=["linear"], options=ProbeOptions(split="1", epochs=3))
    res = doc["results"]["linear"]
    n_grid = len(res["grid"])
    assert n_grid == 4 and len(calls) >= n_grid + 1
    assert set(calls[:-1]) == {res["n_val"]} and calls[-1] == len(test_rows) == res["n_test"]
    assert res["n_fit"] + res["n_val"] == res["n_train"]
    best = max(res["grid"], key=lambda g: (g["val_top1"], -g["val_nll"]))
    assert res["selected"]["lr"] == best["lr"] and res["selected"]["weight_decay"] == best["weight_decay"]


def test_results_are_reproducible_with_fixed_seeds(make_store):
    fs = make_store("random", n_classes=3, per_class=12, dim=8)
    a = run_probes(fs.path, rows=["linear", "mlp"], options=ProbeOptions(split="2", epochs=5))
    b = run_probes(fs.path, rows=["linear", "mlp"], options=ProbeOptions(split="2", epochs=5))
    for row in ("linear", "mlp"):
        assert a["results"][row]["grid"] == b["results"][row]["grid"]
        assert a["results"][row]["top1"] == b["results"][row]["top1"]


def test_batchnorm_defaults_on_for_mae_family_only(make_store):
    mae = make_store("separable", n_classes=3, per_class=10, dim=8, backbone={"name": "videomae-b", "family": "video_vit"})
    rho = make_store("separable", n_classes=3, per_class=10, dim=8, backbone={"name": "rhobyol", "family": "slow_r50"})
    opts = ProbeOptions(split="1", epochs=2)
    d_mae = run_probes(mae.path, rows=["linear"], options=opts)
    d_rho = run_probes(rho.path, rows=["linear"], options=opts)
    assert d_mae["results"]["linear"]["selected"]["batchnorm"] is True
    assert d_rho["results"]["linear"]["selected"]["batchnorm"] is False
    d_search = run_probes(rho.path, rows=["linear"], options=ProbeOptions(split="1", epochs=2, batchnorm="search"))
    assert {g["batchnorm"] for g in d_search["results"]["linear"]["grid"]} == {True, False}


@pytest.mark.slow
def test_temporal_order_is_solved_by_set_models_only(make_store, tmp_path):
    """Classes differ only by the temporal order of two motions: mean features and single clips carry
    no label information, the set models (which see the crop coordinates) do."""
    fs = make_store("temporal", n_classes=2, per_class=60, dim=16)
    run = save_tiny_model(tmp_path / "run", input_dim=16)
    set_grid = {"lr": [3e-3, 1e-2], "weight_decay": [0.0], "batch_size": [16], "epochs": 100, "warmup_epochs": 1.0}
    opts = ProbeOptions(split="1", grid={"transformer": set_grid, "scale_ft": set_grid, "linear": {"epochs": 30},
                                         "mlp": {"epochs": 30}},
                        transformer_model={"hidden": 32, "heads": 2, "layers": 1, "pos_hidden": 32})
    doc = run_probes(fs.path, rows=["knn", "linear", "mlp", "transformer", "scale_ft"], model=run, options=opts)
    r = {k: v["top1"] for k, v in doc["results"].items()}
    assert r["transformer"] >= 85.0 and r["scale_ft"] >= 85.0, r
    assert r["knn"] <= 72.0 and r["linear"] <= 72.0 and r["mlp"] <= 72.0, r  # chance: 50 % on 36 test videos


def test_model_rows_use_the_model(make_store, tmp_path):
    fs = make_store("separable", n_classes=3, per_class=12, dim=16)
    run = save_tiny_model(tmp_path / "run", input_dim=16)
    doc = run_probes(fs.path, model=run, options=ProbeOptions(split="1", epochs=3, scale_clip_feature="both",
                                                             scale_knn_feature="set+refined"))
    assert doc["rows"] == ["knn", "scale_knn", "linear", "scale_linear"]
    assert doc["model"]["fingerprint"] and doc["model"]["config"]["input_dim"] == 16
    assert doc["store"]["fingerprint"] == fs.fingerprint()
    for row in doc["rows"]:
        assert 0.0 <= doc["results"][row]["top1"] <= doc["results"][row]["top5"] <= 100.0


def test_model_store_dimension_mismatch_is_a_clear_error(make_store, tmp_path):
    fs = make_store("separable", n_classes=3, per_class=10, dim=16)
    run = save_tiny_model(tmp_path / "run8", input_dim=8)
    with pytest.raises(ScaleError, match="expects 8-d clip features"):
        run_probes(fs.path, model=run, options=ProbeOptions(split="1"))
    run2 = save_tiny_model(tmp_path / "run_other", input_dim=16, backbone_name="svt")
    with pytest.raises(ScaleError, match="'svt'"):
        run_probes(fs.path, model=run2, options=ProbeOptions(split="1"))


def test_model_rows_need_a_model(make_store):
    fs = make_store("separable", n_classes=3, per_class=10, dim=8)
    with pytest.raises(ScaleError, match="--model"):
        run_probes(fs.path, rows=["scale_ft"])


def test_train_store_supplies_training_clips(make_store, tmp_path):
    """--train-store: probes train on its clips of the train videos (matched by id), test on the eval store."""
    from .conftest import build_store

    ev = make_store("separable", n_classes=3, per_class=14, dim=12, seed=5)
    train_mask = ev.splits[0] == 1
    ids = [v for v, m in zip(ev.video_ids, train_mask) if m]
    labels = ev.labels[train_mask]
    splits = np.zeros((3, len(ids)), np.int8)
    splits[0] = 1
    # same class structure (same seed), 16 clips with random coords; only train videos of split 1
    tr = build_store(tmp_path / "train16.zarr", "separable", labels=labels, video_ids=ids, splits=splits, dim=12,
                     seed=5, view="train16", n_clips=16)
    doc = run_probes(ev.path, rows=["linear"], train_store=tr.path, options=ProbeOptions(split="1", epochs=10))
    assert doc["train_store"]["n_clips"] == 16
    assert doc["results"]["linear"]["top1"] >= 99.0
    # a train store of another backbone is refused
    other = build_store(tmp_path / "other.zarr", "separable", labels=labels, video_ids=ids, splits=splits, dim=12,
                        backbone={"name": "svt"}, n_clips=16)
    with pytest.raises(ScaleError, match="backbone"):
        run_probes(ev.path, rows=["linear"], train_store=other.path, options=ProbeOptions(split="1"))


def test_probes_read_a_run_dir_written_by_the_trainer(make_store, tmp_path):
    """Integration with `scale train`'s run directory (model.pt + its meta): every model row runs."""
    from scale_toolkit.model import ScaleConfig
    from scale_toolkit.train.config import TrainConfig
    from scale_toolkit.train.trainer import train

    fs = make_store("separable", n_classes=3, per_class=12, dim=16, backbone={"name": "tiny", "family": "tiny"})
    run = tmp_path / "run"
    train(TrainConfig(store=str(fs.path), split=2, out=str(run), epochs=1, batch_size=8, warmup=0.0, device="cpu",
                      precision="fp32", save_every=0,
                      model=ScaleConfig(input_dim=16, hidden=32, heads=2, layers=1, pos_hidden=32, head_hidden=32,
                                        proj_dim=16, set_size=4)))
    doc = run_probes(fs.path, rows=["scale_knn", "scale_linear", "scale_ft"], model=run,
                     options=ProbeOptions(split="1", epochs=2))
    assert doc["model"]["trained_on_split"] == 2 and doc["model"]["config"]["hidden"] == 32
    assert any("split 2" in n for n in doc["notes"])  # probing split 1 with a split-2 model is flagged
    assert set(doc["results"]) == {"scale_knn", "scale_linear", "scale_ft"}

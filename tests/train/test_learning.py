"""On a synthetic store where clip order decides the class, MCM learns to predict held-out clips."""
import pytest

from scale_toolkit.model import ScaleConfig, load_model
from scale_toolkit.train import TrainConfig, ssl_metrics, train
from tests.train.helpers import make_train_store


@pytest.mark.slow
def test_mcm_accuracy_on_held_out_videos_rises_far_above_chance(tmp_path):
    fs = make_train_store(tmp_path / "train.zarr", n=320, test_every=5, d=32)
    model_cfg = ScaleConfig(hidden=64, heads=4, head_hidden=128, proj_dim=32, pos_hidden=64)
    train(TrainConfig(store=str(tmp_path / "train.zarr"), split=1, out=str(tmp_path / "run"), epochs=40,
                      batch_size=64, lr=2e-3, warmup=3, seed=0, precision="fp32", model=model_cfg))
    test = fs.read(fs.split_indices(1, "test"))
    assert len(test["features"]) == 64
    model, _ = load_model(tmp_path / "run")
    fresh = type(model)(model.config)
    after = ssl_metrics(model, test["features"], test["coords"], batch_size=64, rounds=4)
    before = ssl_metrics(fresh, test["features"], test["coords"], batch_size=64, rounds=4)
    chance = 1 / (64 * 8)  # a masked clip's target among all clips of its set in the batch
    assert before["mcm_acc"] < 10 * chance
    assert after["mcm_acc"] > 20 * chance, after
    assert after["mcm_loss"] < before["mcm_loss"] and after["set_acc"] > 0.5

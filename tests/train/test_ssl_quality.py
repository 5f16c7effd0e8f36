"""The paper's central claim on data built for it: frozen SCALE features beat clip averages when
classes differ only by the temporal order of their sub-actions (issue #20)."""
import pytest
import torch

from scale_toolkit.demo.order_features import OrderSpec, order_feature_stores
from scale_toolkit.model import ScaleConfig
from scale_toolkit.probes import ProbeOptions, run_probes
from scale_toolkit.train import TrainConfig, train


@pytest.mark.slow
def test_frozen_scale_knn_beats_clip_average_knn_on_order_classes(tmp_path):
    torch.set_num_threads(min(2, torch.get_num_threads()))
    train16, eval15 = order_feature_stores(tmp_path, OrderSpec(nuisance=0.1, seed=0))
    # library defaults except the run's length (120 steps of 64 videos) and narrower heads (1/16 of the
    # step's cost; SCALE_kNN 100.0 with 256 as with the default 1024, benchmarks/ssl_quality.py)
    summary = train(TrainConfig(store=str(train16), out=str(tmp_path / "run"), epochs=1, steps=120, batch_size=64,
                                warmup=2, device="cpu", precision="fp32", save_every=0, model=ScaleConfig(head_hidden=256)))
    res = run_probes(eval15, rows=["knn", "scale_knn"], model=tmp_path / "run", options=ProbeOptions(split="1", device="cpu"))
    knn, scale_knn = res["results"]["knn"]["top1"], res["results"]["scale_knn"]["top1"]
    assert knn < 65  # clip averages cannot see the order: near the 50 % ceiling of 8 classes in 4 order pairs
    assert scale_knn > knn + 15, (knn, scale_knn)
    final = summary["final"]
    assert final["val_set_acc"] > 0.1  # held-out SET top-1 well above chance (1 in 32 held-out videos)

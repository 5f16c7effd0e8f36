"""`scale_toolkit.train`: run directory, train-split only, resume, errors, schedule."""
import json
import math

import numpy as np
import pytest
import torch

from scale_toolkit.errors import ScaleError
from scale_toolkit.model import ScaleConfig, load_model
from scale_toolkit.store import FeatureStore
from scale_toolkit.train import TrainConfig, load_train_split, train
from scale_toolkit.train.step import fp32_matmul_precision
from scale_toolkit.train.trainer import lr_at, param_groups
from tests.train.helpers import TINY_MODEL, make_train_store, order_dataset


def cfg(tmp_path, **kw):
    base = dict(store=str(tmp_path / "train.zarr"), split=1, out=str(tmp_path / "run"), epochs=3, batch_size=12,
                warmup=1.0, save_every=2, model=ScaleConfig(**TINY_MODEL))
    base.update(kw)
    return TrainConfig(**base)


def test_train_writes_run_dir_and_loadable_model(tmp_path):
    make_train_store(tmp_path / "train.zarr")
    events = []
    s = train(cfg(tmp_path), progress=events.append)
    run = tmp_path / "run"
    for name in ("config.json", "checkpoint_last.pt", "checkpoint_epoch0002.pt", "metrics.jsonl", "curves.png", "model.pt"):
        assert (run / name).exists(), name
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for key in ("loss", "mcm_loss", "set_loss", "mcm_acc", "set_acc", "lr", "samples_per_s"):
        assert all(math.isfinite(r[key]) for r in rows), key
    conf = json.loads((run / "config.json").read_text())
    assert conf["store"]["n_train_videos"] == 36 and conf["model"]["input_dim"] == 24
    # 4 of the 36 train videos are held out for the SSL health metrics: 32 // 12 = 2 steps per epoch
    assert conf["effective"]["ssl_val_videos"] == 4 and conf["effective"]["steps_per_epoch"] == 2
    assert s["final"]["epoch"] == 3 and s["steps"] == 6
    for key in ("val_mcm_loss", "val_set_loss", "val_mcm_acc", "val_set_acc"):
        assert all(math.isfinite(r[key]) for r in rows), key
    assert all(0 <= r["val_set_acc"] <= 1 and 0 <= r["val_mcm_acc"] <= 1 for r in rows)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("epoch") == 3 and kinds.count("step") == 6
    model, meta = load_model(run)
    out = model.encode(torch.randn(2, 15, 24), torch.rand(2, 15, 6))
    assert out["set_token"].shape == (2, 32)
    assert meta["meta"]["train"]["split"] == 1


def test_reads_train_videos_of_the_split_only(tmp_path):
    fs = make_train_store(tmp_path / "train.zarr")
    train_split = load_train_split(str(tmp_path / "train.zarr"), 1)
    train_rows = fs.split_indices(1, "train")
    assert len(train_rows) == 36 and train_split.info["n_train_videos"] == 36
    assert np.array_equal(train_split.features, fs.read(train_rows)["features"])
    assert not np.isin(np.arange(0, 48, 4), train_rows).any()


def test_resume_is_bit_identical_on_cpu(tmp_path):
    make_train_store(tmp_path / "train.zarr")
    train(cfg(tmp_path, out=str(tmp_path / "full"), epochs=4, model=ScaleConfig(**TINY_MODEL, dropout=0.1)))

    class Kill(Exception):
        pass

    def killer(e):  # dies in the middle of epoch 3 (2 steps per epoch), after checkpoint_last of epoch 2
        if e["event"] == "step" and e["step"] == 6:
            raise Kill

    c = cfg(tmp_path, out=str(tmp_path / "cut"), epochs=4, model=ScaleConfig(**TINY_MODEL, dropout=0.1))
    with pytest.raises(Kill):
        train(c, progress=killer)
    assert torch.load(tmp_path / "cut" / "checkpoint_last.pt", weights_only=True)["epoch"] == 2
    with pytest.raises(ScaleError, match="--resume"):
        train(c)
    c.resume = True
    resumed = train(c)
    assert resumed["resumed_from_epoch"] == 2
    a = torch.load(tmp_path / "full" / "checkpoint_last.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "checkpoint_last.pt", weights_only=True)
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    for k, st in a["optimizer"]["state"].items():
        assert all(torch.equal(st[n], b["optimizer"]["state"][k][n]) for n in st)
    ma = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    mb = [json.loads(x) for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in ma] == [r["loss"] for r in mb]
    assert [r["val_mcm_loss"] for r in ma] == [r["val_mcm_loss"] for r in mb]
    # resuming with different settings is refused
    c2 = cfg(tmp_path, out=str(tmp_path / "cut"), epochs=4, lr=5e-3, resume=True, model=ScaleConfig(**TINY_MODEL, dropout=0.1))
    with pytest.raises(ScaleError, match="lr"):
        train(c2)


def test_user_mistakes_raise_scale_error(tmp_path):
    with pytest.raises(ScaleError, match="not found"):
        train(cfg(tmp_path))
    make_train_store(tmp_path / "train.zarr")
    with pytest.raises(ScaleError, match="no extracted train videos in split 3"):
        train(cfg(tmp_path, split=3))
    with pytest.raises(ScaleError, match="split"):
        train(cfg(tmp_path, split=4))
    with pytest.raises(ScaleError):
        train(cfg(tmp_path, model=ScaleConfig(**TINY_MODEL, set_size=9)))
    with pytest.raises(ScaleError, match="precision"):
        cfg(tmp_path, precision="fp8")


def test_lr_schedule_and_no_decay_groups():
    assert lr_at(0, 100, 10, 1.0, 0.0) == pytest.approx(0.1)
    assert lr_at(9, 100, 10, 1.0, 0.0) == pytest.approx(1.0)
    assert lr_at(55, 100, 10, 1.0, 0.0) == pytest.approx(0.5)
    assert lr_at(100, 100, 10, 1.0, 0.1) == pytest.approx(0.1)
    from scale_toolkit.model import ScaleModel
    m = ScaleModel(ScaleConfig(input_dim=8, hidden=16, heads=2))
    decay, no = param_groups(m, 0.05)
    names = {id(p): n for n, p in m.named_parameters()}
    nd = {names[id(p)] for p in no["params"]}
    assert {"msk_token", "set_token", "in_proj.bias", "blocks.0.norm1.weight"} <= nd
    assert all(p.ndim == 2 for p in decay["params"]) and no["weight_decay"] == 0.0


def test_fp32_matmul_precision_only_inside_bf16_cpu_steps():
    """The oneDNN route for the fp32 InfoNCE logits is scoped: set inside a bf16 CPU step, restored after."""
    before = torch.get_float32_matmul_precision()
    a, b = torch.randn(64, 32), torch.randn(128, 32)
    with fp32_matmul_precision(torch.device("cpu"), torch.bfloat16):
        assert torch.backends.mkldnn.matmul.fp32_precision == "bf16"
        assert torch.get_float32_matmul_precision() == "medium"  # readable: torch.compile reads it
        logits = a @ b.t()
    assert torch.get_float32_matmul_precision() == before
    assert torch.backends.mkldnn.matmul.fp32_precision != "bf16"
    with fp32_matmul_precision(torch.device("cpu"), None):  # fp32 runs keep IEEE fp32 matmuls
        assert torch.get_float32_matmul_precision() == before
    assert logits.dtype == torch.float32
    assert torch.allclose(logits, (a.double() @ b.double().t()).float(), atol=0.1)  # at worst bf16 inputs, fp32 sums


def test_a_store_without_split_membership_trains_on_every_video(tmp_path):
    """A folder dataset (or a CSV without a split column) has no test videos: all of it is SSL data."""
    feats, coords, labels = order_dataset(20, d=24)
    fs = FeatureStore.create(tmp_path / "folder.zarr", video_ids=[f"c{c}/v{i}.mp4" for i, c in enumerate(labels)],
                             labels=labels, splits=np.zeros((3, 20), np.int8), class_names=["c0", "c1", "c2", "c3"],
                             n_clips=16, feature_dim=24, attrs={"view": {"name": "train16"}})
    fs.write_rows(np.arange(19), features=feats[:19], coords=coords[:19])  # one video still pending
    assert not fs.has_split_membership() and fs.info().done_per_split is None  # shown as "none (every video is SSL ..."
    with pytest.raises(ScaleError, match="1 of the 20 videos in .* still pending extraction"):
        train(cfg(tmp_path, store=str(tmp_path / "folder.zarr"), epochs=1, batch_size=8))
    summary = train(cfg(tmp_path, store=str(tmp_path / "folder.zarr"), epochs=1, batch_size=8, allow_incomplete=True))
    conf = json.loads((tmp_path / "run" / "config.json").read_text())
    assert conf["store"]["n_train_videos"] == 19 and "no split membership" in conf["store"]["videos"]
    assert summary["steps"] == (19 - conf["effective"]["ssl_val_videos"]) // 8 == 1  # 4 held out for the SSL metrics

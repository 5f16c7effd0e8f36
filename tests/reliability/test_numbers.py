"""Class: non-finite and out-of-range numbers. Every numeric flag, config-file value and TOML grid
value is a finite number in range, or one `error:` line before anything is written; a loss that
turns NaN stops training in one line naming epoch and step (the last good checkpoint kept); a
model or checkpoint holding NaN/inf weights is refused."""
from __future__ import annotations

import pytest
import torch

from .helpers import make_model_dir, make_store, message_lines, tree

TRAIN = ["train", "--device", "cpu", "--precision", "fp32", "--threads", "1", "--hidden", "32", "--heads", "4",
         "--head-hidden", "32",
         "--layers", "1", "--epochs", "3", "--batch-size", "8", "--ssl-val", "0", "--store", "{W}/t16.zarr", "--out", "{O}/run",
         "--checkpoint-every", "0"]  # a checkpoint after every epoch: the NaN test checks epoch 1's is kept
PROBE = ["probe", "--store", "{W}/e15.zarr", "--device", "cpu", "--json", "{O}/r.json"]
EXTRACT = ["extract", "--backbone", "tiny", "--root", "{W}", "--out", "{O}/s.zarr", "--workers", "0"]

CASES = {
    **{f"train/{flag}={v}": [*TRAIN, flag, v] for flag in ("--lr", "--wd", "--warmup", "--tau", "--mask-ratio")
       for v in ("nan", "inf", "-inf")},
    "train/config-lr-nan": [*TRAIN, "--config", "{W}/lr_nan.toml"],
    **{f"extract/--timeout={v}": [*EXTRACT, "--timeout", v] for v in ("nan", "inf", "-inf")},
    **{f"probe/{flag}={v}": [*PROBE, flag, v] for flag in ("--knn-temperature", "--val-fraction", "--low-shot")
       for v in ("nan", "inf")},
    **{f"probe/grid-{name}": [*PROBE, "--linear", "--transformer", "--grid", f"{{W}}/{name}.toml"]
       for name in ("lr_nan", "lr_string", "epochs_inf", "wd_neg_inf", "dropout_nan", "model_tau_nan", "model_hidden_str")},
}
GRIDS = {"lr_nan": "[linear]\nlr = [nan]\n", "lr_string": "[linear]\nlr = ['fast']\n",
         "epochs_inf": "[linear]\nepochs = inf\n", "wd_neg_inf": "[linear]\nweight_decay = -inf\n",
         "dropout_nan": "[mlp]\ndropout = nan\n", "model_tau_nan": "[transformer_model]\ntau = nan\n",
         "model_hidden_str": "[transformer_model]\nhidden = 'wide'\n"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = tmp_path_factory.mktemp("numbers")
    make_store(w / "t16.zarr", view="train16", n=24)  # 16 train videos: 2 steps per epoch
    make_store(w / "e15.zarr", view="eval15")
    (w / "lr_nan.toml").write_text("lr = nan\n")
    for name, text in GRIDS.items():
        (w / f"{name}.toml").write_text(text)
    return w


def _one_line(code, err, words=""):
    lines = message_lines(err)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], (code, err[-3000:])
    return lines[0]


@pytest.mark.parametrize("name", sorted(CASES))
def test_non_finite_number_is_one_line_and_writes_nothing(name, world, tmp_path, run_cli):
    args = [a.replace("{W}", str(world)).replace("{O}", str(tmp_path)) for a in CASES[name]]
    before = tree(world)
    code, _, err = run_cli(*args)
    line = _one_line(code, err)
    assert "Traceback" not in err
    assert tree(tmp_path) == set() and tree(world) == before, name
    if "nan" in name or "inf" in name or "str" in name:
        assert "must be" in line, line


def test_nan_loss_stops_training_naming_epoch_and_step(world, tmp_path, run_cli, monkeypatch):
    import scale_toolkit.train.trainer as trainer

    real, calls = trainer.make_loss_fn, [0]

    def make_loss_fn(*a, **kw):
        fn = real(*a, **kw)

        def poisoned(*args):  # 2 steps per epoch (16 train videos, batch 8): step 4 is in epoch 2
            calls[0] += 1
            out = fn(*args)
            if calls[0] == 4:
                out = {**out, "loss": out["loss"] * float("nan")}
            return out
        return poisoned

    monkeypatch.setattr(trainer, "make_loss_fn", make_loss_fn)
    args = [a.replace("{W}", str(world)).replace("{O}", str(tmp_path)) for a in TRAIN]
    code, _, err = run_cli(*args)
    assert calls[0] >= 4, calls
    _one_line(code, err, "NaN or inf at epoch 2, step 4 of 6")
    run = tmp_path / "run"
    ck = torch.load(run / "checkpoint_last.pt", weights_only=True)
    assert ck["epoch"] == 1 and not (run / "model.pt").exists()  # nothing NaN was kept or published
    assert all(torch.isfinite(v).all() for v in ck["state_dict"].values() if v.is_floating_point())


def test_model_or_checkpoint_with_nan_weights_is_refused(world, tmp_path, run_cli):
    model = make_model_dir(tmp_path / "model")
    obj = torch.load(model / "model.pt", weights_only=True)
    name = next(iter(obj["state_dict"]))
    obj["state_dict"][name] = obj["state_dict"][name] * float("nan")
    torch.save(obj, model / "model.pt")
    for cmd in (["probe", "--store", world / "e15.zarr", "--model", model, "--device", "cpu"],
                ["retrieve", "--store", world / "e15.zarr", "--model", model]):
        _one_line(*run_cli(*cmd)[::2], "NaN or inf weights")
    args = [a.replace("{W}", str(world)).replace("{O}", str(tmp_path)) for a in TRAIN]
    args[args.index("--epochs") + 1] = "1"
    assert run_cli(*args)[0] == 0
    ck_path = tmp_path / "run" / "checkpoint_last.pt"
    ck = torch.load(ck_path, weights_only=True)
    key = next(iter(ck["state_dict"]))
    ck["state_dict"][key] = ck["state_dict"][key] + float("inf")
    torch.save(ck, ck_path)
    args[args.index("--epochs") + 1] = "2"
    _one_line(*run_cli(*args, "--resume")[::2], "NaN or inf weights")

"""`--protocol official` against small independent implementations of each official probe row.

The references below are written from the protocol's description (numpy / plain torch), not from
`scale_toolkit.probes.official*`: k-NN must agree exactly, trained rows step for step from the
same seed (same draws), i.e. the same accuracy curves.
"""
import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scale_toolkit.errors import ScaleError
from scale_toolkit.model import ScaleModel, load_model
from scale_toolkit.model.layers import feature_stats
from scale_toolkit.probes import ProbeOptions, run_probes
from scale_toolkit.probes.official import official_subset
from scale_toolkit.probes.subsets import stratified_holdout

from .conftest import build_store, save_tiny_model

EPOCHS = 3


@pytest.fixture
def setup(tmp_path):
    ev = build_store(tmp_path / "eval.zarr", "separable", n_classes=3, per_class=12, dim=8, seed=1)
    tr = build_store(tmp_path / "train.zarr", "separable", n_classes=3, per_class=12, dim=8, seed=2, view="train16",
                     n_clips=16)
    flip = np.random.default_rng(5).random((36, 16)) < 0.5
    tr.write_rows(np.arange(36), features=tr.read(None)["features"], coords=tr.read(None)["coords"], flip=flip)
    run = save_tiny_model(tmp_path / "run", input_dim=8, pos_input="official7")
    return ev, tr, run


def _positions7(coords, flip):
    """[flip, y0, x0, y1, x1, t0, t1] min-max over each video's clips (0 where all clips agree)."""
    raw = np.concatenate([flip[..., None].astype(np.float64), coords[..., [0, 1, 3, 4, 2, 5]]], -1)
    lo, hi = raw.min(1, keepdims=True), raw.max(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (raw - lo) / (hi - lo)
    return np.nan_to_num(out, nan=0.0).astype(np.float32)


def _arrays(fs, rows):
    d = fs.read(None, names=("features", "coords", "flip"))
    x = torch.from_numpy(d["features"][rows].astype(np.float32))
    return x, torch.from_numpy(_positions7(d["coords"], d["flip"])[rows])


def _ref_knn(mem, mem_y, q, n_classes, k=20, t=0.07):
    mem = mem - mem.mean(0)
    q = q - q.mean(0)
    mem /= np.linalg.norm(mem, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    sim = q @ mem.T
    top = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    scores = np.zeros((len(q), n_classes))
    for i in range(len(q)):
        for j in top[i]:
            scores[i, mem_y[j]] += np.exp(sim[i, j] / t)
    return scores.argmax(1)


def test_official_knn_rows_equal_the_reference(setup):
    ev, tr, run = setup
    doc = run_probes(ev.path, rows=["knn", "scale_knn"], model=run, train_store=tr.path,
                     options=ProbeOptions(protocol="official"))
    train, test = ev.split_indices(1, "train"), ev.split_indices(1, "test")
    model, _ = load_model(run)
    y = ev.labels
    for row in ("knn", "scale_knn"):
        feats = []
        for fs, rows in ((tr, train), (ev, test)):
            x, pos = _arrays(fs, rows)
            f = x.mean(1)
            if row == "scale_knn":
                f = torch.cat([f, model.encode(x, pos)["set_token"]], -1)
            feats.append(f.double().numpy())
        pred = _ref_knn(feats[0], y[train], feats[1], 3)
        res = doc["results"][row]
        assert res["predictions"] == pred.tolist() and res["test_rows"] == test.tolist()
        assert res["top1"] == pytest.approx(100 * (pred == y[test]).mean(), abs=1e-9)
    assert doc["protocol_name"] == "official" and "each split centred on its own mean" in doc["protocol"]


def _ref_classifier(kind, model, seed, d, c, train_x):
    """The official row's per-clip classifier, as plain functions over fresh layers (same construction order).
    A fresh standardising predictor (the SSL run's config) takes the statistics of its training clips."""
    torch.manual_seed(seed)
    if kind == "transformer":
        model = ScaleModel(model.config)
        if model.standardizes:
            model.set_feature_stats(*feature_stats(train_x))
    mlp = None
    extra = 0 if kind == "linear" else (512 if kind == "mlp" else model.config.hidden)
    if kind == "mlp":
        mlp = [torch.nn.Linear(d, 2048), torch.nn.Linear(2048, 2048), torch.nn.Linear(2048, 512)]
    lin = torch.nn.Linear(d + extra, c)

    def logits(x, pos, train):
        parts = [x]
        if mlp:
            parts.append(mlp[2](F.relu(mlp[1](F.relu(mlp[0](x))))))
        elif kind != "linear":
            model.train(train and kind != "scale_linear")
            with torch.set_grad_enabled(train and kind != "scale_linear"):
                s = model(x, pos)["set_token"]
            parts.append(s[:, None].expand(-1, x.shape[1], -1))
        return lin(torch.cat(parts, -1))

    params = [("lin." + n, p) for n, p in lin.named_parameters()]
    params += [(f"mlp{i}.{n}", p) for i, m in enumerate(mlp or []) for n, p in m.named_parameters()]
    if kind in ("transformer", "scale_ft"):
        ssl_only = ("pred_head", "target_head", "target_norm", "set_head_a", "set_head_b", "msk_token")
        params += [(n, p) for n, p in model.named_parameters() if not n.startswith(ssl_only)]
    return logits, params


def _ref_train(kind, model, x, pos, y, ex, epos, ey, seed, epochs, lr=3e-4, wd=1e-4, ssl_epochs=200, frac=0.05):
    """Official training: 8 random clips per video per step, batches of min(512, n), AdamW, warm-up + cosine."""
    logits_fn, params = _ref_classifier(kind, model, seed, x.shape[-1], 3, x)
    nodecay = [p for n, p in params if p.ndim == 1 or n.endswith((".bias", "_token"))]
    decay = [p for n, p in params if not (p.ndim == 1 or n.endswith((".bias", "_token")))]
    opt = torch.optim.AdamW([{"params": nodecay, "weight_decay": 0.0}, {"params": decay, "weight_decay": wd}], lr=lr)
    n, v = x.shape[:2]
    bs = min(512, n)
    total = ssl_epochs * (n // bs)
    warm = frac * total
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    curve, step = [], 0
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(n // bs):
            idx = order[i * bs:(i + 1) * bs]
            keep = torch.rand(len(idx), v, generator=gen).argsort(1)[:, :8]
            f = step / warm if step <= warm else 0.5 * (1 + math.cos(math.pi * (step - warm) / (total - warm)))
            for g in opt.param_groups:
                g["lr"] = lr * f
            out = logits_fn(x[idx[:, None], keep], pos[idx[:, None], keep], True)
            loss = F.cross_entropy(out.reshape(-1, 3), y[idx].repeat_interleave(8))
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        with torch.no_grad():
            lg = logits_fn(ex, epos, False).double()
        curve.append({"avg_logits": 100 * (lg.mean(1).argmax(1) == ey).double().mean().item(),
                      "avg_probs": 100 * (lg.softmax(-1).mean(1).argmax(1) == ey).double().mean().item(),
                      "logits": 100 * (lg.argmax(-1) == ey[:, None]).double().mean().item()})
    return curve


@pytest.mark.parametrize("select_on_test", [True, False])
def test_official_trained_rows_equal_the_reference(setup, select_on_test):
    ev, tr, run = setup
    rows = ["linear", "scale_linear", "mlp", "transformer", "scale_ft"]
    doc = run_probes(ev.path, rows=rows, model=run, train_store=tr.path,
                     options=ProbeOptions(protocol="official", epochs=EPOCHS, select_on_test=select_on_test))
    model, _ = load_model(run)
    ft = ScaleModel(replace(model.config, dropout=0.1, attn_dropout=0.1))
    ft.load_state_dict(model.state_dict())
    y = torch.as_tensor(ev.labels, dtype=torch.long)
    train, test = ev.split_indices(1, "train"), ev.split_indices(1, "test")
    assert doc["select_on_test"] is select_on_test
    for kind in rows:
        res = doc["results"][kind]
        m = {"scale_linear": model, "transformer": ft, "scale_ft": ft}.get(kind)
        fit, held = (train, test) if select_on_test else stratified_holdout(train, ev.labels[train], 0.1, 0)
        curve = _ref_train(kind, m, *_arrays(tr, fit), y[fit], *_arrays(ev, held), y[held], 0, EPOCHS)
        flat = [(e + 1, mode, c[mode]) for e, c in enumerate(curve) for mode in ("avg_logits", "avg_probs", "logits")]
        best = max(range(len(flat)), key=lambda i: (flat[i][2], -i))
        epoch, mode, top1 = flat[best]
        key = "curve" if select_on_test else "val_curve"
        for mo in ("avg_logits", "avg_probs", "logits"):
            assert res[key][mo] == pytest.approx([c[mo] for c in curve], abs=1e-6), (kind, mo)
        assert (res["selected"]["epoch"], res["selected"]["mode"]) == (epoch, mode), kind
        assert res["selected"]["on"] == ("TEST" if select_on_test else "validation")
        if select_on_test:
            assert res["top1"] == pytest.approx(top1, abs=1e-6)
        else:  # retrained on the whole train split for the chosen epochs, tested once in the chosen mode
            final = _ref_train(kind, m, *_arrays(tr, train), y[train], *_arrays(ev, test), y[test], 0, epoch)
            assert res["top1"] == pytest.approx(final[-1][mode], abs=1e-6), kind


def test_official_low_shot_rule_and_cli_marks_test_selection(setup, run_cli, tmp_path):
    labels = np.array([0, 1, 0, 0, 1, 2, 0, 1, 1, 1])
    # max(floor(0.5 * n_c), 1) per class, the first in file order: class 0 -> 2 of 4, class 1 -> 2 of 5, class 2 -> 1
    assert official_subset(np.arange(10), labels, 0.5).tolist() == [0, 1, 2, 4, 5]
    ev, tr, run = setup
    out = tmp_path / "o.json"
    code, stdout, err = run_cli("probe", "--store", ev.path, "--train-store", tr.path, "--model", run, "--linear",
                                "--protocol", "official", "--select-on-test", "--epochs", "1", "--json", out)
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["protocol_name"] == "official" and doc["select_on_test"] is True and doc["config"]["select_on_test"]
    text = " ".join(stdout.split())
    assert "TEST-SELECTED" in text and "SELECTED ON TEST" in text and "protocol official" in text
    code, stdout, err = run_cli("probe", "--store", ev.path, "--linear", "--protocol", "official", "--low-shot", "0.5",
                                "--epochs", "1", "--json", out)
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert "NO --train-store" in doc["protocol"] and any("--train-store" in n for n in doc["notes"])
    seed0 = doc["results"]["linear"]["per_seed"]["0"]  # low-shot runs seeds 0, 1, 2
    assert seed0["n_train"] == 3 * max(math.floor(0.5 * 8), 1) and seed0["n_train_full"] == 24  # 8 per class
    code, _, err = run_cli("probe", "--store", ev.path, "--select-on-test")
    assert code == 2 and "--protocol official" in err
    with pytest.raises(ScaleError):
        ProbeOptions(protocol="nope").validate()


@pytest.mark.parametrize("protocol", ["standard", "official"])
def test_knn_rows_alone_stream_means_and_give_the_same_numbers(setup, protocol):
    """k-NN rows without a trained row read a vector per video streamed from the stores (issue #25):
    their results equal those of a run that holds every clip (a trained row in the same run)."""
    ev, tr, run = setup
    options = ProbeOptions(protocol=protocol, epochs=1)
    alone = run_probes(ev.path, rows=["knn", "scale_knn"], model=run, train_store=tr.path, options=options)
    beside = run_probes(ev.path, rows=["knn", "scale_knn", "linear"], model=run, train_store=tr.path, options=options)
    for row in ("knn", "scale_knn"):
        a, b = alone["results"][row], beside["results"][row]
        assert (a["top1"], a["top5"], a["by_k"]) == (b["top1"], b["top5"], b["by_k"]), row
        assert a["predictions"] == b["predictions"], row

"""Early stopping on the validation hold-out (probes/early_stop.py): a stopped point is exactly the
point trained for that many epochs of its schedule, the refit runs those epochs, and on a store whose
answer is known the selection is the one the whole schedule gives."""
import copy

import numpy as np
import torch

from scale_toolkit.probes import ProbeOptions, run_probes
from scale_toolkit.probes.early_stop import PlateauStop
from scale_toolkit.probes.fit import ClipTable, RowsOf, TrainSetting, fit_clip_heads, fit_set_classifier
from scale_toolkit.probes.grid import resolve_grids
from scale_toolkit.probes.linear import linear_head
from scale_toolkit.probes.mlp import mlp_head
from scale_toolkit.probes.set_inputs import FixedSets
from scale_toolkit.probes.transformer import SetClassifier


def _data(n=40, v=5, d=6, c=3):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, v, d, generator=g).half(), torch.randint(0, c, (n,), generator=g)


def test_a_head_stopped_early_is_the_head_trained_for_those_epochs_of_its_schedule():
    """Stopping head 0 after epoch 3 of 8 leaves it as a run of the same cosine cut at epoch 3 (the
    refit's `epochs_run`) gives; head 1 trains on as if nothing stopped."""
    feats, labels = _data()
    table = ClipTable([feats])
    pairs = [(1e-2, 0.0), (3e-3, 0.05)]
    setting = TrainSetting(0, 0, batch_size=16, epochs=8)
    for make in (lambda: linear_head(table.dim, 3, batchnorm=True), lambda: mlp_head(table.dim, 3, hidden=8)):
        torch.manual_seed(1)
        heads = [make() for _ in pairs]
        cut, whole = copy.deepcopy(heads[0]), copy.deepcopy(heads[1])
        asked: list[tuple[int, int]] = []

        def stop(index, epoch, head, asked=asked):
            asked.append((index, epoch))
            assert not head.training  # offered in eval mode
            return index == 0 and epoch == 3

        trained = fit_clip_heads(table, labels, heads, pairs, setting, seed=3, stop=stop)
        assert (0, 4) not in asked and (1, 7) in asked and (1, 8) not in asked  # never after the last epoch
        fit_clip_heads(table, labels, [cut], pairs[:1], TrainSetting(0, 0, batch_size=16, epochs=8, epochs_run=3), seed=3)
        fit_clip_heads(table, labels, [whole], pairs[1:], setting, seed=3)
        for a, b in ((cut, trained[0]), (whole, trained[1])):
            for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
                torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-5, msg=name)


def test_a_set_classifier_stopped_early_is_the_one_trained_for_those_epochs():
    from scale_toolkit.model import ScaleConfig, ScaleModel

    feats, labels = _data(n=24, v=5, d=8)
    coords = torch.rand(24, 5, 6)
    rows = torch.arange(24)

    def fresh():
        torch.manual_seed(0)
        return SetClassifier(ScaleModel(ScaleConfig(input_dim=8, hidden=16, heads=2, layers=1, pos_hidden=16)), 3)

    setting = TrainSetting(1e-3, 0.05, batch_size=8, epochs=6, warmup_epochs=1.0)
    def sets():
        return FixedSets(RowsOf(feats, rows), RowsOf(coords, rows))

    stopped = fit_set_classifier(fresh(), sets(), labels, setting, seed=2, stop=lambda index, epoch, clf: epoch == 2)
    cut = fit_set_classifier(fresh(), sets(), labels, TrainSetting(**{**setting.to_dict(), "epochs_run": 2}), seed=2)
    whole = fit_set_classifier(fresh(), sets(), labels, setting, seed=2)
    for a, b in zip(stopped.state_dict().values(), cut.state_dict().values()):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, c) for a, c in zip(stopped.state_dict().values(), whole.state_dict().values()))


def test_only_a_perfect_validation_top1_held_for_the_patience_stops_a_point():
    labels = np.array([0, 1, 1])
    right = np.array([[0.6, 0.4], [0.4, 0.6], [0.4, 0.6]])
    surer = np.array([[0.9, 0.1], [0.1, 0.9], [0.1, 0.9]])  # the same top-1, a lower NLL
    slip = np.array([[0.4, 0.6], [0.1, 0.9], [0.1, 0.9]])  # 67 %: the count starts again
    stop = PlateauStop(patience=3, labels=labels)
    epochs = [right, surer, slip, surer, surer, surer, surer]
    assert [stop.check(7, e, p) for e, p in enumerate(epochs, start=1)] == [False] * 6 + [True]
    assert stop.epochs_run == {7: 7}
    flat = PlateauStop(patience=1, labels=labels)  # a plateau below 100 % never stops a point
    assert not any(flat.check(0, e, slip) for e in range(1, 50)) and flat.epochs_run == {}


def test_early_stopping_keeps_the_selection_where_the_answer_is_known(make_store):
    """Separable classes, a grid with a point that learns (lr 0.3) and two that hardly move in the
    budget (lr 1e-4, 1e-5): with early stopping the learning point is selected, with its whole
    schedule's top-1, exactly as without it; early stopping did cut some points' schedules, and the
    refit ran the selected point's epochs (its progress bar's length)."""
    fs = make_store("separable", n_classes=4, per_class=20, dim=16)
    grid = {"lr": [1e-5, 1e-4, 0.3], "weight_decay": [1e-3], "epochs": 60}
    docs, finals = {}, {}
    for patience in (0, 5):
        shown = []
        docs[patience] = run_probes(fs.path, rows=["linear", "mlp"], options=ProbeOptions(
            split="1", grid={"linear": {**grid, "patience": patience}, "mlp": {**grid, "patience": patience}}),
            progress=lambda task, done, total, shown=shown: shown.append((task, total)))
        finals[patience] = {task.split(" ")[0]: total for task, total in shown if task.endswith("final")}
    for row in ("linear", "mlp"):
        full, early = docs[0]["results"][row], docs[5]["results"][row]
        assert full["selected"]["lr"] == early["selected"]["lr"] == 0.3
        assert full["top1"] == early["top1"] == 100.0
        assert "epochs_run" not in full["selected"] and all("epochs_run" not in g for g in full["grid"])
        assert any(g.get("epochs_run", 60) < 60 for g in early["grid"])  # the rule did act
        run = early["selected"].get("epochs_run", 60)
        assert finals[5][{"linear": "Linear", "mlp": "MLP"}[row]] * 60 == finals[0][{"linear": "Linear", "mlp": "MLP"}[row]] * run


def test_the_paper_preset_has_no_early_stopping_and_small_has_it_for_every_trained_row():
    assert all(g.patience == 0 and "patience" not in g.to_dict() for g in resolve_grids("paper").values())
    assert all(g.patience > 0 for g in resolve_grids("small").values())


def test_where_validation_stays_below_100_percent_nothing_changes(make_store):
    """Labels independent of the features: no grid point reaches a perfect validation top-1, so the
    small grids' patience leaves every grid point, the selection and the test predictions as they
    are without it."""
    fs = make_store("random", n_classes=4, per_class=15, dim=12)
    docs = [run_probes(fs.path, rows=["linear", "mlp"], options=ProbeOptions(
        split="1", grid={"linear": {"epochs": 25, "patience": p}, "mlp": {"epochs": 25, "patience": p}}))
        for p in (0, 2)]
    for row in ("linear", "mlp"):
        off, on = (d["results"][row] for d in docs)
        assert off["selected"] == on["selected"] and off["grid"] == on["grid"]
        assert off["predictions"] == on["predictions"] and off["top1"] == on["top1"]

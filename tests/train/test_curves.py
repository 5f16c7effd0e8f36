"""curves.png (issue #30): chance levels of the training-batch and held-out accuracies, 1.0 inside the frame."""
from __future__ import annotations

from scale_toolkit.train.plots import chance_levels, curves_figure


def _rows(epochs: int = 20) -> list[dict]:
    rows = []
    for e in range(1, epochs + 1):
        acc = min(1.0, e / 10)  # reaches 1.0 and stays there: the line the frame used to hide
        rows.append({"epoch": e, "loss": 3 - acc, "mcm_loss": 2 - acc, "set_loss": 1 - acc / 2, "lr": 1e-3,
                     "mcm_acc": acc, "set_acc": acc, "val_mcm_acc": acc * 0.9, "val_set_acc": acc})
    return rows


def test_accuracy_panel_names_each_chance_level_and_keeps_1_inside_the_frame():
    chance = chance_levels(batch=16, held_out_batch=10, clips_per_video=8)
    figure = curves_figure(_rows(), chance)
    accuracy = figure.axes[1]
    low, high = accuracy.get_ylim()
    assert high > 1.0 and low < 0.0  # a curve at 1.0 (or 0) is drawn inside, not on the frame
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend == ["mcm_acc (train batches), chance 0.00781 = 1/128", "mcm_acc (held-out), chance 0.0125 = 1/80",
                      "set_acc (train batches), chance 0.0625 = 1/16", "set_acc (held-out), chance 0.1 = 1/10"]
    dotted = sorted(round(line.get_ydata()[0], 5) for line in accuracy.get_lines() if line.get_linestyle() == ":")
    assert dotted == sorted(round(v, 5) for v in chance.values())


def test_without_held_out_videos_only_the_training_chance_levels_are_drawn():
    rows = [{k: v for k, v in r.items() if not k.startswith("val_")} for r in _rows()]
    chance = chance_levels(batch=16, held_out_batch=0, clips_per_video=8)
    accuracy = curves_figure(rows, chance).axes[1]
    dotted = sorted(round(line.get_ydata()[0], 5) for line in accuracy.get_lines() if line.get_linestyle() == ":")
    assert dotted == [round(1 / 128, 5), round(1 / 16, 5)]

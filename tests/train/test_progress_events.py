"""The trainer's progress events (contracts/progress.py): one type per kind, carrying what the run wrote."""
import json

from scale_toolkit.contracts.progress import TrainEnd, TrainEpoch, TrainStart, TrainStep, TrainWarning
from scale_toolkit.model import ScaleConfig
from scale_toolkit.train import TrainConfig, train
from tests.train.helpers import TINY_MODEL, order_dataset


def test_events_are_typed_and_carry_the_metrics_lines_and_the_summary(tmp_path):
    f, c, _ = order_dataset(40, d=24)
    events = []
    summary = train(TrainConfig(out=str(tmp_path / "run"), epochs=3, batch_size=12, precision="fp32", save_every=0,
                                model=ScaleConfig(**TINY_MODEL)), progress=events.append, data=(f, c))
    kinds = [type(e) for e in events]
    assert kinds[0] is TrainStart and kinds[-1] is TrainEnd and kinds.count(TrainEpoch) == 3
    assert kinds.count(TrainStep) == 9 and TrainWarning in kinds  # 36 training videos: 3 steps of 12 an epoch
    start = events[0]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (start.total_steps, start.steps_per_epoch, start.start_epoch) == (9, 3, 0)
    assert start.total_steps == config["effective"]["total_steps"] and start.run_dir == summary["run_dir"]
    steps = [e for e in events if isinstance(e, TrainStep)]
    assert [e.step for e in steps] == list(range(1, 10)) and all(e.samples == 12 for e in steps)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    epochs = [e for e in events if isinstance(e, TrainEpoch)]
    assert [{k: v for k, v in e.to_json().items() if k != "event"} for e in epochs] == lines
    assert all(e.scored_held_out for e in epochs)  # 4 held-out videos, scored every epoch of a short run
    end = events[-1]
    assert {k: v for k, v in end.to_json().items() if k != "event"} == summary
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == summary
    assert end.final == lines[-1] and end.model_path.endswith("model.pt")

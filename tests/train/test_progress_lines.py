"""Training progress as text lines by wall time (issue #30): at most one every ~10 s, never minutes apart."""
from __future__ import annotations

from scale_toolkit.contracts.progress import TrainEpoch, TrainStart, TrainStep
from scale_toolkit.train.progress_lines import epoch_lines


def _run(epoch_s: float, steps_per_epoch: int, epochs: int, every_s: float = 10.0) -> list[tuple[float, str]]:
    now, lines = [0.0], []
    events = epoch_lines(lambda line: lines.append((now[0], line)), every_s=every_s, clock=lambda: now[0])
    events(TrainStart(epochs=epochs, start_epoch=0, steps_per_epoch=steps_per_epoch, total_steps=epochs * steps_per_epoch,
                      batch_size=12, n_videos=12 * steps_per_epoch, run_dir="run", device="cpu", precision="fp32"))
    for epoch in range(1, epochs + 1):
        for i in range(steps_per_epoch):
            now[0] += epoch_s / steps_per_epoch
            step = (epoch - 1) * steps_per_epoch + i + 1
            events(TrainStep(epoch=epoch, step=step, total_steps=epochs * steps_per_epoch, samples=12))
        events(TrainEpoch(epoch=epoch, step=epoch * steps_per_epoch, loss=1.0, mcm_loss=0.5, set_loss=0.5, mcm_acc=0.1,
                          set_acc=0.1, lr=1e-3, samples_per_s=100.0, epoch_time_s=epoch_s, val_mcm_loss=1.0,
                          val_set_loss=1.0, val_mcm_acc=0.5, val_set_acc=0.25))
    return lines
def test_fast_epochs_print_every_ten_seconds_not_every_epoch():
    lines = _run(epoch_s=0.4, steps_per_epoch=5, epochs=450)  # the demo's size: 3 min of training
    gaps = [b[0] - a[0] for a, b in zip(lines, lines[1:])]
    assert 17 <= len(lines) <= 20 and all(g <= 10.5 for g in gaps[:-1])
    assert lines[-1][1] == "epoch 450/450: loss 1.000, held-out MCM/SET top-1 0.50/0.25"


def test_slow_epochs_report_steps_inside_the_epoch():
    lines = _run(epoch_s=45.0, steps_per_epoch=9, epochs=3)  # one epoch outlasts the interval
    times = [t for t, _ in lines]
    assert all(b - a <= 10.0 + 45.0 / 9 for a, b in zip([0.0] + times, times))
    assert any(", step " in line for _, line in lines) and lines[-1][1].startswith("epoch 3/3: loss")


def test_scale_train_prints_a_log_line_at_least_every_ten_seconds():
    from cli.commands.train import LINE_EVERY_S, _TrainProgress
    from cli.progress import LineProgress

    progress = _TrainProgress()  # under pytest stderr is not a terminal: plain lines, as in a job's log
    assert isinstance(progress.bar, LineProgress) and progress.bar.every_s == LINE_EVERY_S == 10.0

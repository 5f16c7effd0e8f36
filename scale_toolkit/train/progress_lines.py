"""The trainer's progress events as short text lines, at most one every few seconds of wall time.

For callers that print lines rather than a bar (`scale demo`): a line per N epochs is minutes
apart on a slow or busy machine and floods a fast one; a line per N seconds is neither.
"""
from __future__ import annotations

import time
from typing import Callable

from scale_toolkit.contracts.progress import TrainEpoch, TrainEvent, TrainProgress, TrainStart, TrainStep

EVERY_S = 10.0


def epoch_lines(say: Callable[[str], None], every_s: float = EVERY_S,
                clock: Callable[[], float] = time.monotonic) -> TrainProgress:
    """A progress callback for ``train()`` that calls ``say(line)`` at most every ``every_s`` seconds
    (on a finished epoch, or mid-epoch when one epoch takes longer than that) and for the last epoch.

    >>> now, lines = [0.0], []
    >>> events = epoch_lines(lines.append, every_s=10, clock=lambda: now[0])
    >>> events(TrainStart(epochs=30, start_epoch=0, steps_per_epoch=2, total_steps=60, batch_size=8, n_videos=16,
    ...                   run_dir="run", device="cpu", precision="fp32"))
    >>> for epoch in range(1, 31):  # 4 s per epoch
    ...     now[0] += 4.0
    ...     events(TrainEpoch(epoch=epoch, step=2 * epoch, loss=1.0 / epoch, mcm_loss=0.5, set_loss=0.5, mcm_acc=0.1,
    ...                       set_acc=0.1, lr=1e-3, samples_per_s=4.0, epoch_time_s=4.0))
    >>> [line.split(":")[0] for line in lines]
    ['epoch 3/30', 'epoch 6/30', 'epoch 9/30', 'epoch 12/30', 'epoch 15/30', 'epoch 18/30', 'epoch 21/30', 'epoch 24/30', \
'epoch 27/30', 'epoch 30/30']
    """
    epochs, printed = [1], [clock()]

    def due() -> bool:
        return clock() - printed[0] >= every_s

    def handle(event: TrainEvent) -> None:
        match event:
            case TrainStart():
                epochs[0], printed[0] = event.epochs, clock()
            case TrainEpoch() if due() or event.epoch == epochs[0]:
                held = (f", held-out MCM/SET top-1 {event.val_mcm_acc:.2f}/{event.val_set_acc:.2f}"
                        if event.scored_held_out else "")
                say(f"epoch {event.epoch}/{epochs[0]}: loss {event.loss:.3f}{held}")
                printed[0] = clock()
            case TrainStep() if due():  # one epoch outlasts the interval: say where inside it we are
                say(f"epoch {event.epoch}/{epochs[0]}, step {event.step}/{event.total_steps}")
                printed[0] = clock()

    return handle

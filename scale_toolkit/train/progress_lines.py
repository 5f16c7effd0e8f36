"""The trainer's progress events as short text lines, at most one every few seconds of wall time.

For callers that print lines rather than a bar (`scale demo`): a line per N epochs is minutes
apart on a slow or busy machine and floods a fast one; a line per N seconds is neither.
"""
from __future__ import annotations

import time
from typing import Any, Callable

EVERY_S = 10.0


def epoch_lines(say: Callable[[str], None], every_s: float = EVERY_S,
                clock: Callable[[], float] = time.monotonic) -> Callable[[dict[str, Any]], None]:
    """A progress callback for ``train()`` that calls ``say(line)`` at most every ``every_s`` seconds
    (on a finished epoch, or mid-epoch when one epoch takes longer than that) and for the last epoch.

    >>> now, lines = [0.0], []
    >>> events = epoch_lines(lines.append, every_s=10, clock=lambda: now[0])
    >>> events({"event": "start", "epochs": 30, "total_steps": 60})
    >>> for epoch in range(1, 31):  # 4 s per epoch
    ...     now[0] += 4.0
    ...     events({"event": "epoch", "epoch": epoch, "step": 2 * epoch, "loss": 1.0 / epoch})
    >>> [line.split(":")[0] for line in lines]
    ['epoch 3/30', 'epoch 6/30', 'epoch 9/30', 'epoch 12/30', 'epoch 15/30', 'epoch 18/30', 'epoch 21/30', 'epoch 24/30', \
'epoch 27/30', 'epoch 30/30']
    """
    state = {"epochs": 1, "total_steps": 0, "printed": clock()}

    def due() -> bool:
        return clock() - state["printed"] >= every_s

    def handle(event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "start":
            state.update(epochs=event["epochs"], total_steps=event.get("total_steps", 0), printed=clock())
        elif kind == "epoch" and (due() or event["epoch"] == state["epochs"]):
            held = (f", held-out MCM/SET top-1 {event['val_mcm_acc']:.2f}/{event['val_set_acc']:.2f}"
                    if "val_mcm_acc" in event else "")
            say(f"epoch {event['epoch']}/{state['epochs']}: loss {event['loss']:.3f}{held}")
            state["printed"] = clock()
        elif kind == "step" and due():  # one epoch outlasts the interval: say where inside it we are
            say(f"epoch {event['epoch']}/{state['epochs']}, step {event['step']}/{event['total_steps']}")
            state["printed"] = clock()

    return handle

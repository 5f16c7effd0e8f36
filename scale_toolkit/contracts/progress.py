"""The progress events `train()` and `run_extraction()` send to their caller's callback, one class per kind.

A producer builds them; a consumer (the CLI's bars and log lines, the demo's text lines) tells them
apart by type::

    match event:
        case TrainStep(step=step, total_steps=total): ...
        case TrainEpoch() as done: ...

Each carries exactly the fields the stage sent when events were ``{"event": KIND, ...}`` dicts.
``to_json()`` gives that dict back (the ``event`` key first), and ``event[key]`` reads it, so a
callback written against the dicts (``event["event"] == "step" and event["step"] == 6``) still works.
No event is written to disk or sent to a web page: metrics.jsonl and summary.json are written by
the trainer from its own dicts, not from these.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable, ClassVar, Optional, Union


@dataclass(frozen=True)
class _Event:
    KIND: ClassVar[str]  # the dict events' "event" value

    def to_json(self) -> dict[str, Any]:
        """The event as the dict it was sent as: ``{"event": KIND, field: value, ...}``."""
        return {"event": self.KIND, **{f.name: getattr(self, f.name) for f in fields(self)}}

    def __getitem__(self, key: str) -> Any:
        """Read access of the old dict events (``event["event"]``, ``event["step"]``)."""
        return self.to_json()[key]


# --- training (scale_toolkit/train/trainer.py) ---------------------------------------------------

@dataclass(frozen=True)
class TrainStart(_Event):
    """The run's plan, before its first step."""

    KIND: ClassVar[str] = "start"
    epochs: int
    start_epoch: int  # > 0 on --resume
    steps_per_epoch: int
    total_steps: int
    batch_size: int
    n_videos: int
    run_dir: str
    device: str
    precision: str  # Precision.describe(): the choice and its reason


@dataclass(frozen=True)
class TrainStep(_Event):
    """One optimiser step done (``step`` counts from 1 over the whole run)."""

    KIND: ClassVar[str] = "step"
    epoch: int
    step: int
    total_steps: int
    samples: int  # videos in the step's global batch


@dataclass(frozen=True)
class TrainEpoch(_Event):
    """An epoch finished: its line of metrics.jsonl (the held-out scores only in epochs that scored them)."""

    KIND: ClassVar[str] = "epoch"
    epoch: int
    step: int
    loss: float
    mcm_loss: float
    set_loss: float
    mcm_acc: float
    set_acc: float
    lr: float
    samples_per_s: float
    epoch_time_s: float
    val_mcm_loss: Optional[float] = None
    val_set_loss: Optional[float] = None
    val_mcm_acc: Optional[float] = None
    val_set_acc: Optional[float] = None

    HELD_OUT: ClassVar[tuple[str, ...]] = ("val_mcm_loss", "val_set_loss", "val_mcm_acc", "val_set_acc")

    @property
    def scored_held_out(self) -> bool:
        return self.val_mcm_acc is not None

    def to_json(self) -> dict[str, Any]:
        """As sent: an epoch without held-out scores has no ``val_*`` keys."""
        return {k: v for k, v in super().to_json().items() if not (k in self.HELD_OUT and v is None)}


@dataclass(frozen=True)
class TrainWarning(_Event):
    """A plan or a run that cannot learn much (``epoch`` 0: said before the first step)."""

    KIND: ClassVar[str] = "warning"
    epoch: int
    message: str


@dataclass(frozen=True)
class TrainEnd(_Event):
    """The run finished: what ``train()`` returns and summary.json holds."""

    KIND: ClassVar[str] = "end"
    run_dir: str
    epochs: int
    resumed_from_epoch: Optional[int]
    steps: int
    batch_size: int
    world_size: int
    device: str
    precision: str
    time_s: float
    samples_per_s: Optional[float]
    final: dict[str, Any]  # the last epoch's metrics line
    warnings: list[str]
    checkpoints_written: int
    bytes_written: int
    model_path: str


TrainEvent = Union[TrainStart, TrainStep, TrainEpoch, TrainWarning, TrainEnd]
TrainProgress = Callable[[TrainEvent], None]


# --- extraction (scale_toolkit/extract/pipeline.py) ----------------------------------------------

@dataclass(frozen=True)
class ExtractCounts(_Event):
    """Where an extraction stands: videos decoded (``done``), failed, and written to the store with
    their block (what a rate and an ETA are based on); ``started`` is the loop's time.monotonic().
    Every extraction event carries them; the extraction loop keeps one and replaces it as rows come
    back (extract/pipeline.py)."""

    total: int
    done: int
    failed: int
    clips: int
    written: int
    started: float

    def counts(self) -> dict[str, Any]:
        """The counts alone, as keyword arguments for an event: ``ExtractBlock(**counts.counts())``."""
        return {f.name: getattr(self, f.name) for f in fields(ExtractCounts)}

    def to_json(self) -> dict[str, Any]:
        """As sent: the counts first, then ``event`` and the kind's own fields."""
        counts = self.counts()
        own = {k: v for k, v in super().to_json().items() if k not in counts}
        return {**counts, **own}


@dataclass(frozen=True)
class ExtractStart(ExtractCounts):
    """Before the first video: the counts at zero, the rows done by earlier runs, the precision chosen."""

    KIND: ClassVar[str] = "start"
    already_done: int
    precision: str


@dataclass(frozen=True)
class ExtractVideo(ExtractCounts):
    """A video came back from its decoder (``error``: why it failed, None when it decoded)."""

    KIND: ClassVar[str] = "video"
    video_id: str
    error: Optional[str]


@dataclass(frozen=True)
class ExtractBlock(ExtractCounts):
    """A block of videos was embedded and written to the store."""

    KIND: ClassVar[str] = "block"


@dataclass(frozen=True)
class ExtractEnd(ExtractCounts):
    """Every row of this shard was handled (the last block is counted in ``written``)."""

    KIND: ClassVar[str] = "end"


ExtractEvent = Union[ExtractStart, ExtractVideo, ExtractBlock, ExtractEnd]
ExtractProgress = Callable[[ExtractEvent], None]

ProgressEvent = Union[TrainEvent, ExtractEvent]

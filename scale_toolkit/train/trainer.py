"""`scale train`: SSL training of the SCALE set-transformer on a cached train-split store."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch
import torch.distributed as dist

from scale_toolkit.atomic import write_json
from scale_toolkit.contracts.progress import TrainEnd, TrainEpoch, TrainProgress, TrainStart, TrainStep, TrainWarning
from scale_toolkit.errors import ScaleError
from scale_toolkit.locks import RunLock
from scale_toolkit.memory import gib, memory_budget
from scale_toolkit.model.io import save_model
from scale_toolkit.model.layers import feature_stats
from scale_toolkit.model.positions import model_positions
from scale_toolkit.model.scale import ScaleModel
from scale_toolkit.ownership import check_run_dir
from scale_toolkit.precision import Precision, resolve_precision
from scale_toolkit.run_files import CONFIG_FILE, CURVES_FILE, SUMMARY_FILE
from scale_toolkit.runtime import import_what_runs_import_later, resolve_device, torch_threads
from scale_toolkit.schedules import param_groups  # noqa: F401  (re-exported: tests and benchmarks use it)
from scale_toolkit.schedules import warmup_cosine as lr_at  # the one schedule (warm-up, cosine to min_lr)
from scale_toolkit.seeding import seeded
from scale_toolkit.store.attributes import StoreAttrs
from scale_toolkit.train.config import TrainConfig
from scale_toolkit.train.data import TrainSplit, load_train_split, train_split_rows
from scale_toolkit.train.distributed import DistInfo, dist_from_env, init_process_group
from scale_toolkit.train.evaluate import ssl_metrics
from scale_toolkit.train.footprint import ssl_step_bytes
from scale_toolkit.train.health import PlateauMonitor, held_out_due, holdout_split
from scale_toolkit.train.host_memory import hand_back_freed_memory, reuse_freed_memory
from scale_toolkit.train.plots import chance_levels, plot_curves
from scale_toolkit.train.ragged import (
    RaggedSampler,
    RaggedSplit,
    StreamedRaggedSplit,
    check_ragged_positions,
    load_ragged_split,
    ragged_held_out,
    ragged_info,
    starts,
)
from scale_toolkit.train.run_dir import Checkpointer, MetricsLog, check_start
from scale_toolkit.train.step import SSLForward, draw_views, fp32_matmul_precision, make_loss_fn
from scale_toolkit.train.stream import StreamedSplit

Progress = TrainProgress  # called with each TrainEvent (contracts/progress.py)
GivenData = Optional[tuple[np.ndarray, ...]]  # (features, coords[, flip]) instead of reading config.store
METRIC_KEYS = ("loss", "mcm_loss", "set_loss", "mcm_acc", "set_acc")


def train(config: TrainConfig, progress: Optional[Progress] = None,
          data: GivenData = None) -> dict[str, Any]:
    """Train SCALE (MCM + SET) and write the run directory; returns a summary dict.

    ``data`` optionally gives (features float16 [N,V,D], coords [N,V,6][, flip bool [N,V]]) of the
    training videos directly instead of reading ``config.store`` (no flip: none flipped). Under torchrun (RANK/WORLD_SIZE set)
    it runs DDP; every rank holds the whole training split and computes its slice of each
    global batch; embeddings are all-gathered with gradient so negatives span all ranks.
    """
    info = dist_from_env()
    device = resolve_device(config.device, info.local_rank if info.enabled else None)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # the rank's GPU is the current one (NCCL, DDP)
    created = init_process_group(info, device)
    lock = RunLock(config.out)  # taken by _train just before its first write, held to the end
    try:
        with torch_threads(config.threads):
            return _train(config, progress, data, info, device, lock)
    finally:
        lock.release()
        if created:
            dist.destroy_process_group()


@dataclass
class _TrainingData:
    """The training videos as the loop needs them, and the held-out ones for the health metrics."""

    features: np.ndarray | StreamedSplit | RaggedSplit  # float16 [n, V, D], read a window at a time, or ragged
    positions: Optional[np.ndarray]  # float32 [n, V, 6] (or 7: official positions); None when streamed
    held_out: Optional[tuple[np.ndarray, np.ndarray]]
    store_info: dict[str, Any]

    @property
    def n_held_out(self) -> int:
        return 0 if self.held_out is None else len(self.held_out[0])


@dataclass
class _RunPlan:
    """Batch, steps and schedule of a run, resolved from the config, the data and the ranks."""

    n_videos: int
    clips_per_video: int
    batch: int
    steps_per_epoch: int
    epochs: int
    total_steps: int
    warmup_steps: int
    rows: tuple[int, int]  # this rank's slice of each global batch

    def effective(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "batch_size": self.batch, "steps_per_epoch": self.steps_per_epoch,
                "total_steps": self.total_steps, "warmup_steps": self.warmup_steps}


@dataclass
class _Run:
    """One run's moving parts, shared by its epochs: settings, model and step, where it writes and reports."""

    config: TrainConfig  # the model's input_dim resolved from the features
    plan: _RunPlan
    model: ScaleModel
    optimizer: torch.optim.Optimizer
    loss_fn: Callable[..., dict[str, torch.Tensor]]
    window: Optional[_Window | _RaggedWindow]  # the buffers a streamed split is read into; None when resident
    precision: Precision
    info: DistInfo
    device: torch.device
    out: Path
    checkpoints: Checkpointer
    metrics: MetricsLog
    meta: dict[str, Any]  # config.json, also stored in every checkpoint and in model.pt
    lock: RunLock  # held while the run lives: a lock train() does not pass closes with it
    emit: Progress
    warnings: list[str] = field(default_factory=list)
    ragged: Optional[RaggedSampler] = None  # a ragged store's set sampler (train/ragged.py); None: fixed clips

    def warn(self, epoch: int, note: str) -> None:
        self.warnings.append(note)
        self.emit(TrainWarning(epoch=epoch, message=note))


def _train(config: TrainConfig, progress: Optional[Progress], data: GivenData, info: DistInfo, device: torch.device,
           lock: Optional[RunLock] = None) -> dict[str, Any]:
    """The run itself, in order (``train`` adds the process-wide setup): prepare, epochs, summary, model.pt."""
    run, start_epoch, held_out = _prepare(config, progress, data, info, device, lock)
    run.model.train()
    plan = run.plan
    run.emit(TrainStart(epochs=plan.epochs, start_epoch=start_epoch, steps_per_epoch=plan.steps_per_epoch,
                        total_steps=plan.total_steps, batch_size=plan.batch, n_videos=plan.n_videos,
                        run_dir=str(run.out), device=str(device), precision=run.precision.describe()))
    if start_epoch == 0:
        _warn_about_the_plan(run)
    t_start = time.perf_counter()
    last, rates = _run_epochs(run, start_epoch, held_out)
    summary = _summary(run, start_epoch, time.perf_counter() - t_start, last, rates)
    if info.is_main:  # the only process that reports (run.emit), and the one that writes model.pt
        _finish(run, summary)
        run.emit(TrainEnd(**summary))
    if info.enabled:
        dist.barrier()
    return summary


FEW_STEPS = 1000  # the demo's order classes needed 2250 steps; 900 were too few (docs/training.md)


def _warn_about_the_plan(run: _Run) -> None:
    """Plans that cannot learn much, said before the first step: a warm-up as long as the run, too few steps."""
    config, plan = run.config, run.plan
    if plan.warmup_steps >= plan.total_steps:
        run.warn(0, f"the warm-up ({config.warmup:g} epochs = {plan.warmup_steps} steps) is as long as the whole run "
                    f"({plan.epochs} epochs = {plan.total_steps} steps): the learning rate never reaches --lr "
                    f"{config.lr:g}; lower --warmup or raise --epochs")
    if plan.total_steps < FEW_STEPS:
        run.warn(0, f"only {plan.total_steps} optimiser steps ({plan.epochs} epochs of {plan.steps_per_epoch}): SCALE's SSL "
                    f"needs thousands on a small training set (the demo's order classes: 900 too few, 2250 enough); "
                    f"raise --epochs or set --steps {FEW_STEPS} or more")


def _prepare(config: TrainConfig, progress: Optional[Progress], data: GivenData, info: DistInfo, device: torch.device,
             lock: Optional[RunLock]) -> tuple[_Run, int, Optional[tuple[np.ndarray, np.ndarray]]]:
    """Everything before the first epoch: checks, data, model, optimiser, resume, config.json.

    Returns the run, the epoch it starts from and the held-out videos."""
    out = _check_out(config, info)
    lock = lock or RunLock(out)  # train() passes one it releases; a direct caller's closes with it
    train_data = _load_data(config, data, info)
    config = replace(config, model=replace(config.model, input_dim=int(train_data.features.shape[2])))
    plan = _plan(config, train_data.features.shape, info)
    precision = resolve_precision(config.precision, device)
    model = _init_model(config, train_data.features, device)
    optimizer = torch.optim.AdamW(param_groups(model, config.wd), lr=config.lr, betas=config.betas,
                                  fused=device.type in ("cpu", "cuda"))
    checkpoints, metrics = Checkpointer(out, config.save_every, config.checkpoint_every, config.last_every), MetricsLog(out)
    start_epoch = _resume_or_start(config, model, optimizer, checkpoints, metrics, lock, info, device)
    meta = {"train": config.to_dict(), "model": config.model.to_dict(), "store": train_data.store_info,
            "effective": {**plan.effective(), "ssl_val_videos": train_data.n_held_out, "world_size": info.world_size,
                          "device": str(device), **precision.to_dict()}}
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / CONFIG_FILE, meta)
    loss_fn, window = _loss_fn(model, train_data, config, plan, info, device)
    run = _Run(config, plan, model, optimizer, loss_fn, window, precision, info, device, out, checkpoints, metrics, meta, lock,
               emit=progress if (progress is not None and info.is_main) else (lambda event: None),
               ragged=_ragged_sampler(train_data.features, window, device))
    return run, start_epoch, train_data.held_out


def _ragged_sampler(features: Any, window: Optional[_Window | _RaggedWindow], device: torch.device) -> Optional[RaggedSampler]:
    """A ragged store's set sampler: over the resident split, or the one a streamed split's windows update."""
    if isinstance(window, _RaggedWindow):
        return window.sampler
    return RaggedSampler(features.offsets, features.counts, device) if isinstance(features, RaggedSplit) else None


def _check_out(config: TrainConfig, info: DistInfo) -> Path:
    """The run directory, refused before anything is read if it cannot be trained into."""
    if not config.out:
        raise ScaleError("no run directory given; pass --out RUN_DIR")
    if config.compile and info.enabled:
        raise ScaleError("--compile runs in a single process only; drop it under torchrun")
    out = Path(config.out)
    check_run_dir(out)  # never write checkpoints and metrics into a folder of the user's files
    check_start(out, config.resume)
    return out


def _load_data(config: TrainConfig, data: GivenData, dist: DistInfo) -> _TrainingData:
    """The train split (or ``data``), positions as the model reads them, and the held-out videos:
    resident when the split fits the memory budget, else streamed from the store (stream.py)."""
    if data is None and config.store:
        ragged = _ragged_data(config, dist)
        if ragged is not None:
            return ragged
        streamed = _streamed_data(config, dist)
        if streamed is not None:
            return streamed
    model_config = config.model  # its positions and set size (input_dim follows the features)
    split = _read_split(config, data)
    features, coords = split.features, split.coords
    if features.ndim != 3 or coords.shape != features.shape[:2] + (6,):
        raise ScaleError(f"expected features [N,V,D] and coords [N,V,6], got {features.shape} and {coords.shape}")
    if model_config.pos_input != "eq5":  # scaled over each video's own (all V) clips, once, as the official extraction does
        flip = np.zeros(features.shape[:2], bool) if split.flip is None else split.flip
        coords = model_positions(model_config.pos_input, coords, flip)
    _check_clips(features.shape[1], model_config.set_size, split.info)
    # held-out train-split videos for the SSL health metrics (never test videos, never trained on)
    train_rows, val_rows = holdout_split(features.shape[0], config.ssl_val, config.seed)
    if not len(val_rows):
        return _TrainingData(features, coords, None, split.info)
    held_out = (features[val_rows], coords[val_rows])
    if data is None:  # the arrays are ours (read from the store): compact them, not a second copy of the split
        features, coords = _keep_rows_in_place(features, train_rows), _keep_rows_in_place(coords, train_rows)
    else:
        features, coords = features[train_rows], coords[train_rows]
    return _TrainingData(features, coords, held_out, split.info)


def _check_clips(clips: int, set_size: int, info: dict[str, Any]) -> None:
    if clips < 2 * set_size:
        where, view = info.get("path", "the store"), StoreAttrs.of(info).view_name
        what = f"{where} ({view} view)" if view else where
        raise ScaleError(f"{what} has {clips} clips per video but training needs 2 x set_size = {2 * set_size}: "
                         "train on a train16 store (`scale extract --view train16`), or lower the model's set_size")


def _streamed_data(config: TrainConfig, dist: DistInfo) -> Optional[_TrainingData]:
    """The train split as a StreamedSplit when its features do not fit the memory budget, else None.
    The held-out videos (a few hundred at most) are read whole."""
    fs, idx, info = train_split_rows(config.store, config.split, config.allow_incomplete)
    budget, source = _data_budget(config, dist, fs.feature_dim, idx.size)
    split_bytes = idx.size * fs.n_clips * fs.clip_bytes(("features", "coords"))
    if split_bytes <= budget:
        return None
    _check_clips(fs.n_clips, config.model.set_size, info)
    train_pos, val_pos = holdout_split(idx.size, config.ssl_val, config.seed)
    stream = StreamedSplit(str(config.store), idx[train_pos], fs.n_clips, fs.feature_dim, config.model.pos_input, _store=fs)
    stream.fit_window(budget, min(config.batch_size, len(train_pos)))
    info = {**info, "streamed": _streamed_record(budget, source, split_bytes, stream)}
    held_out = stream.read(idx[val_pos]) if len(val_pos) else None
    return _TrainingData(stream, None, held_out, info)


def _data_budget(config: TrainConfig, dist: DistInfo, input_dim: int, n_videos: int) -> tuple[int, str]:
    """What this process may hold of the split: the memory budget less what a step of this model
    needs (footprint.py) and, under `--max-memory`, less what the process holds already."""
    import_what_runs_import_later()
    local_batch = max(1, min(config.batch_size, n_videos) // max(1, dist.world_size))
    working = ssl_step_bytes(config.model, local_batch, input_dim)
    return memory_budget(config.max_memory, processes=dist.local_world_size, working=working)


def _streamed_record(budget: int, source: str, split_bytes: int, stream: StreamedSplit) -> dict[str, Any]:
    """What config.json says of a split streamed from its store."""
    return {"budget_bytes": budget, "budget_from": source, "split_bytes": int(split_bytes), "window_videos": stream.window}


def _ragged_data(config: TrainConfig, dist: DistInfo) -> Optional[_TrainingData]:
    """A ragged store's train split (videos of any length, train/ragged.py), else None: held whole,
    unpadded, where its clips fit the memory budget, else streamed a window of videos at a time
    (StreamedRaggedSplit; a single process only)."""
    from scale_toolkit.store.ragged import RaggedStore

    fs, idx, info = train_split_rows(config.store, config.split, config.allow_incomplete)
    if not isinstance(fs, RaggedStore):
        return None
    counts = fs.clip_counts.astype(np.int64)  # read once: the property copies the whole index
    split_bytes = int(counts[idx].sum()) * fs.clip_bytes(("features", "coords"))
    budget, source = _data_budget(config, dist, fs.feature_dim, idx.size)
    train_pos, val_pos = holdout_split(idx.size, config.ssl_val, config.seed)
    if split_bytes > budget:  # read a window of videos' clips at a time (train/ragged.py StreamedRaggedSplit)
        if dist.enabled:
            raise ScaleError(f"{config.store} holds videos of any length, whose train split ({gib(split_bytes)} of clips) "
                             f"is over the memory budget of {gib(budget)} ({source}): such a split streams in a single "
                             "process only; set a larger --max-memory or train without torchrun")
        check_ragged_positions(info, config.model.pos_input)
        rows = idx[train_pos]
        stream = StreamedRaggedSplit(str(config.store), rows, int(counts[rows].max()), fs.feature_dim,
                                     config.model.pos_input, _store=fs, counts=counts[rows])
        stream.fit_window(budget, min(config.batch_size, len(rows)))
        info = {**ragged_info(fs, idx, info), "streamed": _streamed_record(budget, source, split_bytes, stream)}
        return _TrainingData(stream, None, ragged_held_out(fs, idx[val_pos], config.model.set_size, config.seed), info)
    split, held_out, info = load_ragged_split(fs, idx, info, config.model.pos_input, config.model.set_size,
                                              val_pos, train_pos, config.seed)
    return _TrainingData(split, None, held_out, info)


def _keep_rows_in_place(x: np.ndarray, rows: np.ndarray, piece: int = 4096) -> np.ndarray:
    """``x[rows]`` for sorted unique ``rows``, built by moving them to the front of ``x`` itself: the
    split is never held twice. Row ``rows[i] >= i``, so moving in order only overwrites rows already moved."""
    for start in range(0, len(rows), piece):
        part = rows[start:start + piece]
        x[start:start + len(part)] = x[part]
    return x[:len(rows)]


def _read_split(config: TrainConfig, data: GivenData) -> TrainSplit:
    """The train videos of ``config.store``, or the arrays given as ``data`` (no flip: none flipped)."""
    if data is None:
        if not config.store:
            raise ScaleError("no feature store given; pass --store TRAIN16.zarr")
        return load_train_split(config.store, config.split, config.allow_incomplete,
                                with_flip=config.model.pos_input != "eq5")
    features, coords, *flip = data
    info = {"path": "<in-memory>", "split": config.split, "n_train_videos": int(features.shape[0])}
    return TrainSplit(features, coords, info, flip[0] if flip else None)


def _plan(config: TrainConfig, shape: tuple[int, ...], info: DistInfo) -> _RunPlan:
    n_videos, world_size = shape[0], info.world_size
    batch = min(config.batch_size, n_videos)
    batch -= batch % world_size
    if batch < 2:
        raise ScaleError(f"only {n_videos} training videos: too few for a contrastive batch across {world_size} process(es)")
    steps_per_epoch = n_videos // batch
    epochs = max(config.epochs, -(-config.steps // steps_per_epoch)) if config.steps else config.epochs
    local = batch // world_size
    return _RunPlan(n_videos=n_videos, clips_per_video=shape[1], batch=batch, steps_per_epoch=steps_per_epoch,
                    epochs=epochs, total_steps=epochs * steps_per_epoch,
                    warmup_steps=int(round(config.warmup * steps_per_epoch)),
                    rows=(info.rank * local, (info.rank + 1) * local))


def _init_model(config: TrainConfig, features: np.ndarray | StreamedSplit | RaggedSplit, device: torch.device) -> ScaleModel:
    """A fresh model initialised from ``config.seed``; standardising ones get the training clips' statistics."""
    model = seeded(lambda: ScaleModel(config.model), config.seed).to(device)
    if model.standardizes:  # statistics of the training clips only (every rank holds the whole split)
        if isinstance(features, StreamedSplit):
            pieces: Iterator[torch.Tensor] = (torch.from_numpy(features.read(rows)[0]) for rows in features.windows_in_store_order())
        elif isinstance(features, RaggedSplit):
            pieces = iter([torch.from_numpy(features.features)])
        else:
            pieces = iter([torch.from_numpy(np.ascontiguousarray(features))])
        model.set_feature_stats(*feature_stats(pieces))
    return model


def _resume_or_start(config: TrainConfig, model: ScaleModel, optimizer: torch.optim.Optimizer,
                     checkpoints: Checkpointer, metrics: MetricsLog, lock: RunLock, info: DistInfo,
                     device: torch.device) -> int:
    """The epoch to start from: the checkpoint's on --resume (weights, optimiser, metrics cut back), else 0.
    The run lock is taken before the first write."""
    if not config.resume:
        if info.is_main:
            lock.acquire()
            metrics.start_over()
        return 0
    checkpoint = checkpoints.load_for_resume(device, config, config.model.to_dict())
    if info.is_main:
        lock.acquire()
    model.load_state_dict(checkpoint["state_dict"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    start_epoch = int(checkpoint["epoch"])
    if info.is_main:
        checkpoints.remove_stale_temporaries()
        metrics.cut_back(start_epoch)
    return start_epoch


def _loss_fn(model: ScaleModel, train_data: _TrainingData, config: TrainConfig, plan: _RunPlan, info: DistInfo,
             device: torch.device) -> tuple[Callable[..., dict[str, torch.Tensor]], Optional[_Window | _RaggedWindow]]:
    """The step's forward + losses over the resident store, or over the window buffer that a
    streamed split is read into (DDP-wrapped under torchrun, compiled on --compile)."""
    window: Optional[_Window | _RaggedWindow] = None
    if isinstance(train_data.features, StreamedRaggedSplit):  # one "video" of a window's clips, read into a buffer
        flat = train_data.features
        window = _RaggedWindow(flat, torch.zeros((1, flat.capacity, flat.feature_dim), dtype=torch.float16, device=device),
                               torch.zeros((1, flat.capacity, 6), dtype=torch.float32, device=device),
                               RaggedSampler(np.zeros(0, np.int64), np.zeros(0, np.int64), device))
        features, positions = window.features, window.positions
    elif isinstance(train_data.features, StreamedSplit):
        stream = train_data.features
        # this rank's share of a window: its rows of each whole batch
        n, clips, dim = stream.window // plan.batch * (plan.rows[1] - plan.rows[0]), stream.n_clips, stream.feature_dim
        window = _Window(stream, torch.zeros((n, clips, dim), dtype=torch.float16, device=device),
                         torch.zeros((n, clips, 6 if stream.pos_input == "eq5" else 7), dtype=torch.float32, device=device))
        features, positions = window.features, window.positions
    elif isinstance(train_data.features, RaggedSplit):  # one "video" of every clip: the sets are its rows
        features = torch.from_numpy(train_data.features.features)[None].to(device)
        positions = torch.from_numpy(train_data.features.positions)[None].to(device)
    else:
        features = torch.from_numpy(np.ascontiguousarray(train_data.features, dtype=np.float16)).to(device)
        positions = torch.from_numpy(np.ascontiguousarray(train_data.positions, dtype=np.float32)).to(device)
    forward: torch.nn.Module = SSLForward(model)
    if info.enabled:
        forward = torch.nn.parallel.DistributedDataParallel(forward, device_ids=[device.index] if device.type == "cuda" else None)
    loss_fn = make_loss_fn(forward, config.model, features, positions, compile=config.compile)
    return (_compile_errors_in_one_line(loss_fn) if config.compile else loss_fn), window


@dataclass
class _Window:
    """A streamed split's buffers on the device: the loss reads them, each window is copied into them.

    Under DDP a rank computes rows ``lo:hi`` of every batch, so it reads and holds only those rows
    of each window (its share), placed in batch order; the batches and their losses are the
    single-process run's."""

    stream: StreamedSplit
    features: torch.Tensor
    positions: torch.Tensor

    def batches(self, seed: int, epoch: int, batch: int, lo: int, hi: int) -> Iterator[torch.Tensor]:
        """The epoch's batches (buffer rows at ``lo:hi``), window by window; a window's rows beyond
        its last whole batch (the epoch's last short batch) are not read."""
        local, device = hi - lo, self.features.device
        for rows, order in self.stream.epoch_windows(seed, epoch):
            n_batches = len(rows) // batch
            mine = rows[order[:n_batches * batch].reshape(n_batches, batch)[:, lo:hi].reshape(-1)]
            by_row = np.argsort(mine, kind="stable")  # the store is read in row order
            feats, pos = self.stream.read(mine[by_row])
            slots = torch.from_numpy(by_row).to(device)  # buffer slot of each row read: its place in batch order
            self.features.index_copy_(0, slots, torch.from_numpy(feats).to(device))
            self.positions.index_copy_(0, slots, torch.from_numpy(pos).to(device))
            del feats, pos
            hand_back_freed_memory()  # the window's host arrays, before the steps reuse the heap
            for b in range(n_batches):
                videos = torch.zeros(batch, dtype=torch.long, device=device)  # only lo:hi is read on this rank
                videos[lo:hi] = torch.arange(b * local, (b + 1) * local, device=device)
                yield videos


@dataclass
class _RaggedWindow:
    """A streamed ragged split's buffers: each window's clips are copied into the front of them and
    the sampler draws the sets from those videos (single process)."""

    stream: StreamedRaggedSplit
    features: torch.Tensor  # float16 [1, capacity, D]
    positions: torch.Tensor  # float32 [1, capacity, 6]
    sampler: RaggedSampler

    def batches(self, seed: int, epoch: int, batch: int, lo: int, hi: int) -> Iterator[torch.Tensor]:
        """The epoch's batches of videos (indices into the window in the buffer); a window's videos
        beyond its last whole batch are read with it but not trained on (the epoch's short batch)."""
        for rows, order in self.stream.epoch_windows(seed, epoch):
            feats, coords = self.stream.read(rows)
            self.features[0, :len(feats)] = torch.from_numpy(feats).to(self.features.device)
            self.positions[0, :len(coords)] = torch.from_numpy(coords).to(self.positions.device)
            counts = self.stream.counts_of(rows)
            self.sampler.use(starts(counts), counts)
            del feats, coords
            hand_back_freed_memory()
            order_t = torch.from_numpy(order).to(self.features.device)
            for b in range(len(rows) // batch):
                yield order_t[b * batch:(b + 1) * batch]


def _resident_batches(n_videos: int, steps: int, batch: int, generator: torch.Generator,
                      device: torch.device) -> Iterator[torch.Tensor]:
    order = torch.randperm(n_videos, generator=generator, device=device)
    for i in range(steps):
        yield order[i * batch:(i + 1) * batch]


def _run_epochs(run: _Run, start_epoch: int, held_out: Optional[tuple[np.ndarray, np.ndarray]]
                ) -> tuple[dict[str, Any], list[float]]:
    """The epochs from ``start_epoch`` on; returns the last epoch's metrics line and every epoch's samples/s."""
    monitor = PlateauMonitor(run.plan.epochs, 0 if held_out is None else len(held_out[0]))
    last: dict[str, Any] = {}
    rates = []
    with reuse_freed_memory(run.device):  # each step reuses the last one's pages (host_memory.py)
        for epoch in range(start_epoch, run.plan.epochs):
            last = _run_epoch(run, epoch)
            rates.append(last["samples_per_s"])
            if run.info.is_main:  # held-out metrics, metrics.jsonl, checkpoints and curves: the main process's
                _score_held_out(run, held_out, monitor, epoch + 1, last)
                _record_epoch(run, epoch + 1, last)
            run.emit(TrainEpoch(**last))
    return last, rates


def _run_epoch(run: _Run, epoch: int) -> dict[str, Any]:
    """One epoch of steps; returns its metrics line. Metrics stay on the device: one host sync per epoch."""
    config, plan, device = run.config, run.plan, run.device
    generator = _seed_epoch(config.seed, epoch, device)
    steps, batch, amp = plan.steps_per_epoch, plan.batch, run.precision.autocast_dtype
    batches = (run.window.batches(config.seed, epoch, batch, *plan.rows) if run.window is not None
               else _resident_batches(plan.n_videos, steps, batch, generator, device))
    sums = torch.zeros(len(METRIC_KEYS), device=device)
    first_bad = torch.full((), -1, dtype=torch.long, device=device)  # first step with a non-finite loss
    t0 = time.perf_counter()
    lr = config.lr
    for i, videos in enumerate(batches):
        step = epoch * steps + i
        lr = lr_at(step, plan.total_steps, plan.warmup_steps, config.lr, config.min_lr)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        if run.ragged is None:
            sets, mask = draw_views(config.model, batch, plan.clips_per_video, generator, device)
        else:  # videos of any length: two sets from each video's own clips, as rows of the flat store
            videos, sets, mask = run.ragged.flat_views(config.model, videos, generator)
        with fp32_matmul_precision(device, amp):
            losses = run.loss_fn(videos, sets, mask, plan.rows[0], plan.rows[1], run.info.world_size, amp)
            run.optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), config.grad_clip)
        run.optimizer.step()
        sums += torch.stack([losses[k].detach().float() for k in METRIC_KEYS])
        # on the device, no host sync per step; read once per epoch below
        first_bad.masked_fill_((first_bad < 0) & ~torch.isfinite(losses["loss"].detach()), step + 1)
        run.emit(TrainStep(epoch=epoch + 1, step=step + 1, total_steps=plan.total_steps, samples=batch))
    means = (sums / steps).tolist()  # one host sync per epoch
    if int(first_bad) >= 0:  # stop before this epoch's NaN weights reach a checkpoint or model.pt
        raise ScaleError(f"training stopped: the loss became NaN or inf at epoch {epoch + 1}, step {int(first_bad)} "
                         f"of {plan.total_steps}; {run.out} keeps its last checkpoint (if one was written): lower --lr "
                         "or check the store's features, then train into a new --out or --resume")
    seconds = time.perf_counter() - t0
    return {"epoch": epoch + 1, "step": (epoch + 1) * steps, **dict(zip(METRIC_KEYS, means)), "lr": lr,
            "samples_per_s": steps * batch / seconds, "epoch_time_s": seconds}


def _seed_epoch(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    """The epoch's draws (order, sets, masks: the returned generator; dropout: torch's) from ``seed``
    and ``epoch`` alone, so a resumed run repeats them bit for bit."""
    epoch_seed = (seed * 1_000_003 + epoch * 7_919 + 12_345) % (2**63 - 1)
    generator = torch.Generator(device=device)
    generator.manual_seed(epoch_seed)
    torch.manual_seed(epoch_seed ^ 0x5EED)  # dropout
    return generator


def _score_held_out(run: _Run, held_out: Optional[tuple[np.ndarray, np.ndarray]], monitor: PlateauMonitor,
                    epoch: int, line: dict[str, Any]) -> None:
    """Add the held-out videos' metrics to the epoch's ``line`` when due; warn once when they stall."""
    if held_out is None or not held_out_due(epoch, run.plan.epochs):
        return
    line.update(_held_out(run.model, held_out, run.plan.batch, run.config.seed))
    note = monitor.update(epoch, line["val_mcm_acc"], line["val_set_acc"])
    if note:
        run.warn(epoch, note)


def _record_epoch(run: _Run, epoch: int, line: dict[str, Any]) -> None:
    """metrics.jsonl, the checkpoints due after ``epoch`` (by time, see Checkpointer) and, with a snapshot
    or at the end, the curves."""
    run.metrics.append(line)
    done = epoch == run.plan.epochs
    run.checkpoints.save(epoch, done, {"model_config": run.config.model.to_dict(), "train_config": run.config.to_dict(),
                                       "state_dict": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
                                       "meta": run.meta})
    if done or run.checkpoints.snapshot_due(epoch):
        _plot(run)


def _plot(run: _Run) -> None:
    """curves.png, with the chance level of each accuracy (the held-out batches are smaller than the training ones)."""
    model = run.config.model
    held_out_batch = min(run.plan.batch, int(run.meta["effective"]["ssl_val_videos"]))
    plot_curves(run.metrics.path, run.out / CURVES_FILE,
                chance=chance_levels(run.plan.batch, held_out_batch, model.set_size * (2 if model.mcm_pool_sets else 1)))


def _summary(run: _Run, start_epoch: int, seconds: float, last: dict[str, Any], rates: list[float]) -> dict[str, Any]:
    """What train() returns (and summary.json holds)."""
    plan = run.plan
    return {"run_dir": str(run.out), "epochs": plan.epochs, "resumed_from_epoch": start_epoch or None,
            "steps": plan.total_steps, "batch_size": plan.batch, "world_size": run.info.world_size,
            "device": str(run.device), "precision": run.precision.value, "time_s": seconds,
            "samples_per_s": float(np.median(rates)) if rates else None, "final": last, "warnings": run.warnings,
            # what this process wrote to disk for checkpoints (model.pt is added by _finish)
            "checkpoints_written": run.checkpoints.writes, "bytes_written": run.checkpoints.bytes_written}


def _finish(run: _Run, summary: dict[str, Any]) -> None:
    """model.pt, the final curves and summary.json (main process)."""
    model_path = save_model(run.model, run.out, extra=run.meta)
    summary["model_path"] = str(model_path)
    summary["bytes_written"] += model_path.stat().st_size
    if not summary["final"]:  # resumed a finished run: report its last epoch
        summary["final"] = run.metrics.last()
    if run.metrics.path.exists():
        _plot(run)
    write_json(run.out / SUMMARY_FILE, summary)


def _held_out(model: ScaleModel, val: tuple[np.ndarray, np.ndarray], batch: int, seed: int) -> dict[str, float]:
    """MCM / SET loss and top-1 on the held-out videos: the same sets and masks every epoch (fixed
    seed), eval mode, in-batch candidates as in training (batches of at most ``batch`` videos);
    small hold-outs are drawn several times so the accuracy is not a handful of samples."""
    n = len(val[0])
    rounds = min(8, max(1, -(-256 // n)))
    scores = ssl_metrics(model, val[0], val[1], batch_size=min(batch, n), seed=seed, rounds=rounds)
    return {f"val_{k}": scores[k] for k in ("mcm_loss", "set_loss", "mcm_acc", "set_acc")}


def _compile_errors_in_one_line(loss_fn: Callable) -> Callable:
    """The first call of a compiled step runs the compiler: a missing C++ toolchain or an
    unsupported op becomes one clear line instead of a compiler traceback."""

    def call(*args: Any) -> Any:
        try:
            return loss_fn(*args)
        except Exception as exc:  # torch._dynamo / inductor errors have no common public base
            if "torch._dynamo" not in type(exc).__module__ and "torch._inductor" not in type(exc).__module__:
                raise
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ScaleError(f"torch.compile failed ({first}); train without --compile") from exc
    return call

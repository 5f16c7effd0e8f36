"""`scale train`: SSL training of the SCALE set-transformer on a cached train-split store."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.distributed as dist

from scale_toolkit.atomic import write_json
from scale_toolkit.errors import ScaleError
from scale_toolkit.locks import RunLock
from scale_toolkit.model.io import save_model
from scale_toolkit.model.layers import feature_stats
from scale_toolkit.model.positions import model_positions
from scale_toolkit.model.scale import ScaleModel
from scale_toolkit.ownership import check_run_dir
from scale_toolkit.precision import resolve_precision
from scale_toolkit.run_files import CONFIG_FILE, CURVES_FILE, SUMMARY_FILE
from scale_toolkit.runtime import torch_threads
from scale_toolkit.train.config import TrainConfig
from scale_toolkit.train.data import load_train_flip, load_train_split
from scale_toolkit.train.distributed import DistInfo, dist_from_env, init_process_group
from scale_toolkit.train.evaluate import ssl_metrics
from scale_toolkit.train.health import PlateauMonitor, holdout_split
from scale_toolkit.train.host_memory import reuse_freed_memory
from scale_toolkit.train.plots import plot_curves
from scale_toolkit.train.run_dir import Checkpointer, MetricsLog, check_start
from scale_toolkit.train.step import SSLForward, draw_views, fp32_matmul_precision, make_loss_fn

Progress = Callable[[dict[str, Any]], None]
METRIC_KEYS = ("loss", "mcm_loss", "set_loss", "mcm_acc", "set_acc")


def resolve_device(name: str, info: DistInfo) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ScaleError(f"--device {name} requested but no CUDA device is available; use --device cpu")
        if info.enabled and dev.index is None:
            dev = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(dev)
    return dev


def param_groups(model: torch.nn.Module, wd: float) -> list[dict[str, Any]]:
    """AdamW groups: no weight decay on biases, norm weights and learned tokens (all <2-d tensors)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or name.endswith("token") else decay).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def lr_at(step: int, total: int, warm: int, base: float, floor: float) -> float:
    """Linear warm-up over ``warm`` steps, then cosine from ``base`` to ``floor`` at ``total``."""
    if step < warm:
        return base * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return floor + 0.5 * (base - floor) * (1.0 + math.cos(math.pi * min(1.0, t)))


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919 + 12_345) % (2**63 - 1)


def train(config: TrainConfig, progress: Optional[Progress] = None,
          data: Optional[tuple[np.ndarray, np.ndarray]] = None) -> dict[str, Any]:
    """Train SCALE (MCM + SET) and write the run directory; returns a summary dict.

    ``data`` optionally gives (features float16 [N,V,D], coords [N,V,6][, flip bool [N,V]]) of the
    training videos directly instead of reading ``config.store`` (no flip: none flipped). Under torchrun (RANK/WORLD_SIZE set)
    it runs DDP; every rank holds the whole training split and computes its slice of each
    global batch; embeddings are all-gathered with gradient so negatives span all ranks.
    """
    info = dist_from_env()
    device = resolve_device(config.device, info)
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

    features: np.ndarray  # float16 [n, V, D]
    positions: np.ndarray  # float32 [n, V, 6] (or 7: official positions)
    held_out: Optional[tuple[np.ndarray, np.ndarray]]
    store_info: dict[str, Any]


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


def _train(config: TrainConfig, progress: Optional[Progress], data, info: DistInfo, device: torch.device,
           lock: Optional[RunLock] = None) -> dict[str, Any]:
    if not config.out:
        raise ScaleError("no run directory given; pass --out RUN_DIR")
    if config.compile and info.enabled:
        raise ScaleError("--compile runs in a single process only; drop it under torchrun")
    out = Path(config.out)
    lock = lock or RunLock(out)  # train() passes one it releases; a direct caller's closes with it
    check_run_dir(out)  # never write checkpoints and metrics into a folder of the user's files
    check_start(out, config.resume)

    train_data = _load_data(config, data)
    mcfg = replace(config.model, input_dim=int(train_data.features.shape[2]))
    plan = _plan(config, train_data.features.shape, mcfg, info)
    precision = resolve_precision(config.precision, device)
    resolved = replace(config, model=mcfg)

    torch.manual_seed(config.seed)
    model = ScaleModel(mcfg).to(device)
    if model.standardizes:  # statistics of the training clips only (every rank holds the whole split)
        model.set_feature_stats(*feature_stats(torch.from_numpy(np.ascontiguousarray(train_data.features))))
    opt = torch.optim.AdamW(param_groups(model, config.wd), lr=config.lr, betas=config.betas,
                            fused=device.type in ("cpu", "cuda"))
    checkpoints = Checkpointer(out, config.save_every, config.last_every)
    metrics = MetricsLog(out)
    start_epoch = _resume_or_start(config, model, opt, checkpoints, metrics, mcfg, lock, info, device)

    run_meta = {"train": resolved.to_dict(), "model": mcfg.to_dict(), "store": train_data.store_info,
                "effective": {**plan.effective(), "ssl_val_videos": 0 if train_data.held_out is None else
                              len(train_data.held_out[0]), "world_size": info.world_size, "device": str(device),
                              **precision.to_dict()}}
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / CONFIG_FILE, run_meta)

    loss_fn = _loss_fn(model, mcfg, train_data, config, info, device)
    model.train()
    emit = progress if (progress is not None and info.is_main) else (lambda e: None)
    emit({"event": "start", "epochs": plan.epochs, "start_epoch": start_epoch, "steps_per_epoch": plan.steps_per_epoch,
          "total_steps": plan.total_steps, "batch_size": plan.batch, "n_videos": plan.n_videos, "run_dir": str(out),
          "device": str(device), "precision": precision.describe()})
    warnings: list[str] = []

    def warn(epoch: int, note: str) -> None:
        warnings.append(note)
        emit({"event": "warning", "epoch": epoch, "message": note})

    if plan.warmup_steps >= plan.total_steps and start_epoch == 0:
        warn(0, f"the warm-up ({config.warmup:g} epochs = {plan.warmup_steps} steps) is as long as the whole run "
                f"({plan.epochs} epochs = {plan.total_steps} steps): the learning rate never reaches --lr "
                f"{config.lr:g}; lower --warmup or raise --epochs")
    gen = torch.Generator(device=device)
    last: dict[str, Any] = {}
    t_start = time.perf_counter()
    rates = []
    monitor = PlateauMonitor(plan.epochs, 0 if train_data.held_out is None else len(train_data.held_out[0]))
    with reuse_freed_memory(device):  # each step reuses the last one's pages (host_memory.py)
        for epoch in range(start_epoch, plan.epochs):
            last = _run_epoch(epoch, plan, config, mcfg, model, opt, loss_fn, gen, precision, info, device, emit, out)
            rates.append(last["samples_per_s"])
            if info.is_main and train_data.held_out is not None:
                last.update(_held_out(model, train_data.held_out, plan.batch, config.seed))
                note = monitor.update(epoch + 1, last["val_mcm_acc"], last["val_set_acc"])
                if note:
                    warn(epoch + 1, note)
            if info.is_main:
                metrics.append(last)
                done = epoch + 1 == plan.epochs
                checkpoints.save(epoch + 1, done, {"model_config": mcfg.to_dict(), "train_config": resolved.to_dict(),
                                                   "state_dict": model.state_dict(), "optimizer": opt.state_dict(),
                                                   "meta": run_meta})
                if done or checkpoints.snapshot_due(epoch + 1):
                    plot_curves(metrics.path, out / CURVES_FILE)
            emit({"event": "epoch", **last})
    summary: dict[str, Any] = {"run_dir": str(out), "epochs": plan.epochs, "resumed_from_epoch": start_epoch or None,
                               "steps": plan.total_steps, "batch_size": plan.batch, "world_size": info.world_size,
                               "device": str(device), "precision": precision.value,
                               "time_s": time.perf_counter() - t_start,
                               "samples_per_s": float(np.median(rates)) if rates else None, "final": last,
                               "warnings": warnings}
    if info.is_main:
        _finish(model, out, run_meta, metrics, summary)
    emit({"event": "end", **summary})
    if info.enabled:
        dist.barrier()
    return summary


def _load_data(config: TrainConfig, data) -> _TrainingData:
    """The train split (or ``data``), positions as the model reads them, and the held-out videos."""
    mcfg = config.model  # its positions and set size (input_dim follows the features)
    flip_np = None
    if data is None:
        if not config.store:
            raise ScaleError("no feature store given; pass --store TRAIN16.zarr")
        feats_np, coords_np, store_info = load_train_split(config.store, config.split, config.allow_incomplete)
        if mcfg.pos_input != "eq5":
            flip_np = load_train_flip(config.store, config.split, config.allow_incomplete)
    else:
        feats_np, coords_np, *rest = data
        flip_np = rest[0] if rest else None
        store_info = {"path": "<in-memory>", "split": config.split, "n_train_videos": int(feats_np.shape[0])}
    if feats_np.ndim != 3 or coords_np.shape != feats_np.shape[:2] + (6,):
        raise ScaleError(f"expected features [N,V,D] and coords [N,V,6], got {feats_np.shape} and {coords_np.shape}")
    if mcfg.pos_input != "eq5":  # scaled over each video's own (all V) clips, once, as the official extraction does
        flip = np.zeros(feats_np.shape[:2], bool) if flip_np is None else flip_np
        coords_np = model_positions(mcfg.pos_input, coords_np, flip)
    v = feats_np.shape[1]
    if v < 2 * mcfg.set_size:
        view = store_info.get("view") if isinstance(store_info.get("view"), dict) else {}
        where = store_info.get("path", "the store")
        what = f"{where} ({view['name']} view)" if view.get("name") else where
        raise ScaleError(f"{what} has {v} clips per video but training needs 2 x set_size = {2 * mcfg.set_size}: "
                         "train on a train16 store (`scale extract --view train16`), or lower the model's set_size")
    # held-out train-split videos for the SSL health metrics (never test videos, never trained on)
    train_rows, val_rows = holdout_split(feats_np.shape[0], config.ssl_val, config.seed)
    if not len(val_rows):
        return _TrainingData(feats_np, coords_np, None, store_info)
    return _TrainingData(feats_np[train_rows], coords_np[train_rows], (feats_np[val_rows], coords_np[val_rows]),
                         store_info)


def _plan(config: TrainConfig, shape: tuple[int, ...], mcfg, info: DistInfo) -> _RunPlan:
    n, ws = shape[0], info.world_size
    batch = min(config.batch_size, n)
    batch -= batch % ws
    if batch < 2:
        raise ScaleError(f"only {n} training videos: too few for a contrastive batch across {ws} process(es)")
    spe = n // batch
    epochs = max(config.epochs, -(-config.steps // spe)) if config.steps else config.epochs
    local = batch // ws
    return _RunPlan(n_videos=n, clips_per_video=shape[1], batch=batch, steps_per_epoch=spe, epochs=epochs, total_steps=epochs * spe,
                    warmup_steps=int(round(config.warmup * spe)), rows=(info.rank * local, (info.rank + 1) * local))


def _resume_or_start(config: TrainConfig, model: ScaleModel, opt, checkpoints: Checkpointer, metrics: MetricsLog,
                     mcfg, lock: RunLock, info: DistInfo, device: torch.device) -> int:
    """The epoch to start from: the checkpoint's on --resume (weights, optimiser, metrics cut back), else 0.
    The run lock is taken before the first write."""
    if not config.resume:
        if info.is_main:
            lock.acquire()
            metrics.start_over()
        return 0
    ck = checkpoints.load_for_resume(device, config, mcfg.to_dict())
    if info.is_main:
        lock.acquire()
    model.load_state_dict(ck["state_dict"])
    opt.load_state_dict(ck["optimizer"])
    start_epoch = int(ck["epoch"])
    if info.is_main:
        checkpoints.remove_stale_temporaries()
        metrics.cut_back(start_epoch)
    return start_epoch


def _loss_fn(model: ScaleModel, mcfg, train_data: _TrainingData, config: TrainConfig, info: DistInfo,
             device: torch.device) -> Callable[..., dict[str, torch.Tensor]]:
    """The step's forward + losses over the resident store (DDP-wrapped under torchrun, compiled on --compile)."""
    feats = torch.from_numpy(np.ascontiguousarray(train_data.features, dtype=np.float16)).to(device)
    coords = torch.from_numpy(np.ascontiguousarray(train_data.positions, dtype=np.float32)).to(device)
    fwd: torch.nn.Module = SSLForward(model)
    if info.enabled:
        fwd = torch.nn.parallel.DistributedDataParallel(fwd, device_ids=[device.index] if device.type == "cuda" else None)
    loss_fn = make_loss_fn(fwd, mcfg, feats, coords, compile=config.compile)
    return _compile_errors_in_one_line(loss_fn) if config.compile else loss_fn


def _run_epoch(epoch: int, plan: _RunPlan, config: TrainConfig, mcfg, model: ScaleModel, opt, loss_fn, gen,
               precision, info: DistInfo, device: torch.device, emit: Progress, out: Path) -> dict[str, Any]:
    """One epoch of steps; returns its metrics line. Metrics stay on the device: one host sync per epoch."""
    es = _epoch_seed(config.seed, epoch)
    gen.manual_seed(es)
    torch.manual_seed(es ^ 0x5EED)  # dropout
    spe, batch, amp = plan.steps_per_epoch, plan.batch, precision.autocast_dtype
    order = torch.randperm(plan.n_videos, generator=gen, device=device)
    acc = torch.zeros(len(METRIC_KEYS), device=device)
    first_bad = torch.full((), -1, dtype=torch.long, device=device)  # first step with a non-finite loss
    t0 = time.perf_counter()
    lr = config.lr
    for i in range(spe):
        step = epoch * spe + i
        lr = lr_at(step, plan.total_steps, plan.warmup_steps, config.lr, config.min_lr)
        for g in opt.param_groups:
            g["lr"] = lr
        idx = order[i * batch:(i + 1) * batch]
        sets, mask = draw_views(mcfg, batch, plan.clips_per_video, gen, device)
        with fp32_matmul_precision(device, amp):
            losses = loss_fn(idx, sets, mask, plan.rows[0], plan.rows[1], info.world_size, amp)
            opt.zero_grad(set_to_none=True)
            losses["loss"].backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        acc += torch.stack([losses[k].detach().float() for k in METRIC_KEYS])
        # on the device, no host sync per step; read once per epoch below
        first_bad.masked_fill_((first_bad < 0) & ~torch.isfinite(losses["loss"].detach()), step + 1)
        emit({"event": "step", "epoch": epoch + 1, "step": step + 1, "total_steps": plan.total_steps, "samples": batch})
    vals = (acc / spe).tolist()  # one host sync per epoch
    if int(first_bad) >= 0:  # stop before this epoch's NaN weights reach a checkpoint or model.pt
        raise ScaleError(f"training stopped: the loss became NaN or inf at epoch {epoch + 1}, step {int(first_bad)} "
                         f"of {plan.total_steps}; {out} keeps the checkpoint of epoch {epoch} (if any): lower --lr "
                         "or check the store's features, then train into a new --out or --resume")
    dt = time.perf_counter() - t0
    return {"epoch": epoch + 1, "step": (epoch + 1) * spe, **dict(zip(METRIC_KEYS, vals)), "lr": lr,
            "samples_per_s": spe * batch / dt, "epoch_time_s": dt}


def _finish(model: ScaleModel, out: Path, run_meta: dict[str, Any], metrics: MetricsLog, summary: dict[str, Any]) -> None:
    """model.pt, the final curves and summary.json (main process)."""
    summary["model_path"] = str(save_model(model, out, extra=run_meta))
    if not summary["final"]:  # resumed a finished run: report its last epoch
        summary["final"] = metrics.last()
    if metrics.path.exists():
        plot_curves(metrics.path, out / CURVES_FILE)
    write_json(out / SUMMARY_FILE, summary)


def _held_out(model: ScaleModel, val: tuple[np.ndarray, np.ndarray], batch: int, seed: int) -> dict[str, float]:
    """MCM / SET loss and top-1 on the held-out videos: the same sets and masks every epoch (fixed
    seed), eval mode, in-batch candidates as in training (batches of at most ``batch`` videos);
    small hold-outs are drawn several times so the accuracy is not a handful of samples."""
    n = len(val[0])
    rounds = min(8, max(1, -(-256 // n)))
    m = ssl_metrics(model, val[0], val[1], batch_size=min(batch, n), seed=seed, rounds=rounds)
    return {f"val_{k}": m[k] for k in ("mcm_loss", "set_loss", "mcm_acc", "set_acc")}


def _compile_errors_in_one_line(loss_fn: Callable) -> Callable:
    """The first call of a compiled step runs the compiler: a missing C++ toolchain or an
    unsupported op becomes one clear line instead of a compiler traceback."""

    def call(*args):
        try:
            return loss_fn(*args)
        except Exception as exc:  # torch._dynamo / inductor errors have no common public base
            if "torch._dynamo" not in type(exc).__module__ and "torch._inductor" not in type(exc).__module__:
                raise
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ScaleError(f"torch.compile failed ({first}); train without --compile") from exc
    return call

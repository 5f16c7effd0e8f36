"""`scale train`: SSL training of the SCALE set-transformer on a cached train-split store."""
from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.distributed as dist

from scale_toolkit.atomic import write_json, write_text
from scale_toolkit.errors import ScaleError
from scale_toolkit.locks import RunLock
from scale_toolkit.model.io import LAST_CHECKPOINT, atomic_save, non_finite_weights, save_model
from scale_toolkit.model.layers import feature_stats
from scale_toolkit.model.positions import model_positions
from scale_toolkit.model.scale import ScaleModel
from scale_toolkit.ownership import check_run_dir
from scale_toolkit.precision import resolve_precision
from scale_toolkit.runtime import torch_threads
from scale_toolkit.train.config import TrainConfig
from scale_toolkit.train.data import load_train_flip, load_train_split
from scale_toolkit.train.distributed import DistInfo, dist_from_env, init_process_group
from scale_toolkit.train.evaluate import ssl_metrics
from scale_toolkit.train.health import PlateauMonitor, holdout_split
from scale_toolkit.train.host_memory import reuse_freed_memory
from scale_toolkit.train.plots import plot_curves
from scale_toolkit.train.step import SSLForward, draw_views, fp32_matmul_precision, make_loss_fn

Progress = Callable[[dict[str, Any]], None]
METRIC_KEYS = ("loss", "mcm_loss", "set_loss", "mcm_acc", "set_acc")
# train settings a resumed run must share with the checkpoint it continues
RESUME_KEYS = ("split", "batch_size", "lr", "wd", "warmup", "min_lr", "grad_clip", "seed", "precision", "ssl_val", "steps")


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


def _train(config: TrainConfig, progress: Optional[Progress], data, info: DistInfo, device: torch.device,
           lock: Optional[RunLock] = None) -> dict[str, Any]:
    if not config.out:
        raise ScaleError("no run directory given; pass --out RUN_DIR")
    if config.compile and info.enabled:
        raise ScaleError("--compile runs in a single process only; drop it under torchrun")
    out = Path(config.out)
    lock = lock or RunLock(out)  # train() passes one it releases; a direct caller's closes with it
    check_run_dir(out)  # never write checkpoints and metrics into a folder of the user's files
    ckpt_path = out / LAST_CHECKPOINT
    if ckpt_path.exists() and not config.resume:
        raise ScaleError(f"{out} already holds a training run; pass --resume to continue it or choose another --out")
    if config.resume and not ckpt_path.exists():
        raise ScaleError(f"nothing to resume: {out} has no {LAST_CHECKPOINT}"
                         + (" (its first epoch never finished)" if (out / "config.json").exists() else "")
                         + "; drop --resume to start the run")

    flip_np = None
    if data is None:
        if not config.store:
            raise ScaleError("no feature store given; pass --store TRAIN16.zarr")
        feats_np, coords_np, store_info = load_train_split(config.store, config.split, config.allow_incomplete)
        if config.model.pos_input != "eq5":
            flip_np = load_train_flip(config.store, config.split, config.allow_incomplete)
    else:
        feats_np, coords_np, *rest = data
        flip_np = rest[0] if rest else None
        store_info = {"path": "<in-memory>", "split": config.split, "n_train_videos": int(feats_np.shape[0])}
    if feats_np.ndim != 3 or coords_np.shape != feats_np.shape[:2] + (6,):
        raise ScaleError(f"expected features [N,V,D] and coords [N,V,6], got {feats_np.shape} and {coords_np.shape}")
    mcfg = replace(config.model, input_dim=int(feats_np.shape[2]))
    if mcfg.pos_input != "eq5":  # scaled over each video's own (all V) clips, once, as the official extraction does
        flip = np.zeros(feats_np.shape[:2], bool) if flip_np is None else flip_np
        coords_np = model_positions(mcfg.pos_input, coords_np, flip)
    # held-out train-split videos for the SSL health metrics (never test videos, never trained on)
    train_rows, val_rows = holdout_split(feats_np.shape[0], config.ssl_val, config.seed)
    val_np = (feats_np[val_rows], coords_np[val_rows]) if len(val_rows) else None
    if len(val_rows):
        feats_np, coords_np = feats_np[train_rows], coords_np[train_rows]
    n, v, d = feats_np.shape
    if v < 2 * mcfg.set_size:
        view = store_info.get("view") if isinstance(store_info.get("view"), dict) else {}
        what = f"{store_info.get('path', 'the store')} ({view['name']} view)" if view.get("name") else store_info.get("path", "the store")
        raise ScaleError(f"{what} has {v} clips per video but training needs 2 x set_size = {2 * mcfg.set_size}: "
                         "train on a train16 store (`scale extract --view train16`), or lower the model's set_size")
    ws = info.world_size
    batch = min(config.batch_size, n)
    batch -= batch % ws
    if batch < 2:
        raise ScaleError(f"only {n} training videos: too few for a contrastive batch across {ws} process(es)")
    spe = n // batch
    epochs = max(config.epochs, -(-config.steps // spe)) if config.steps else config.epochs
    total = epochs * spe
    warm = int(round(config.warmup * spe))
    precision = resolve_precision(config.precision, device)
    amp = precision.autocast_dtype
    resolved = replace(config, model=mcfg)

    torch.manual_seed(config.seed)
    model = ScaleModel(mcfg).to(device)
    if model.standardizes:  # statistics of the training clips only (every rank holds the whole split)
        model.set_feature_stats(*feature_stats(torch.from_numpy(np.ascontiguousarray(feats_np))))
    fused = device.type in ("cpu", "cuda")
    opt = torch.optim.AdamW(param_groups(model, config.wd), lr=config.lr, betas=config.betas, fused=fused)
    start_epoch = 0
    metrics_path = out / "metrics.jsonl"
    if config.resume and ckpt_path.exists():
        ck = _load_checkpoint(ckpt_path, device)
        old = ck.get("train_config", {})
        diff = [k for k in RESUME_KEYS if k in old and _jsonable(old[k]) != _jsonable(getattr(config, k))]
        if ck.get("model_config") != mcfg.to_dict():
            diff.append("model")
        if diff:
            raise ScaleError(f"cannot resume {out}: settings differ from its checkpoint ({', '.join(diff)}); "
                             "use the same flags or a new --out")
        bad = non_finite_weights(ck["state_dict"])
        if bad:
            raise ScaleError(f"cannot resume {out}: {LAST_CHECKPOINT} holds NaN or inf weights ({bad}); "
                             "train into a new --out (and lower --lr)")
        if info.is_main:
            lock.acquire()  # before the first write (metrics are cut back below)
        model.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        start_epoch = int(ck["epoch"])
        if info.is_main:
            for stale in out.glob(".checkpoint_*.pt.*.tmp"):  # a write killed before its rename
                stale.unlink(missing_ok=True)
        if info.is_main and metrics_path.exists():
            keep = [ln for ln in metrics_path.read_text().splitlines() if (e := _epoch_of(ln)) is not None and e <= start_epoch]
            write_text(metrics_path, "".join(ln + "\n" for ln in keep))
    elif info.is_main:
        lock.acquire()  # before the first write
        metrics_path.unlink(missing_ok=True)

    run_meta = {"train": resolved.to_dict(), "model": mcfg.to_dict(), "store": store_info,
                "effective": {"epochs": epochs, "batch_size": batch, "steps_per_epoch": spe, "total_steps": total,
                              "ssl_val_videos": int(len(val_rows)), "warmup_steps": warm, "world_size": ws,
                              "device": str(device), **precision.to_dict()}}
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", run_meta)

    feats = torch.from_numpy(np.ascontiguousarray(feats_np, dtype=np.float16)).to(device)
    coords = torch.from_numpy(np.ascontiguousarray(coords_np, dtype=np.float32)).to(device)
    fwd: torch.nn.Module = SSLForward(model)
    if info.enabled:
        fwd = torch.nn.parallel.DistributedDataParallel(fwd, device_ids=[device.index] if device.type == "cuda" else None)
    loss_fn = make_loss_fn(fwd, mcfg, feats, coords, compile=config.compile)
    if config.compile:
        loss_fn = _compile_errors_in_one_line(loss_fn)
    model.train()
    b_local = batch // ws
    lo, hi = info.rank * b_local, (info.rank + 1) * b_local
    emit = progress if (progress is not None and info.is_main) else (lambda e: None)
    emit({"event": "start", "epochs": epochs, "start_epoch": start_epoch, "steps_per_epoch": spe,
          "total_steps": total, "batch_size": batch, "n_videos": n, "run_dir": str(out), "device": str(device),
          "precision": precision.describe()})
    gen = torch.Generator(device=device)
    last: dict[str, Any] = {}
    t_start = time.perf_counter()
    rates = []
    monitor = PlateauMonitor(epochs)
    warnings: list[str] = []
    if warm >= total and start_epoch == 0:
        note = (f"the warm-up ({config.warmup:g} epochs = {warm} steps) is as long as the whole run ({epochs} epochs = "
                f"{total} steps): the learning rate never reaches --lr {config.lr:g}; lower --warmup or raise --epochs")
        warnings.append(note)
        emit({"event": "warning", "epoch": 0, "message": note})
    with reuse_freed_memory(device):  # each step reuses the last one's pages (host_memory.py)
        for epoch in range(start_epoch, epochs):
            es = _epoch_seed(config.seed, epoch)
            gen.manual_seed(es)
            torch.manual_seed(es ^ 0x5EED)  # dropout
            order = torch.randperm(n, generator=gen, device=device)
            acc = torch.zeros(len(METRIC_KEYS), device=device)
            first_bad = torch.full((), -1, dtype=torch.long, device=device)  # first step with a non-finite loss
            t0 = time.perf_counter()
            lr = config.lr
            for i in range(spe):
                step = epoch * spe + i
                lr = lr_at(step, total, warm, config.lr, config.min_lr)
                for g in opt.param_groups:
                    g["lr"] = lr
                idx = order[i * batch:(i + 1) * batch]
                sets, mask = draw_views(mcfg, batch, v, gen, device)
                with fp32_matmul_precision(device, amp):
                    losses = loss_fn(idx, sets, mask, lo, hi, ws, amp)
                    opt.zero_grad(set_to_none=True)
                    losses["loss"].backward()
                if config.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                opt.step()
                acc += torch.stack([losses[k].detach().float() for k in METRIC_KEYS])
                # on the device, no host sync per step; read once per epoch below
                first_bad.masked_fill_((first_bad < 0) & ~torch.isfinite(losses["loss"].detach()), step + 1)
                emit({"event": "step", "epoch": epoch + 1, "step": step + 1, "total_steps": total, "samples": batch})
            vals = (acc / spe).tolist()  # one host sync per epoch
            if int(first_bad) >= 0:  # stop before this epoch's NaN weights reach a checkpoint or model.pt
                raise ScaleError(f"training stopped: the loss became NaN or inf at epoch {epoch + 1}, step {int(first_bad)} "
                                 f"of {total}; {out} keeps the checkpoint of epoch {epoch} (if any): lower --lr "
                                 "or check the store's features, then train into a new --out or --resume")
            dt = time.perf_counter() - t0
            rate = spe * batch / dt
            rates.append(rate)
            last = {"epoch": epoch + 1, "step": (epoch + 1) * spe, **dict(zip(METRIC_KEYS, vals)), "lr": lr,
                    "samples_per_s": rate, "epoch_time_s": dt}
            if info.is_main and val_np is not None:
                last.update(_held_out(model, val_np, batch, config.seed))
                note = monitor.update(epoch + 1, last["val_mcm_acc"], last["val_set_acc"])
                if note:
                    warnings.append(note)
                    emit({"event": "warning", "epoch": epoch + 1, "message": note})
            if info.is_main:
                with open(metrics_path, "a") as f:
                    f.write(json.dumps(last) + "\n")
                done = epoch + 1 == epochs
                snapshot = config.save_every > 0 and (epoch + 1) % config.save_every == 0
                if done or snapshot or (epoch + 1) % max(1, config.last_every) == 0:
                    ck = {"format": "scale-checkpoint", "version": 1, "epoch": epoch + 1, "model_config": mcfg.to_dict(),
                          "train_config": resolved.to_dict(), "state_dict": model.state_dict(),
                          "optimizer": opt.state_dict(), "meta": run_meta}
                    atomic_save(ck, ckpt_path)
                    if snapshot:
                        atomic_save(ck, out / f"checkpoint_epoch{epoch + 1:04d}.pt")
                if done or snapshot:
                    plot_curves(metrics_path, out / "curves.png")
            emit({"event": "epoch", **last})
    summary: dict[str, Any] = {"run_dir": str(out), "epochs": epochs, "resumed_from_epoch": start_epoch or None,
                               "steps": total, "batch_size": batch, "world_size": ws, "device": str(device),
                               "precision": precision.value,
                               "time_s": time.perf_counter() - t_start,
                               "samples_per_s": float(np.median(rates)) if rates else None, "final": last,
                               "warnings": warnings}
    if info.is_main:
        summary["model_path"] = str(save_model(model, out, extra=run_meta))
        if not last and metrics_path.exists():  # resumed a finished run: report its last epoch
            lines = metrics_path.read_text().splitlines()
            summary["final"] = json.loads(lines[-1]) if lines else {}
        plot_curves(metrics_path, out / "curves.png") if metrics_path.exists() else None
        write_json(out / "summary.json", summary)
    emit({"event": "end", **summary})
    if info.enabled:
        dist.barrier()
    return summary


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


def _load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """checkpoint_last.pt for --resume. It is only ever replaced by an atomic rename, so a file that
    does not load was damaged outside the trainer: refuse (never guess) and name the snapshots."""
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, ...: torch's message spans many lines
        ck, reason = None, f"{type(exc).__name__}"
    else:
        reason = "not a scale training checkpoint"
    if not (isinstance(ck, dict) and ck.get("format") == "scale-checkpoint"
            and all(k in ck for k in ("epoch", "state_dict", "optimizer"))):
        snaps = sorted(path.parent.glob("checkpoint_epoch*.pt"))
        hint = (f"copy the newest snapshot {snaps[-1].name} over it to continue from there"
                if snaps else "delete it to restart the run")
        raise ScaleError(f"cannot resume {path.parent}: {path.name} is unreadable ({reason}; truncated or corrupted); "
                         f"{hint}, or train into a new --out")
    return ck


def _epoch_of(line: str) -> Optional[int]:
    """The epoch of one metrics.jsonl line; None for a blank or half-written (killed) line."""
    try:
        return int(json.loads(line)["epoch"])
    except (ValueError, KeyError, TypeError):
        return None


def _jsonable(x: Any) -> Any:
    return list(x) if isinstance(x, tuple) else x



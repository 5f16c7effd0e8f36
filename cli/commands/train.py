"""`scale train`: SSL training of the SCALE set-transformer on a train16 feature store."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.text import Text

from scale_toolkit.contracts.progress import TrainEnd, TrainEpoch, TrainEvent, TrainStart, TrainStep, TrainWarning
from scale_toolkit.contracts.run import CURVES_FILE, LAST_CHECKPOINT
from scale_toolkit.model.config import ScaleConfig
from scale_toolkit.train.config import OFFICIAL_TRAIN, OFFICIAL_WARMUP_FRACTION, TrainConfig

from ..app import CONFIG_OPTION, PRECISION_HELP, app, console, on_interrupt, out, progress_bar
from ..options import option_from, shown_default, unset_option
from ..progress import LineProgress
from ..text import human_bytes, shown

LINE_EVERY_S = 10.0


class _TrainProgress:
    """Renders the trainer's progress events as one bar of steps: epoch, samples/s, ETA, and the
    loss and accuracies of the last finished epoch (named as such: the running epoch has none yet)."""

    def __init__(self) -> None:
        self.bar = progress_bar("train")
        if isinstance(self.bar, LineProgress):  # a log file: a line at least every 10 s of training, not 30
            self.bar.every_s = LINE_EVERY_S
        self.task = None
        self.last = ""
        self.t0 = time.monotonic()
        self.samples = 0
        self.epochs = 0

    def __call__(self, event: TrainEvent) -> None:
        match event:
            case TrainStart():
                console.print(f"precision: {event.precision}")
                self.epochs = event.epochs
                self.bar.start()
                done = event.start_epoch * event.steps_per_epoch
                self.task = self.bar.add_task("train", total=event.total_steps, completed=done, info="")
                self.t0 = time.monotonic()
            case TrainStep():
                self.samples += event.samples
                rate = self.samples / max(time.monotonic() - self.t0, 1e-6)
                self.bar.update(self.task, completed=event.step,
                                info=f"epoch {event.epoch}/{self.epochs}  {rate:,.0f} samples/s{self.last}")
            case TrainEpoch():
                self.last = (f"  epoch {event.epoch}: loss {event.loss:.3f} "
                             f"(mcm {event.mcm_acc:.2f} / set {event.set_acc:.2f} acc)")
                self.bar.update(self.task, completed=event.step, info=f"epoch {event.epoch}/{self.epochs}{self.last}",
                                milestone=True)
            case TrainWarning():
                when = f" (epoch {event.epoch})" if event.epoch else ""
                self.bar.console.print(f"warning{when}: {event.message}", style="yellow")
            case TrainEnd():
                self.bar.stop()


# what `--official` sets where it differs from the defaults, for the help texts
_OFFICIAL = {**OFFICIAL_TRAIN, "warmup": f"{OFFICIAL_WARMUP_FRACTION:.0%} of --epochs", "heads": "hidden/32",
             "mask_mode": ScaleConfig.official().mask_mode, "head_hidden": ScaleConfig.official().head_hidden}


@app.command("train")
def train_cmd(
    store: Path = typer.Option(..., "--store", help="Feature store of the training clips (a train16 store, STORE.zarr)."),
    split: int = option_from(TrainConfig, "split", "--split", help="Split 1..3; only its train videos are used."),
    out_dir: Path = typer.Option(..., "--out", help="Run directory (config, checkpoints, metrics.jsonl, curves.png, model.pt)."),
    # None = not given: --official fills these with its own values (resolve_train_config), a flag given wins
    epochs: Optional[int] = unset_option(TrainConfig, "epochs", "--epochs", help="Epochs (one epoch = every train video once)."),
    steps: int = typer.Option(0, "--steps", help="At least this many optimiser steps: a small training set runs more epochs (0: --epochs decides)."),
    ssl_val: float = option_from(TrainConfig, "ssl_val", "--ssl-val", help="Fraction of the train videos held out for the held-out MCM/SET metrics (0: none)."),
    batch_size: Optional[int] = unset_option(TrainConfig, "batch_size", "--batch-size", help="Videos per step (global across torchrun ranks)."),
    lr: Optional[float] = unset_option(TrainConfig, "lr", "--lr", help="Peak AdamW learning rate.", official=_OFFICIAL["lr"]),
    wd: Optional[float] = unset_option(TrainConfig, "wd", "--wd", help="AdamW weight decay, never on biases, norms or learned tokens.", official=_OFFICIAL["wd"]),
    warmup: Optional[float] = unset_option(TrainConfig, "warmup", "--warmup", help="Linear warm-up length in epochs; cosine decay per step after it.", official=_OFFICIAL["warmup"]),
    grad_clip: Optional[float] = unset_option(TrainConfig, "grad_clip", "--grad-clip", help="Clip the gradient norm to this; 0 = off.", official=_OFFICIAL["grad_clip"]),
    seed: int = option_from(TrainConfig, "seed", "--seed", help="Seed of the initialisation, batches, clip sets and masks."),
    device: str = option_from(TrainConfig, "device", "--device", help="auto, cpu, cuda or cuda:N."),
    precision: Optional[str] = unset_option(TrainConfig, "precision", "--precision", help=PRECISION_HELP, official=_OFFICIAL["precision"]),
    save_every: int = option_from(TrainConfig, "save_every", "--save-every", help="Keep a snapshot checkpoint_epochNNNN.pt every N epochs (0: none); each is the whole model and optimiser state."),
    checkpoint_every: float = option_from(TrainConfig, "checkpoint_every", "--checkpoint-every", help="Rewrite checkpoint_last.pt at most every this many seconds, and at the end (0: after every epoch). A kill loses at most this much training; --resume repeats it bit for bit."),
    resume: bool = option_from(TrainConfig, "resume", "--resume", help="Continue the run in --out from its last checkpoint."),
    threads: int = typer.Option(0, "--threads", help="Torch CPU threads (0: torch's default)."),
    compile_step: bool = option_from(TrainConfig, "compile", "--compile", help="torch.compile the training step: up to a minute of compiling, then CPU steps measured -3 to +12 % faster (single process; for long runs)."),
    mask_ratio: Optional[float] = unset_option(ScaleConfig, "mask_ratio", "--mask-ratio", help="Fraction of each clip set that is masked."),
    mask_mode: Optional[str] = unset_option(ScaleConfig, "mask_mode", "--mask-mode", help="fixed (round(ratio*K) clips) or bernoulli (each clip with p=ratio); >=1 masked per set, except under --official.", official=_OFFICIAL["mask_mode"]),
    hidden: Optional[int] = unset_option(ScaleConfig, "hidden", "--hidden", help="Transformer width."),
    layers: Optional[int] = unset_option(ScaleConfig, "layers", "--layers", help="Transformer layers."),
    heads: Optional[int] = unset_option(ScaleConfig, "heads", "--heads", help="Attention heads.", official=_OFFICIAL["heads"]),
    head_hidden: Optional[int] = unset_option(ScaleConfig, "head_hidden", "--head-hidden", help="Hidden width of the MCM and SET heads (the paper's 1024; narrower for small features).", official=_OFFICIAL["head_hidden"]),
    tau: Optional[float] = unset_option(ScaleConfig, "tau", "--tau", help="InfoNCE temperature of MCM and SET."),
    allow_incomplete: bool = option_from(TrainConfig, "allow_incomplete", "--allow-incomplete", help="Train although some videos of the split are still pending extraction (only the done ones are used)."),
    max_memory: str = option_from(TrainConfig, "max_memory", "--max-memory", help="The most memory the whole process may use (e.g. 16G). The train split gets what is left after the process itself and a training step; a larger split streams from the store a window at a time. Empty: half of the memory available at start."),
    official: bool = typer.Option(False, "--official", help=(
        "Train as the official SCALE code: its model, losses, masking, 7-entry positions, init, "
        f"lr {shown_default(_OFFICIAL['lr'])}, wd {shown_default(_OFFICIAL['wd'])}, a warm-up of {_OFFICIAL['warmup']}, "
        f"no clipping, {_OFFICIAL['precision']} (flags given still win; see docs/training.md).")),
    config: Path = CONFIG_OPTION,
) -> None:
    """Train SCALE (masked clip modelling + SET losses) on cached clip features."""
    from scale_toolkit.train import resolve_train_config, train

    on_interrupt(f"{out_dir}/{LAST_CHECKPOINT} (written at most every {checkpoint_every:g} s, --checkpoint-every) is kept "
                 "if one was written; rerun with --resume (same flags) to continue from it")
    arch = dict(mask_ratio=mask_ratio, mask_mode=mask_mode, hidden=hidden, layers=layers, heads=heads, tau=tau,
                head_hidden=head_hidden)
    cfg = resolve_train_config(official, model=arch, store=str(store), split=split, out=str(out_dir), epochs=epochs,
                               steps=steps or None, ssl_val=ssl_val, batch_size=batch_size, lr=lr, wd=wd,
                               warmup=warmup, grad_clip=grad_clip, seed=seed, device=device, precision=precision,
                               save_every=save_every, checkpoint_every=checkpoint_every, resume=resume, threads=threads or None,
                               compile=compile_step, allow_incomplete=allow_incomplete, max_memory=max_memory)
    summary = train(cfg, progress=_TrainProgress())
    final = summary.get("final") or {}
    rate = summary.get("samples_per_s")
    out.print(Text(shown(summary["run_dir"]) + ":", style="bold"), f"{summary['epochs']} epochs, final loss {final.get('loss', float('nan')):.4f} "
              f"(MCM acc {final.get('mcm_acc', float('nan')):.3f}, SET acc {final.get('set_acc', float('nan')):.3f})"
              + (f", {rate:,.0f} samples/s" if rate else ""))
    if "val_mcm_acc" in final:
        out.print(f"held-out videos: MCM top-1 {final['val_mcm_acc']:.3f}, SET top-1 {final['val_set_acc']:.3f}")
    out.print(f"model: {shown(summary.get('model_path'))}  curves: {shown(Path(summary['run_dir']) / CURVES_FILE)}")
    if "bytes_written" in summary:
        out.print(f"written: {human_bytes(summary['bytes_written'])} ({summary['checkpoints_written']} checkpoint writes and model.pt)")

"""`scale train`: SSL training of the SCALE set-transformer on a train16 feature store."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.text import Text

from ..app import CONFIG_OPTION, PRECISION_HELP, app, console, on_interrupt, out, progress_bar
from ..text import shown


class _TrainProgress:
    """Renders the trainer's progress events as one bar of steps: epoch, samples/s, ETA, and the
    loss and accuracies of the last finished epoch (named as such: the running epoch has none yet)."""

    def __init__(self) -> None:
        self.bar = progress_bar("train")
        self.task = None
        self.last = ""
        self.t0 = time.monotonic()
        self.samples = 0
        self.epochs = 0

    def __call__(self, event: dict) -> None:
        kind = event["event"]
        if kind == "start":
            console.print(f"precision: {event['precision']}")
            self.epochs = event["epochs"]
            self.bar.start()
            done = event["start_epoch"] * event["steps_per_epoch"]
            self.task = self.bar.add_task("train", total=event["total_steps"], completed=done, info="")
            self.t0 = time.monotonic()
        elif kind == "step":
            self.samples += event["samples"]
            rate = self.samples / max(time.monotonic() - self.t0, 1e-6)
            self.bar.update(self.task, completed=event["step"],
                            info=f"epoch {event['epoch']}/{self.epochs}  {rate:,.0f} samples/s{self.last}")
        elif kind == "epoch":
            self.last = (f"  epoch {event['epoch']}: loss {event['loss']:.3f} "
                         f"(mcm {event['mcm_acc']:.2f} / set {event['set_acc']:.2f} acc)")
            self.bar.update(self.task, completed=event["step"], info=f"epoch {event['epoch']}/{self.epochs}{self.last}",
                            milestone=True)
        elif kind == "warning":
            when = f" (epoch {event['epoch']})" if event["epoch"] else ""
            self.bar.console.print(f"warning{when}: {event['message']}", style="yellow")
        elif kind == "end":
            self.bar.stop()


@app.command("train")
def train_cmd(
    store: Path = typer.Option(..., "--store", help="Feature store of the training clips (a train16 store, STORE.zarr)."),
    split: int = typer.Option(1, "--split", help="Split 1..3; only its train videos are used."),
    out_dir: Path = typer.Option(..., "--out", help="Run directory (config, checkpoints, metrics.jsonl, curves.png, model.pt)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs (one epoch = every train video once) [default: 500]."),
    steps: int = typer.Option(0, "--steps", help="At least this many optimiser steps: a small training set runs more epochs (0: --epochs decides)."),
    ssl_val: float = typer.Option(0.1, "--ssl-val", help="Fraction of the train videos held out for the held-out MCM/SET metrics (0: none)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Videos per step (global across torchrun ranks) [default: 512]."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak AdamW learning rate [default: 1e-3; --official: 3e-4]."),
    wd: Optional[float] = typer.Option(None, "--wd", help="AdamW weight decay, never on biases, norms or learned tokens [default: 0.05; --official: 1e-4]."),
    warmup: Optional[float] = typer.Option(None, "--warmup", help="Linear warm-up length in epochs; cosine decay per step after it [default: 10; --official: 5 % of --epochs]."),
    grad_clip: Optional[float] = typer.Option(None, "--grad-clip", help="Clip the gradient norm to this; 0 = off [default: 1.0; --official: 0]."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initialisation, batches, clip sets and masks."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    precision: Optional[str] = typer.Option(None, "--precision", help=PRECISION_HELP + " [default: auto; --official: fp32]"),
    save_every: int = typer.Option(50, "--save-every", help="Keep a checkpoint every N epochs (checkpoint_last.pt is rewritten every epoch)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    threads: int = typer.Option(0, "--threads", help="Torch CPU threads (0: torch's default)."),
    compile_step: bool = typer.Option(False, "--compile", help="torch.compile the training step: up to a minute of compiling, then CPU steps measured -3 to +12 % faster (single process; for long runs)."),
    mask_ratio: Optional[float] = typer.Option(None, "--mask-ratio", help="Fraction of each clip set that is masked [default: 0.25]."),
    mask_mode: Optional[str] = typer.Option(None, "--mask-mode", help="fixed (round(ratio*K) clips) or bernoulli (each clip with p=ratio); >=1 masked per set, except under --official [default: fixed; --official: bernoulli]."),
    hidden: Optional[int] = typer.Option(None, "--hidden", help="Transformer width [default: 256]."),
    layers: Optional[int] = typer.Option(None, "--layers", help="Transformer layers [default: 2]."),
    heads: Optional[int] = typer.Option(None, "--heads", help="Attention heads [default: 4; --official: hidden/32]."),
    tau: Optional[float] = typer.Option(None, "--tau", help="InfoNCE temperature of MCM and SET [default: 0.2]."),
    allow_incomplete: bool = typer.Option(False, "--allow-incomplete", help="Train although some videos of the split are still pending extraction (only the done ones are used)."),
    official: bool = typer.Option(False, "--official", help="Train as the official SCALE code: its model, losses, masking, 7-entry positions, init, lr 3e-4, wd 1e-4, 5 % warm-up, no clipping, fp32 (flags given still win; see docs/training.md)."),
    config: Path = CONFIG_OPTION,
) -> None:
    """Train SCALE (masked clip modelling + SET losses) on cached clip features."""
    from scale_toolkit.run_files import CURVES_FILE, LAST_CHECKPOINT
    from scale_toolkit.train import resolve_train_config, train

    on_interrupt(f"{out_dir}/{LAST_CHECKPOINT} of the last finished epoch is kept (if one finished); "
                 "rerun with --resume (same flags) to continue")
    arch = dict(mask_ratio=mask_ratio, mask_mode=mask_mode, hidden=hidden, layers=layers, heads=heads, tau=tau)
    cfg = resolve_train_config(official, model=arch, store=str(store), split=split, out=str(out_dir), epochs=epochs,
                               steps=steps or None, ssl_val=ssl_val, batch_size=batch_size, lr=lr, wd=wd,
                               warmup=warmup, grad_clip=grad_clip, seed=seed, device=device, precision=precision,
                               save_every=save_every, resume=resume, threads=threads or None, compile=compile_step,
                               allow_incomplete=allow_incomplete)
    summary = train(cfg, progress=_TrainProgress())
    final = summary.get("final") or {}
    rate = summary.get("samples_per_s")
    out.print(Text(shown(summary["run_dir"]) + ":", style="bold"), f"{summary['epochs']} epochs, final loss {final.get('loss', float('nan')):.4f} "
              f"(MCM acc {final.get('mcm_acc', float('nan')):.3f}, SET acc {final.get('set_acc', float('nan')):.3f})"
              + (f", {rate:,.0f} samples/s" if rate else ""))
    if "val_mcm_acc" in final:
        out.print(f"held-out videos: MCM top-1 {final['val_mcm_acc']:.3f}, SET top-1 {final['val_set_acc']:.3f}")
    out.print(f"model: {shown(summary.get('model_path'))}  curves: {shown(Path(summary['run_dir']) / CURVES_FILE)}")

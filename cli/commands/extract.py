"""`scale extract`: videos -> frozen backbone -> feature store."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.text import Text

from scale_toolkit.contracts.extract import ExtractConfig
from scale_toolkit.contracts.progress import ExtractBlock, ExtractEnd, ExtractEvent, ExtractStart
from scale_toolkit.ownership import check_outputs

from ..app import CONFIG_OPTION, PRECISION_HELP, app, console, on_interrupt, out, progress_bar
from ..options import option_from
from ..text import shown


class _ExtractProgress:
    """Renders the library's progress events as one bar of videos written to the store (decoded
    videos wait for their block to be embedded): written/total, videos/s and ETA of written ones."""

    def __init__(self) -> None:
        self.bar = progress_bar("extract")
        self.task = None

    def __call__(self, event: ExtractEvent) -> None:
        if isinstance(event, ExtractStart):
            console.print(f"precision: {event.precision}")
            self.bar.start()
            self.task = self.bar.add_task("extract", total=event.total, info="")
            return
        elapsed = max(time.monotonic() - event.started, 1e-6)
        info = (f"{event.written / elapsed:.2f} videos/s written  decoded {event.done + event.failed}"
                f"  failed {event.failed}")
        self.bar.update(self.task, completed=event.written, info=info, milestone=isinstance(event, ExtractBlock))
        if isinstance(event, ExtractEnd):
            self.bar.stop()


@app.command("extract")
def extract_cmd(
    backbone: str = typer.Option(..., "--backbone", help="Backbone name (see `scale backbones`): cvmae, videomae-b, videomae-l, videomae-b-ft, rhobyol, svt, timm:<name>, tiny."),
    checkpoint: Optional[Path] = option_from(ExtractConfig, "checkpoint", "--checkpoint", help="Checkpoint file (or Hugging Face directory) of the backbone."),
    random_init: bool = option_from(ExtractConfig, "random_init", "--random-init", help="Run the backbone with (seeded) random weights instead of a checkpoint."),
    strict: bool = option_from(ExtractConfig, "strict", "--strict/--no-strict", help="Fail on any missing/unexpected checkpoint key. --no-strict skips them and prints them."),
    encoder: Optional[str] = typer.Option(None, "--encoder", help="rhobyol only: online or momentum (the SCALE paper used momentum)."),
    variant: Optional[str] = typer.Option(None, "--variant", help="Backbone variant where a family has several (rhobyol: 16x4 or 8x8)."),
    dataset: str = option_from(ExtractConfig, "dataset", "--dataset", help="ucf101, hmdb51, folder (<root>/<class>/<video>) or csv."),
    root: Path = typer.Option(..., "--root", help="Dataset root folder (the official layout for ucf101/hmdb51)."),
    splits: Optional[Path] = option_from(ExtractConfig, "splits", "--splits", help="Folder of the official split files (ucfTrainTestlist or testTrainMulti_7030_splits)."),
    csv_path: Optional[Path] = option_from(ExtractConfig, "csv", "--csv", help="CSV manifest (path,label[,split]) for --dataset csv."),
    view: str = option_from(ExtractConfig, "view", "--view", help="train16 (16 augmented clips, for SSL training) or eval15 (5x3 clips, for probes/retrieval)."),
    out_store: Path = typer.Option(..., "--out", help="The feature store to write (STORE.zarr); rerunning continues where it stopped."),
    device: str = option_from(ExtractConfig, "device", "--device", help="cpu, cuda or cuda:N."),
    precision: str = option_from(ExtractConfig, "precision", "--precision", help=PRECISION_HELP),
    batch_size: int = option_from(ExtractConfig, "batch_size", "--batch-size", help="Clips per backbone forward pass."),
    workers: int = option_from(ExtractConfig, "workers", "--workers", help="Decode worker processes (-1: from the core count; 0: decode in this process)."),
    threads: int = option_from(ExtractConfig, "threads", "--threads", help="Torch threads for the backbone (0: torch's default)."),
    limit: Optional[int] = option_from(ExtractConfig, "limit", "--limit", help="Only the first N videos (sorted by id)."),
    seed: int = option_from(ExtractConfig, "seed", "--seed", help="Seed of the clip sampling (train16 crops, flips and positions)."),
    decoder: str = option_from(ExtractConfig, "decoder", "--decoder", help="auto (decord, PyAV fallback), decord or pyav."),
    retry_failed: bool = option_from(ExtractConfig, "retry_failed", "--retry-failed", help="Also retry videos recorded as failed."),
    shard: Optional[str] = option_from(ExtractConfig, "shard", "--shard", help="i/n: do only this shard's blocks (job arrays). Under torchrun ranks shard automatically."),
    timeout: float = option_from(ExtractConfig, "timeout_s", "--timeout", help="Seconds one video may take to decode before it is recorded as failed."),
    rows_per_chunk: int = option_from(ExtractConfig, "rows_per_chunk", "--rows-per-chunk", hidden=True, help="Videos per store chunk, for a new store (tests use small ones)."),
    config: Path = CONFIG_OPTION,
) -> None:
    """Extract clip features once with a frozen backbone into a Zarr feature store."""
    from scale_toolkit.extract import run_extraction

    on_interrupt(f"every block written to {out_store} is kept; rerun the same command to continue")
    check_outputs([(out_store, "store", "--out")])  # a store to continue, or a new path outside scale's artefacts
    options = {k: v for k, v in {"encoder": encoder, "variant": variant}.items() if v is not None}
    cfg = ExtractConfig(
        backbone=backbone, checkpoint=checkpoint, random_init=random_init, strict=strict, backbone_options=options,
        dataset=dataset, root=root, splits=splits, csv=csv_path, view=view, out=out_store, device=device, precision=precision,
        batch_size=batch_size, workers=workers, threads=threads, limit=limit, seed=seed, decoder=decoder,
        retry_failed=retry_failed, shard=shard, timeout_s=timeout, rows_per_chunk=rows_per_chunk,
    )
    summary = run_extraction(cfg, progress=_ExtractProgress())
    out.print(
        Text(shown(summary.store), style="bold"), f"shard {summary.shard}: {summary.done_now} videos extracted now, "
        f"{summary.already_done} already done, {len(summary.failed_now)} failed, {summary.clips} clips in {summary.seconds:.1f} s"
    )
    if summary.damaged:
        out.print(f"  {summary.damaged} videos whose stored data was damaged were extracted again")
    for vid, reason in summary.failed_now.items():
        out.print(f"  failed: {shown(vid)}: {shown(reason)}")
    if summary.missing:
        out.print(f"  {len(summary.missing)} videos listed in the split files are not on disk (e.g. {shown(summary.missing[0])})")
    if summary.unlisted:
        out.print(f"  {len(summary.unlisted)} videos on disk are in no split file and were skipped (e.g. {shown(summary.unlisted[0])})")

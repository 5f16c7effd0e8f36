"""`scale probe`: the paper's probe table (k-NN, Linear, MLP, Transformer, SCALE_ft) for one store."""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Mapping, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from scale_toolkit.atomic import write_result
from scale_toolkit.ownership import check_outputs
from scale_toolkit.probes.options import ProbeOptions
from scale_toolkit.probes.rows import flag_parameter, row_flags

from ..app import CONFIG_OPTION, app, console, on_interrupt, out
from ..options import option_from, unset_option, with_switches
from ..parsing import parse_int_list
from ..text import shown


class _ProbeBars:
    """The library's progress reports as rich bars: one for the whole run ("probes"), one per probe
    while it trains; started at the first report, so an early error is not preceded by a blank line."""

    def __init__(self) -> None:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        self.bars = Progress(*columns, console=console, transient=True)
        self.tasks: dict[str, int] = {}

    def __call__(self, name: str, done: int, total: int) -> None:
        if not self.bars.live.is_started:
            self.bars.start()
        if name not in self.tasks:
            self.tasks[name] = self.bars.add_task(name, total=total)
        self.bars.update(self.tasks[name], completed=done, total=total)
        if done >= total and name != "probes":
            self.bars.remove_task(self.tasks.pop(name))

    def stop(self) -> None:
        if self.bars.live.is_started:  # Progress.stop prints a newline on a non-terminal even if never started
            self.bars.stop()


def probe_cmd(
    store: Path = typer.Option(..., "--store", help="The eval feature store (EVAL15.zarr): every video, eval clips."),
    split: str = option_from(ProbeOptions, "split", "--split", help="1, 2, 3 or all (mean ± std over the three splits)."),
    train_store: Optional[Path] = typer.Option(None, "--train-store", help="Train probes on this store's clips of the train videos (e.g. TRAIN16.zarr) instead of the eval clips."),
    model: Optional[Path] = typer.Option(None, "--model", help="A trained SCALE run dir (adds SCALE_kNN / SCALE_linear; needed by --ft)."),
    knn: Optional[List[str]] = unset_option(ProbeOptions, "knn_k", "--knn", help="k-NN probe with these k (e.g. 20 or 10,20; the first is the table's row)."),
    low_shot: Optional[float] = option_from(ProbeOptions, "low_shot", "--low-shot", help="Train probes on a class-balanced fraction of the train split (e.g. 0.1)."),
    seeds: Optional[List[str]] = option_from(ProbeOptions, "seeds", "--seeds", help="Seeds (e.g. 0,1,2); results are averaged. Default 0, or 0,1,2 with --low-shot."),
    device: str = option_from(ProbeOptions, "device", "--device", help="auto, cpu, cuda or cuda:N."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write every number, the config, fingerprints and seeds here."),
    grid_preset: str = option_from(ProbeOptions, "grid_preset", "--grid-preset", help="Hyper-parameter grid: small (fast) or paper (lr 1e-4..3e-1, weight decay and batch size searched, AdamW and SGD; slower)."),
    grid: Optional[Path] = typer.Option(None, "--grid", help="TOML with per-probe grid overrides, sections [linear] [scale_linear] [mlp] [transformer] [scale_ft]; [transformer_model] sets the Transformer's ScaleConfig without --model."),
    epochs: Optional[int] = option_from(ProbeOptions, "epochs", "--epochs", help="Override the epochs of every trained probe."),
    val_fraction: float = option_from(ProbeOptions, "val_fraction", "--val-fraction", help="Class-stratified validation hold-out of the train split used to pick hyper-parameters."),
    knn_center: str = option_from(ProbeOptions, "knn_center", "--knn-center", help="k-NN centring before L2-normalisation: none, train (train mean) or split (each split its own mean, as the official code)."),
    knn_temperature: float = option_from(ProbeOptions, "knn_temperature", "--knn-temperature", help="Temperature T of the exp(sim/T) vote."),
    scale_knn_feature: str = option_from(ProbeOptions, "scale_knn_feature", "--scale-knn-feature", help="SCALE_kNN feature: set, or set+refined (SET ++ mean refined clip)."),
    scale_clip_feature: str = option_from(ProbeOptions, "scale_clip_feature", "--scale-clip-feature", help="SCALE_linear clip part: backbone [C_i||SET], refined [refined_i||SET] or both."),
    bn: str = option_from(ProbeOptions, "batchnorm", "--bn", help="BatchNorm without affine before clip heads: auto (on for MAE-family backbones), on, off, search."),
    head: str = option_from(ProbeOptions, "head", "--head", help="Transformer / SCALE_ft head: clip_set (per clip [refined_i||SET], softmax-averaged) or set."),
    protocol: str = option_from(ProbeOptions, "protocol", "--protocol", help="standard (select on a validation hold-out, test once) or official (the official SCALE eval code's rows, schedule and k-NN; docs/training.md)."),
    select_on_test: bool = option_from(ProbeOptions, "select_on_test", "--select-on-test", help="--protocol official only: pick epoch x aggregation by TEST accuracy as the official code does (optimistic; marked in the table and JSON)."),
    max_memory: str = option_from(ProbeOptions, "max_memory", "--max-memory", help="The most memory the whole process may use (e.g. 16G). The clips the trained probes hold get what is left after the process itself and a step; where they do not fit, Linear, MLP and SCALE_linear read them from the store a window at a time, and Transformer and SCALE_ft stop before loading. Empty: half of the memory available at start. k-NN rows stream and hold a vector per video."),
    allow_incomplete: bool = option_from(ProbeOptions, "allow_incomplete", "--allow-incomplete", help="Probe although some videos of the split are still pending extraction (only the done ones are used; noted in the result)."),
    config: Path = CONFIG_OPTION,
    **row_switches: bool,  # --linear, --mlp, ...: the row flags of probes/rows.py, added below
) -> None:
    """Reproduce the paper's probe table (Tables 4/5) for the store's backbone: select on a validation hold-out, test once."""
    from scale_toolkit.probes import probe_request, run_probes
    from scale_toolkit.probes.pictures import write_probe_picture

    on_interrupt("no result was written" + (f" ({json_out} is unchanged)" if json_out else "") + "; rerun the command")
    picture_out = Path(json_out).with_suffix(".confusion.png") if json_out else None
    check_outputs([(json_out, "probe", "--json"), (picture_out, "png", "--json")])  # before hours of probing
    rows, options = probe_request(
        knn=parse_int_list(knn, "--knn"), **row_switches, has_model=model is not None,
        grid_file=grid, split=str(split), knn_temperature=knn_temperature, knn_center=knn_center,
        scale_knn_feature=scale_knn_feature, scale_clip_feature=scale_clip_feature, batchnorm=bn, head=head,
        low_shot=low_shot, seeds=parse_int_list(seeds, "--seeds"), val_fraction=val_fraction, grid_preset=grid_preset,
        epochs=epochs, allow_incomplete=allow_incomplete, device=device, protocol=protocol, select_on_test=select_on_test,
        max_memory=max_memory,
    )
    bars = _ProbeBars()
    try:
        doc = run_probes(store, rows=rows or None, model=model, train_store=train_store, options=options, progress=bars)
    finally:
        bars.stop()
    _print_table(doc, store)
    if json_out:
        write_result(json_out, "probe", doc.to_json())
        out.print(f"wrote {shown(json_out)}")
        picture = write_probe_picture(doc, picture_out)
        if picture is not None:
            out.print(f"wrote {shown(picture)} (confusion matrix and per-class top-1 of the best row)")


# every row flag but --knn (declared above: it also takes the ks) comes from the row declarations
app.command("probe")(with_switches(probe_cmd, [(flag_parameter(flag), flag, rows[0].flag_help)
                                               for flag, rows in row_flags().items() if flag != "--knn"], after="knn"))


def _print_table(doc: Mapping[str, Any], store: Path) -> None:
    """The probe table, then the protocol as a paragraph (as a caption it wrapped to the table's width) and the notes."""
    from scale_toolkit.probes.report import table_rows, table_title

    header, body = table_rows(doc)
    table = Table(title=shown(table_title(doc, store.name)))
    for i, col in enumerate(header):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in body:
        table.add_row(*(shown(cell) for cell in row))
    out.print(table)
    out.print(f"protocol: {doc['protocol']}")
    for note in doc["notes"]:
        out.print(f"note: {note}", markup=False)

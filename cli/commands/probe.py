"""`scale probe`: the paper's probe table (k-NN, Linear, MLP, Transformer, SCALE_ft) for one store."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..app import CONFIG_OPTION, app, console, on_interrupt, out
from ..parsing import parse_int_list
from ..text import shown


@app.command("probe")
def probe_cmd(
    store: Path = typer.Option(..., "--store", help="The eval feature store (EVAL15.zarr): every video, eval clips."),
    split: str = typer.Option("1", "--split", help="1, 2, 3 or all (mean ± std over the three splits)."),
    train_store: Optional[Path] = typer.Option(None, "--train-store", help="Train probes on this store's clips of the train videos (e.g. TRAIN16.zarr) instead of the eval clips."),
    model: Optional[Path] = typer.Option(None, "--model", help="A trained SCALE run dir (adds SCALE_kNN / SCALE_linear; needed by --ft)."),
    knn: Optional[List[str]] = typer.Option(None, "--knn", help="k-NN probe with these k (e.g. 20 or 10,20; the first is the table's row). Default 20."),
    linear: bool = typer.Option(False, "--linear", help="Linear probe (and SCALE_linear with --model)."),
    mlp: bool = typer.Option(False, "--mlp", help="MLP probe on frozen clip features."),
    transformer: bool = typer.Option(False, "--transformer", help="The SCALE architecture from random init, trained supervised."),
    ft: bool = typer.Option(False, "--ft", help="SCALE_ft: fine-tune the --model predictor with a linear head."),
    low_shot: Optional[float] = typer.Option(None, "--low-shot", help="Train probes on a class-balanced fraction of the train split (e.g. 0.1)."),
    seeds: Optional[List[str]] = typer.Option(None, "--seeds", help="Seeds (e.g. 0,1,2); results are averaged. Default 0, or 0,1,2 with --low-shot."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write every number, the config, fingerprints and seeds here."),
    grid_preset: str = typer.Option("small", "--grid-preset", help="Hyper-parameter grid: small (fast default) or paper (lr 1e-4..3e-1, weight decay and batch size searched, AdamW and SGD; slower)."),
    grid: Optional[Path] = typer.Option(None, "--grid", help="TOML with per-probe grid overrides, sections [linear] [scale_linear] [mlp] [transformer] [scale_ft]; [transformer_model] sets the Transformer's ScaleConfig without --model."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Override the epochs of every trained probe."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Class-stratified validation hold-out of the train split used to pick hyper-parameters."),
    knn_center: str = typer.Option("none", "--knn-center", help="k-NN centring before L2-normalisation: none, train (train mean) or split (each split its own mean, as the official code)."),
    knn_temperature: float = typer.Option(0.07, "--knn-temperature", help="Temperature T of the exp(sim/T) vote."),
    scale_knn_feature: str = typer.Option("set", "--scale-knn-feature", help="SCALE_kNN feature: set, or set+refined (SET ++ mean refined clip)."),
    scale_clip_feature: str = typer.Option("backbone", "--scale-clip-feature", help="SCALE_linear clip part: backbone [C_i||SET], refined [refined_i||SET] or both."),
    bn: str = typer.Option("auto", "--bn", help="BatchNorm without affine before clip heads: auto (on for MAE-family backbones), on, off, search."),
    head: str = typer.Option("clip_set", "--head", help="Transformer / SCALE_ft head: clip_set (per clip [refined_i||SET], softmax-averaged) or set."),
    protocol: str = typer.Option("standard", "--protocol", help="standard (select on a validation hold-out, test once) or official (the official SCALE eval code's rows, schedule and k-NN; docs/training.md)."),
    select_on_test: bool = typer.Option(False, "--select-on-test", help="--protocol official only: pick epoch x aggregation by TEST accuracy as the official code does (optimistic; marked in the table and JSON)."),
    allow_incomplete: bool = typer.Option(False, "--allow-incomplete", help="Probe although some videos of the split are still pending extraction (only the done ones are used; noted in the result)."),
    config: Path = CONFIG_OPTION,
) -> None:
    """Reproduce the paper's probe table (Tables 4/5) for the store's backbone: select on a validation hold-out, test once."""
    from scale_toolkit.atomic import write_json
    from scale_toolkit.ownership import check_replaceable
    from scale_toolkit.probes import ProbeOptions, rows_for, run_probes
    from scale_toolkit.probes.grid import load_grid_file
    from scale_toolkit.probes.pictures import write_probe_picture
    from scale_toolkit.probes.report import table_rows

    on_interrupt("no result was written" + (f" ({json_out} is unchanged)" if json_out else "") + "; rerun the command")
    if json_out:
        check_replaceable(json_out, "json", "--json")
    ks = parse_int_list(knn, "--knn")
    rows = rows_for(knn=ks is not None, linear=linear, mlp=mlp, transformer=transformer, ft=ft, has_model=model is not None)
    grid_overrides = load_grid_file(grid) if grid else {}
    transformer_model = grid_overrides.pop("transformer_model", {})
    options = ProbeOptions(
        split=str(split), knn_k=ks or [20], knn_temperature=knn_temperature, knn_center=knn_center,
        scale_knn_feature=scale_knn_feature, scale_clip_feature=scale_clip_feature, batchnorm=bn, head=head,
        low_shot=low_shot, seeds=parse_int_list(seeds, "--seeds"), val_fraction=val_fraction, grid_preset=grid_preset,
        grid=grid_overrides, epochs=epochs, allow_incomplete=allow_incomplete, transformer_model=transformer_model,
        device=device, protocol=protocol, select_on_test=select_on_test,
    )
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    bars = Progress(*columns, console=console, transient=True)
    tasks: dict[str, int] = {}

    def progress(name: str, done: int, total: int) -> None:
        if not bars.live.is_started:  # started at the first report: an early error is not preceded by a blank line
            bars.start()
        if name not in tasks:
            tasks[name] = bars.add_task(name, total=total)
        bars.update(tasks[name], completed=done, total=total)
        if done >= total and name != "probes":
            bars.remove_task(tasks.pop(name))

    try:
        doc = run_probes(store, rows=rows or None, model=model, train_store=train_store, options=options, progress=progress)
    finally:
        if bars.live.is_started:  # Progress.stop prints a newline on a non-terminal even if never started
            bars.stop()
    header, body = table_rows(doc)
    backbone = doc["store"]["backbone"].get("name") or "features"
    title = (f"{doc['store'].get('dataset') or store.name} · {backbone} · split {split}" + (f" · low-shot {low_shot:g}" if low_shot else "")
             + f" · protocol {doc['protocol_name']}" + (" · SELECTED ON TEST" if doc["select_on_test"] else ""))
    table = Table(title=shown(title))
    for i, col in enumerate(header):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in body:
        table.add_row(*(shown(cell) for cell in row))
    out.print(table)
    # the protocol as a paragraph under the table: as a caption it wrapped to the table's width (~40 lines)
    out.print(f"protocol: {doc['protocol']}")
    for note in doc["notes"]:
        out.print(f"note: {note}", markup=False)
    if json_out:
        write_json(json_out, doc)
        out.print(f"wrote {shown(json_out)}")
        picture = write_probe_picture(doc, Path(json_out).with_suffix(".confusion.png"))
        if picture is not None:
            out.print(f"wrote {shown(picture)} (confusion matrix and per-class top-1 of the best row)")

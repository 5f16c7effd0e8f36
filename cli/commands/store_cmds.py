"""`scale import`, `scale export`, `scale info`, `scale backbones`."""
from __future__ import annotations

import json
from pathlib import Path

import typer
from rich import box
from rich.table import Table

from ..app import CONFIG_OPTION, app, on_interrupt, out
from ..text import human_bytes, shown


@app.command("import")
def import_cmd(
    source: Path = typer.Argument(..., help="FEATURES.npz or FEATURES.h5 exported from a store (arrays features, coords, labels, video_ids, class_names, splits); or a FOLDER of per-video feature files [T, D] (FOLDER/<class>/<video>.npy|.npz|.h5), or a LIST.csv of them (columns path,label[,split])."),
    out_store: Path = typer.Option(..., "--out", help="The store to create (STORE.zarr); must not exist unless --overwrite. A folder import left unfinished at --out is continued by the same command."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing scale store at --out (never any other folder)."),
    key: str = typer.Option(None, "--key", help="Folder/CSV import: the array of each .npz file (default: its only array)."),
    dataset: str = typer.Option(None, "--dataset", help="Folder/CSV import: the dataset of each .h5 file (default: its only dataset)."),
    clip_length: float = typer.Option(1.0, "--clip-length", help="Folder/CSV import: how long each row's clip lasts, in --time-unit."),
    clip_stride: float = typer.Option(1.0, "--clip-stride", help="Folder/CSV import: time from one row's start to the next, in --time-unit."),
    time_unit: str = typer.Option("rows", "--time-unit", help="Folder/CSV import: rows (row i spans [i, i+1)), frames, seconds or ms."),
    times_key: str = typer.Option(None, "--times-key", help="Folder/CSV import: each .npz/.h5 file's array of per-row times in --time-unit, [T] starts or [T, 2] (start, end), e.g. timestamps_ms with --time-unit ms (then --clip-length/--clip-stride are unused)."),
    config: Path = CONFIG_OPTION,
) -> None:
    """Bring features made by another extractor into a feature store (validated first)."""
    from scale_toolkit.extract.feature_files import RowTiming, import_feature_files, is_feature_listing

    if is_feature_listing(source):
        on_interrupt(f"the finished blocks of {out_store} are kept; rerun the same command to continue")
        s = import_feature_files(source, out_store, key=key, dataset=dataset, overwrite=overwrite,
                                 timing=RowTiming(clip_length, clip_stride, time_unit, times_key))
        c = s.clips
        out.print(f"{'continued' if s.resumed else 'imported'} {s.imported} of {s.videos} videos into {shown(out_store)} "
                  f"({s.failed} failed; clips per video min {c['min']}, median {c['median']:g}, max {c['max']})")
        if s.missing:
            out.print(f"{len(s.missing)} files listed but not found (not imported), e.g. {shown(s.missing[0])}")
        if s.failed:
            out.print(f"the failures and their reasons: scale info {shown(out_store)}")
        return
    from scale_toolkit.store.interchange import import_features

    on_interrupt(f"nothing was written ({out_store} is unchanged); rerun the command")
    fs = import_features(source, out_store, overwrite=overwrite)
    out.print(f"imported {fs.n_videos} videos x {fs.n_clips} clips x {fs.feature_dim} dims into {shown(out_store)}")


@app.command("export")
def export_cmd(
    store: Path = typer.Argument(..., help="The feature store to export (STORE.zarr)."),
    out_file: Path = typer.Option(..., "--out", help="FILE.npz or FILE.h5; the store's array names are kept."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier export at --out (never any other file)."),
    config: Path = CONFIG_OPTION,
) -> None:
    """Write a feature store to .npz or .h5 with the same array names."""
    from scale_toolkit.store.interchange import export_store

    on_interrupt(f"nothing was written ({out_file} is unchanged); rerun the command")
    path = export_store(store, out_file, overwrite=overwrite)
    out.print(f"exported {shown(store)} to {shown(path)}")


@app.command("info")
def info_cmd(
    path: Path = typer.Argument(..., help="A feature store (STORE.zarr), a training run directory or a retrieval index (INDEX.faiss)."),
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON (a run's whole config, an index's sidecar) instead of a short table."),
    verify: bool = typer.Option(False, "--verify", help="Check every stored block against its checksum and list damaged rows (reads the whole store; exit 1 if any)."),
    config: Path = CONFIG_OPTION,
) -> None:
    """What a store (counts per status and split, backbone, view, dims, size), a run (epochs, metrics, model, store) or an index (type, videos, descriptor, backbone, media) holds."""
    from scale_toolkit.info import describe

    info = describe(path, verify=verify)
    checked = info.pop("verify", None)
    if as_json:
        out.print_json(json.dumps({**info, **({"verify": checked} if checked else {})}, default=str))
        if checked and checked["damaged_blocks"]:
            raise typer.Exit(1)
        return
    if "summary" in info:  # a run or an index: its short summary (--json has everything)
        table = Table(title=shown(path), show_header=False, caption="everything: scale info --json")
        table.add_column(no_wrap=True)
        table.add_column(overflow="fold")  # paths whole, folded, never cut with an ellipsis
        for key, value in info["summary"].items():
            table.add_row(key, shown(value))
        out.print(table)
        return
    table = Table(title=shown(path), show_header=False)
    for key, value in info.items():
        if key == "failures":
            continue
        if key == "disk_bytes":
            value = human_bytes(int(value))
        table.add_row(key, json.dumps(value, default=str) if isinstance(value, (dict, list)) else shown(value))
    out.print(table)
    failures = info.get("failures") or {}
    for vid, reason in list(failures.items())[:20]:
        out.print(f"failed: {shown(vid)}: {shown(reason)}")
    if len(failures) > 20:
        out.print(f"... and {len(failures) - 20} more failures (see --json)")
    if checked is None:
        return
    if not checked["checksums"]:
        out.print("verify: this store has no checksums (made by an older scale); nothing to check against")
        return
    for d in checked["damaged_blocks"]:
        what = ", ".join(f"{name} {problem}" for name, problem in d["arrays"].items())
        out.print(f"damaged: rows {d['rows'][0]}-{d['rows'][1]} ({shown(d['video_ids'][0])} ...): {what}")
    if checked["damaged_blocks"]:
        out.print(f"verify: {checked['damaged_rows']} rows in {len(checked['damaged_blocks'])} damaged blocks; "
                  "rerun the same `scale extract` to extract them again")
        raise typer.Exit(1)
    if not checked.get("metadata_checksums"):
        out.print("verify: this store's labels, splits, ids, status and reasons have no checksums (made by an older "
                  "scale): only the clip data was checked")
    out.print("verify: every block with done rows matches its checksum")


@app.command("backbones")
def backbones_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON (name, then every field of the spec)."),
) -> None:
    """List the registered backbones: name, feature dim, frames x stride, crop, checkpoint formats."""
    from scale_toolkit.backbones import list_backbones

    entries = [(entry.name if entry.name != "timm" else "timm:<model_name>", entry.spec) for entry in list_backbones()]
    if as_json:
        out.print_json(json.dumps([{**spec.to_dict(), "name": name} for name, spec in entries]))
        return
    wide = out.width >= 160  # the long columns only where they fit; --json always has them
    caption = "clip: frames x stride" + ("" if wide else "; checkpoint formats and weights: scale backbones --json")
    # narrow terminals: no side borders and tight padding, so the free-text pooling column gets the room
    table = Table(title="backbones", caption=caption, box=None if not wide else box.HEAVY_HEAD,
                  padding=(0, 1), show_edge=wide)
    # names are what users type: never cut them, whatever the terminal's width (other columns wrap)
    table.add_column("name", no_wrap=True, min_width=max(len(name) for name, _ in entries))
    for col in ("dim", "clip", "crop"):
        table.add_column(col, no_wrap=True)
    table.add_column("pooling")
    for col in (("checkpoint formats", "weights") if wide else ()):
        table.add_column(col)
    for name, s in entries:
        dim = "model's" if s.feature_dim <= 0 else str(s.feature_dim)
        row = [name, dim, f"{s.frames}x{s.stride}", str(s.crop_size), s.pooling]
        table.add_row(*row, *((", ".join(s.checkpoint_formats), s.weights_hint) if wide else ()))
    out.print(table)

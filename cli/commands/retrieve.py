"""`scale retrieve`: R@k evaluation, building a FAISS gallery index, and queries by video."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from scale_toolkit.atomic import write_result
from scale_toolkit.errors import ScaleError
from scale_toolkit.ownership import check_outputs
from scale_toolkit.retrieval.index import IndexParams
from scale_toolkit.retrieval.modes import (
    Mode,
    RetrieveOptions,
    RetrieveTargets,
    build_store_index,
    build_summary,
    evaluate_store,
    load_scale_model,
    query_targets,
)

from ..app import CONFIG_OPTION, app, console, on_interrupt, out, progress_bar, resolved
from ..options import option_from, unset_option
from ..parsing import parse_int_list
from ..text import shown


@app.command("retrieve")
def retrieve_cmd(
    store: Optional[Path] = typer.Option(None, "--store", help="Feature store (EVAL15.zarr) to evaluate or index; with --query, overrides the store recorded in the index."),
    split: Optional[int] = option_from(RetrieveOptions, "split", "--split", help="Split 1..3. Evaluation: queries = its test videos, gallery = its train videos (default 1). --build-index: index its train videos (default: all extracted videos of the store)."),
    model: Optional[Path] = typer.Option(None, "--model", help="SCALE run directory (or model file): also evaluate / index the SCALE descriptor."),
    descriptor: str = option_from(RetrieveOptions, "descriptor", "--descriptor", help="SCALE descriptor: set (SET token), set+mean (SET token ++ mean refined clip token) or refined (mean refined clip token)."),
    k: Optional[List[str]] = unset_option(RetrieveOptions, "ks", "--k", help="R@k values, repeated or comma-separated."),
    center: bool = option_from(RetrieveOptions, "center", "--center/--no-center", help="Centre descriptors before L2 normalisation: by each split's own mean in evaluation (CoCLR-style), by the gallery mean in an index. Off: VCOP/IIC-style."),
    index_type: str = option_from(IndexParams, "index_type", "--index-type", help="flat (exact) | ivf | hnsw | ivfpq (approximate, for large galleries: faster search, slightly lower recall; README, Retrieval)."),
    nlist: int = option_from(IndexParams, "nlist", "--nlist", help="ivf/ivfpq: number of k-means cells (0: ~sqrt(N))."),
    nprobe: int = option_from(IndexParams, "nprobe", "--nprobe", help="ivf/ivfpq: cells scanned per query (0: nlist/16); higher = better recall, slower."),
    hnsw_m: int = option_from(IndexParams, "hnsw_m", "--hnsw-m", help="hnsw: links per vector; higher = better recall, more memory, slower build."),
    ef_construction: int = option_from(IndexParams, "ef_construction", "--ef-construction", help="hnsw: build-time search width."),
    ef_search: int = option_from(IndexParams, "ef_search", "--ef-search", help="hnsw: query-time search width (at least --top); higher = better recall, slower."),
    pq_m: int = option_from(IndexParams, "pq_m", "--pq-m", help="ivfpq: bytes per vector (sub-quantizers; 0: dim/8)."),
    build_index: Optional[Path] = typer.Option(None, "--build-index", help="Write a FAISS index of the gallery here (INDEX, plus sidecar INDEX.json), atomically."),
    thumbs: Optional[bool] = option_from(RetrieveOptions, "thumbs", "--thumbs/--no-thumbs", help="--build-index: write a poster and a short preview per gallery video into INDEX.media/ for `scale serve` (default: when the videos are reachable)."),
    index: Optional[Path] = typer.Option(None, "--index", help="An index written by --build-index, to query."),
    query: Optional[str] = typer.Option(None, "--query", help="A video id of the store, or a video file (decoded and embedded with the store's backbone and checkpoint)."),
    top: int = option_from(RetrieveOptions, "top", "--top", help="Number of nearest videos to show for --query."),
    include_self: bool = option_from(RetrieveOptions, "include_self", "--include-self", help="Keep the query video in its own results when it is in the gallery."),
    allow_incomplete: bool = option_from(RetrieveOptions, "allow_incomplete", "--allow-incomplete", help="Proceed although some videos are still pending extraction (they are left out and counted)."),
    device: str = option_from(RetrieveOptions, "device", "--device", help="Device for the SCALE model and for embedding query files."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write every number, the protocol and fingerprints to this JSON file."),
    config: Path = CONFIG_OPTION,
) -> None:
    """Video retrieval: R@k (test queries vs train gallery), FAISS gallery indexes, nearest videos of a query."""
    from scale_toolkit.runtime import resolve_device

    flags = resolved(dict(locals()))
    params = IndexParams(index_type=index_type, nlist=nlist, nprobe=nprobe, hnsw_m=hnsw_m, ef_construction=ef_construction,
                         ef_search=ef_search, pq_m=pq_m)
    params.validate()
    resolve_device(device)  # a bad --device is one line before anything is loaded
    on_interrupt("no result was written and a previous index is unchanged; rerun the command")
    check_outputs([(json_out, "retrieve", "--json"), (build_index, "index", "--build-index")])  # before any work
    targets = RetrieveTargets(store=store, model=model, build_index=build_index, index=index, query=query)
    modes = targets.modes()
    options = RetrieveOptions.from_flags(split=split, descriptor=descriptor, ks=parse_int_list(k, "--k"), center=center,
                                         index_params=params, thumbs=thumbs, top=top, include_self=include_self,
                                         allow_incomplete=allow_incomplete, device=device)
    scale_model = load_scale_model(targets, device)

    payload: dict = {"config": flags}
    if Mode.BUILD_INDEX in modes:
        with progress_bar("posters and previews") as bar:
            info = build_store_index(store, build_index, options, scale_model, media_progress=_media_progress(bar))
        payload["build"] = _print_build(info, build_index, thumbs)
    if Mode.EVALUATE in modes:
        with console.status("computing descriptors and searching"):
            result = evaluate_store(store, options, scale_model)
        payload.update(_print_evaluation(result, descriptor))
    if Mode.QUERY in modes:
        payload["query"] = _print_query(query_targets(targets, options))
    if json_out is not None:
        if not Path(json_out).parent.is_dir():
            raise ScaleError(f"output directory does not exist: {Path(json_out).parent}")
        write_result(json_out, "retrieve", payload)
        console.print(f"wrote {shown(json_out)}")


def _print_evaluation(res: dict, descriptor: str) -> dict:
    """The R@k table, the protocol and the videos left out."""
    proto = res["protocol"]
    table = Table(title=f"retrieval R@k (%) - split {res['split']}: {res['n_queries']} test queries vs "
                        f"{res['n_gallery']} train gallery videos")
    table.add_column("descriptor")
    for key in res["recall"]:
        table.add_column(f"R@{key}", justify="right")
    table.add_row(f"baseline: mean of {res['n_clips']} clips ({res['descriptor_dim']}-d)",
                  *(f"{v:.2f}" for v in res["recall"].values()))
    if "scale_recall" in res:
        table.add_row(f"SCALE: {descriptor} ({res['scale_descriptor_dim']}-d)",
                      *(f"{v:.2f}" for v in res["scale_recall"].values()))
    out.print(table)
    out.print(f"similarity: {proto['similarity']}; centring: {proto['centring']}; search: {proto['search']}")
    out.print(f"protocol: {proto['name']}. {proto['note']}")
    excluded = res["excluded_not_extracted"]
    failed = excluded["queries"]["failed"] + excluded["gallery"]["failed"]
    pending = excluded["queries"]["pending"] + excluded["gallery"]["pending"]
    if failed or pending:
        console.print(f"note: {failed} failed and {pending} pending videos of this split have no features "
                      "and are not part of the evaluation", style="yellow")
    if res["queries_without_gallery_class"]:
        console.print(f"note: {res['queries_without_gallery_class']} queries have a class absent from the gallery "
                      "(counted as misses)")
    return res


def _media_progress(bar):
    """A callback that shows the posters-and-previews bar once the first poster is written."""
    task = None

    def media_progress(done: int, total: int) -> None:
        nonlocal task
        if task is None:
            task = bar.add_task("media", total=total, info="")
        bar.update(task, completed=done)

    return media_progress


def _print_build(info: dict, build_index: Path, thumbs: Optional[bool]) -> dict:
    """What was written, and which gallery videos have no poster."""
    out.print(f"wrote {shown(build_index)} ({info['index_params']['index_type']}, {info['n_videos']} videos of "
              f"{info['gallery']}, descriptor {info['descriptor']}, centring {'on' if info['center'] else 'off'}, "
              f"{info['index_bytes'] / 2**20:.1f} MiB) and its sidecar {shown(build_index)}.json")
    media = info.get("media")
    if media:
        made = sum(item is not None for item in media["items"])
        out.print(f"media for scale serve: {made} posters and previews in {shown(Path(build_index).parent / media['dir'])}")
        for vid, reason in list(media["failed"].items())[:5]:
            console.print(f"note: no poster for {shown(vid)}: {reason}", style="yellow")
        if len(media["failed"]) > 5:
            console.print(f"note: {len(media['failed']) - 5} more videos have no poster", style="yellow")
    elif thumbs is None:
        console.print("note: no posters or previews (the gallery videos are not reachable here); "
                      "scale serve shows placeholders")
    return build_summary(info)


def _print_query(res: dict) -> dict:
    """The nearest videos of the query, as a table."""
    asked = res["query"]
    title = shown(f"nearest videos to {asked['video_id']} ({asked.get('class_name')})" if asked["kind"] == "video_id"
                  else f"nearest videos to the file {asked['path']}")
    table = Table(title=title)
    for col, just in (("#", "right"), ("class", "left"), ("similarity", "right"), ("video", "left")):
        table.add_column(col, justify=just)
    for hit in res["results"]:
        table.add_row(str(hit["rank"]), shown(hit["class_name"]), f"{hit['similarity']:.4f}", shown(hit["path"]))
    out.print(table)
    out.print(f"index: {shown(res['index'])} ({res['index_type']}, {res['n_gallery']} videos, descriptor {res['descriptor']}, "
              f"centring {'on' if res['center'] else 'off'})")
    for note in res["notes"]:
        console.print(f"note: {shown(note)}")
    return res

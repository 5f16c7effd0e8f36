"""`scale retrieve`: R@k evaluation, building a FAISS gallery index, and queries by video."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from scale_toolkit.atomic import write_json
from scale_toolkit.errors import ScaleError
from scale_toolkit.ownership import check_replaceable

from ..app import CONFIG_OPTION, app, console, on_interrupt, out, progress_bar, resolved
from ..parsing import parse_int_list
from ..text import shown


def _parse_ks(values: list[str] | None) -> tuple[int, ...]:
    from scale_toolkit.retrieval.evaluate import DEFAULT_KS

    return tuple(parse_int_list(values, "--k") or DEFAULT_KS)


@app.command("retrieve")
def retrieve_cmd(
    store: Optional[Path] = typer.Option(None, "--store", help="Feature store (EVAL15.zarr) to evaluate or index; with --query, overrides the store recorded in the index."),
    split: Optional[int] = typer.Option(None, "--split", help="Split 1..3. Evaluation: queries = its test videos, gallery = its train videos (default 1). --build-index: index its train videos (default: all extracted videos of the store)."),
    model: Optional[Path] = typer.Option(None, "--model", help="SCALE run directory (or model file): also evaluate / index the SCALE descriptor."),
    descriptor: str = typer.Option("set", "--descriptor", help="SCALE descriptor: set (SET token), set+mean (SET token ++ mean refined clip token) or refined (mean refined clip token)."),
    k: Optional[List[str]] = typer.Option(None, "--k", help="R@k values, repeated or comma-separated (default 1,5,10,20,50)."),
    center: bool = typer.Option(False, "--center/--no-center", help="Centre descriptors before L2 normalisation: by each split's own mean in evaluation (CoCLR-style), by the gallery mean in an index. Default off (VCOP/IIC-style)."),
    index_type: str = typer.Option("flat", "--index-type", help="flat (exact, default) | ivf | hnsw | ivfpq (approximate, for large galleries: faster search, slightly lower recall; README, Retrieval)."),
    nlist: int = typer.Option(0, "--nlist", help="ivf/ivfpq: number of k-means cells (0: ~sqrt(N))."),
    nprobe: int = typer.Option(0, "--nprobe", help="ivf/ivfpq: cells scanned per query (0: nlist/16); higher = better recall, slower."),
    hnsw_m: int = typer.Option(32, "--hnsw-m", help="hnsw: links per vector; higher = better recall, more memory, slower build."),
    ef_construction: int = typer.Option(40, "--ef-construction", help="hnsw: build-time search width."),
    ef_search: int = typer.Option(128, "--ef-search", help="hnsw: query-time search width (at least --top); higher = better recall, slower."),
    pq_m: int = typer.Option(0, "--pq-m", help="ivfpq: bytes per vector (sub-quantizers; 0: dim/8)."),
    build_index: Optional[Path] = typer.Option(None, "--build-index", help="Write a FAISS index of the gallery here (INDEX, plus sidecar INDEX.json), atomically."),
    thumbs: Optional[bool] = typer.Option(None, "--thumbs/--no-thumbs", help="--build-index: write a poster and a short preview per gallery video into INDEX.media/ for `scale serve` (default: when the videos are reachable)."),
    index: Optional[Path] = typer.Option(None, "--index", help="An index written by --build-index, to query."),
    query: Optional[str] = typer.Option(None, "--query", help="A video id of the store, or a video file (decoded and embedded with the store's backbone and checkpoint)."),
    top: int = typer.Option(10, "--top", help="Number of nearest videos to show for --query."),
    include_self: bool = typer.Option(False, "--include-self", help="Keep the query video in its own results when it is in the gallery."),
    allow_incomplete: bool = typer.Option(False, "--allow-incomplete", help="Proceed although some videos are still pending extraction (they are left out and counted)."),
    device: str = typer.Option("cpu", "--device", help="Device for the SCALE model and for embedding query files."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write every number, the protocol and fingerprints to this JSON file."),
    config: Path = CONFIG_OPTION,
) -> None:
    """Video retrieval: R@k (test queries vs train gallery), FAISS gallery indexes, nearest videos of a query."""
    flags = resolved(dict(locals()))
    from scale_toolkit.retrieval.index import IndexParams

    params = IndexParams(index_type=index_type, nlist=nlist, nprobe=nprobe, hnsw_m=hnsw_m, ef_construction=ef_construction,
                         ef_search=ef_search, pq_m=pq_m)
    params.validate()
    on_interrupt("no result was written and a previous index is unchanged; rerun the command")
    if json_out is not None:
        check_replaceable(json_out, "json", "--json")
    if query is not None and index is None and build_index is None:
        raise ScaleError("--query needs --index INDEX (build one with --store STORE.zarr --build-index INDEX)")
    if query is None and index is not None:
        raise ScaleError("--index is for queries; add --query VIDEO_FILE|VIDEO_ID (to evaluate R@k, use --store)")
    if model is not None and index is not None:
        raise ScaleError("--model is not used with --index: a query uses the model recorded in the index's sidecar")
    if (build_index is not None or query is None) and store is None:
        raise ScaleError("--store STORE.zarr is required (to evaluate R@k or to --build-index)")

    model_obj = model_info = None
    if model is not None and (build_index is not None or query is None):
        from scale_toolkit.retrieval.models import load_retrieval_model

        model_obj, model_info = load_retrieval_model(model, device)

    payload: dict = {"config": flags}
    if build_index is not None:
        payload["build"] = _build(store, build_index, split, model_obj, model_info, descriptor, center, params,
                                  allow_incomplete, device, thumbs)
    elif query is None:
        payload.update(_evaluate(store, split, model_obj, model_info, descriptor, k, center, params,
                                 allow_incomplete, device))
    if query is not None:
        payload["query"] = _query(index or build_index, query, top, store if index is not None else None,
                                  device, not include_self)
    if json_out is not None:
        if not Path(json_out).parent.is_dir():
            raise ScaleError(f"output directory does not exist: {Path(json_out).parent}")
        write_json(json_out, payload)
        console.print(f"wrote {shown(json_out)}")


def _evaluate(store, split, model_obj, model_info, descriptor, k, center, params, allow_incomplete, device) -> dict:
    from scale_toolkit.retrieval.evaluate import evaluate_retrieval
    from scale_toolkit.store import FeatureStore

    fs = FeatureStore.open(store)
    with console.status("computing descriptors and searching"):
        res = evaluate_retrieval(fs, split or 1, model=model_obj, model_info=model_info, scale_descriptor=descriptor,
                                 ks=_parse_ks(k), center=center, index_params=params, allow_incomplete=allow_incomplete,
                                 device=device)
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
    excl = res["excluded_not_extracted"]
    failed = excl["queries"]["failed"] + excl["gallery"]["failed"]
    pending = excl["queries"]["pending"] + excl["gallery"]["pending"]
    if failed or pending:
        console.print(f"note: {failed} failed and {pending} pending videos of this split have no features "
                      "and are not part of the evaluation", style="yellow")
    if res["queries_without_gallery_class"]:
        console.print(f"note: {res['queries_without_gallery_class']} queries have a class absent from the gallery "
                      "(counted as misses)")
    return res


def _build(store, build_index, split, model_obj, model_info, descriptor, center, params, allow_incomplete, device,
           thumbs) -> dict:
    from scale_toolkit.retrieval.query import build_gallery_index
    from scale_toolkit.store import FeatureStore

    fs = FeatureStore.open(store)
    kind = descriptor if model_obj is not None else None
    with progress_bar("posters and previews") as bar:
        task = None

        def media_progress(done: int, total: int) -> None:
            nonlocal task
            if task is None:
                task = bar.add_task("media", total=total, info="")
            bar.update(task, completed=done)

        info = build_gallery_index(fs, build_index, split=split, model=model_obj, model_info=model_info,
                                   descriptor=kind, center=center, params=params,
                                   allow_incomplete=allow_incomplete, device=device, thumbs=thumbs,
                                   thumbs_progress=media_progress)
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
    return {k: v for k, v in info.items() if k not in ("video_ids", "labels", "class_names", "center_vector", "media")}


def _query(index_path, query, top, store, device, exclude_self) -> dict:
    from scale_toolkit.retrieval.query import query_index

    res = query_index(index_path, query, top=top, store_path=store, device=device, exclude_self=exclude_self)
    q = res["query"]
    title = shown(f"nearest videos to {q['video_id']} ({q.get('class_name')})" if q["kind"] == "video_id"
                  else f"nearest videos to the file {q['path']}")
    table = Table(title=title)
    for col, just in (("#", "right"), ("class", "left"), ("similarity", "right"), ("video", "left")):
        table.add_column(col, justify=just)
    for r in res["results"]:
        table.add_row(str(r["rank"]), shown(r["class_name"]), f"{r['similarity']:.4f}", shown(r["path"]))
    out.print(table)
    out.print(f"index: {shown(res['index'])} ({res['index_type']}, {res['n_gallery']} videos, descriptor {res['descriptor']}, "
              f"centring {'on' if res['center'] else 'off'})")
    for note in res["notes"]:
        console.print(f"note: {shown(note)}")
    return res

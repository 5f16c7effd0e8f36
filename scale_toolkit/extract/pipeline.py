"""`run_extraction`: videos -> clips -> frozen backbone -> FeatureStore, resumable and sharded.

Work is done in chunk-aligned blocks of videos. A shard (`--shard i/n`, or the rank under
torchrun) owns blocks b with b % n == i, so writers never share a chunk; a block is written
whole, data before status, so a killed run loses only its block in flight and a rerun
recomputes exactly the blocks still pending. Backbone batches are cut from one block's clips
only, so a block's features do not depend on which shard or which run computed it.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..backbones import load_backbone
from ..backbones.inference import embed_clips
from ..checks import check_numbers
from ..contracts.extract import DECODERS, ExtractConfig
from ..contracts.progress import (
    ExtractBlock,
    ExtractCounts,
    ExtractEnd,
    ExtractEvent,
    ExtractProgress,
    ExtractStart,
    ExtractVideo,
)
from ..data.clips import VIEWS
from ..data.manifest import Manifest, load_manifest
from ..errors import ScaleError
from ..precision import Precision, check_precision, resolve_precision
from ..runtime import dist_from_env, torch_threads
from ..store import FeatureStore
from ..store.resume import create_or_resume, shard_work
from ..store.shard_lock import ShardLock
from .prepare import ViewRecipe
from .workers import DecodePool, default_workers


@dataclass
class ExtractSummary:
    store: str
    total: int
    done_now: int = 0
    failed_now: dict[str, str] = field(default_factory=dict)
    already_done: int = 0
    clips: int = 0
    seconds: float = 0.0
    missing: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)
    shard: str = "0/1"
    precision: str = ""  # the resolved precision and why, e.g. "fp32 (CPU capability AVX2: no native bf16)"
    damaged: int = 0  # done rows whose data was damaged, extracted again


def parse_shard(shard: str | None) -> tuple[int, int]:
    """`--shard i/n`, else torchrun's RANK/WORLD_SIZE, else the whole store."""
    if shard:
        try:
            i, n = (int(x) for x in shard.split("/"))
        except ValueError:
            raise ScaleError(f"--shard must look like i/n (e.g. 0/4), got {shard!r}") from None
        if n < 1 or not 0 <= i < n:
            raise ScaleError(f"--shard {shard}: need 0 <= i < n")
        return i, n
    info = dist_from_env()
    return info.rank, info.world_size


def _validate(cfg: ExtractConfig) -> None:
    check_numbers(cfg, flags={"timeout_s": "--timeout"})
    if cfg.view not in VIEWS:
        raise ScaleError(f"--view must be one of {', '.join(VIEWS)}, got {cfg.view!r}")
    if cfg.decoder not in DECODERS:
        raise ScaleError(f"--decoder must be one of {', '.join(DECODERS)}")
    if cfg.batch_size <= 0:
        raise ScaleError(f"--batch-size must be positive, got {cfg.batch_size}")
    if cfg.limit is not None and cfg.limit <= 0:
        raise ScaleError(f"--limit must be positive, got {cfg.limit}")
    if cfg.timeout_s <= 0:
        raise ScaleError("--timeout must be positive")
    if cfg.threads < 0:
        raise ScaleError(f"--threads must be 0 (torch's default) or positive, got {cfg.threads}")
    check_precision(cfg.precision)
    if cfg.workers < -1:
        raise ScaleError(f"--workers must be -1 (from the core count), 0 (in this process) or positive, got {cfg.workers}")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ScaleError(f"--device {cfg.device} asked for, but no CUDA device is available; use --device cpu")


def store_attrs(cfg: ExtractConfig, spec, sha: str, manifest: Manifest, precision: Precision) -> dict:
    """What the store remembers about how it was made (also what `scale retrieve --query` reuses).

    ``precision`` is what the requested ``cfg.precision`` resolved to on the creating machine; a
    query embedded later resolves the requested value again on its own machine."""
    return {
        "backbone": spec.to_dict(),
        "backbone_name": cfg.backbone,
        "backbone_options": dict(cfg.backbone_options),
        "checkpoint": str(Path(cfg.checkpoint).resolve()) if cfg.checkpoint else None,
        "checkpoint_sha256": sha,
        "view": {"name": cfg.view, "clips": VIEWS[cfg.view], "frames": spec.frames, "stride": spec.stride,
                 "crop_size": spec.crop_size},
        "dataset": manifest.dataset,
        "dataset_root": str(manifest.root),
        "seed": cfg.seed,
        "decoder": cfg.decoder,
        "precision": cfg.precision,
        "precision_resolved": precision.value,
        "precision_reason": precision.reason,
    }


class BlockEmbedder:
    """Runs the backbone on one block's clips while the block is still being decoded.

    Batches are cut from the block's clips in row order exactly as one pass over the whole
    block would cut them, so features do not depend on when the clips arrived; a batch runs as
    soon as it is full, which hides the decoding of later videos behind the backbone and keeps
    only one batch of clips in memory.
    """

    def __init__(self, module, batch_size: int, precision: str) -> None:
        self.module, self.batch_size, self.precision = module, batch_size, precision
        self.rows: list[int] = []
        self.waiting: list[np.ndarray] = []
        self.features: list[torch.Tensor] = []

    def add(self, row: int, clips: np.ndarray) -> None:
        self.rows.append(row)
        self.waiting.append(clips)
        if sum(len(c) for c in self.waiting) >= self.batch_size:
            clips = np.concatenate(self.waiting)
            full = len(clips) // self.batch_size * self.batch_size
            self._embed(clips[:full])
            self.waiting = [clips[full:]] if full < len(clips) else []

    def _embed(self, clips: np.ndarray) -> None:
        self.features.append(embed_clips(self.module, torch.from_numpy(clips), self.batch_size, self.precision))

    def finish(self) -> tuple[list[int], np.ndarray]:
        """Rows in arrival order and their features [rows, clips, D]; resets for the next block."""
        if self.waiting:
            self._embed(np.concatenate(self.waiting))
        rows, feats = self.rows, torch.cat(self.features).numpy() if self.features else np.empty((0, 0), np.float32)
        self.rows, self.waiting, self.features = [], [], []
        return rows, feats.reshape(len(rows), -1, feats.shape[-1]) if rows else feats


def run_extraction(cfg: ExtractConfig, progress: ExtractProgress | None = None) -> ExtractSummary:
    """Extract features for every pending video of this shard into `cfg.out`; ``progress`` is called with
    each ExtractEvent (contracts/progress.py)."""
    _validate(cfg)
    t_start = time.monotonic()
    progress = progress or _silent
    shard = parse_shard(cfg.shard)
    manifest = _load_videos(cfg)
    workers = default_workers() if cfg.workers < 0 else cfg.workers
    # a store in use is refused before any decode worker is spawned (killing just-spawned workers
    # on the way out printed "Exception ignored ... Bad file descriptor")
    held = ShardLock.of_extracted_store(cfg.out, shard)
    with held or nullcontext(), DecodePool(workers, cfg.timeout_s) as pool, torch_threads(cfg.threads):
        pool.start()  # decode workers come up while the backbone is built
        loaded = load_backbone(cfg.backbone, cfg.checkpoint, cfg.random_init, cfg.strict, **cfg.backbone_options)
        precision = resolve_precision(cfg.precision, cfg.device)
        store = _open_store(cfg, loaded, manifest, precision)
        summary = ExtractSummary(store=str(cfg.out), total=store.n_videos, missing=manifest.missing, unlisted=manifest.unlisted,
                                 shard=f"{shard[0]}/{shard[1]}", precision=precision.describe())
        embedder = BlockEmbedder(loaded.module.to(cfg.device), cfg.batch_size, precision.value)
        recipe = ViewRecipe.for_backbone(cfg.view, loaded.spec, cfg.seed, cfg.decoder)
        with nullcontext() if held else ShardLock(store.path, shard):
            work = shard_work(store, shard, cfg.retry_failed)
            summary.already_done, summary.damaged = work.already_done, work.damaged
            report = _extract_rows(work.rows, store, manifest, pool.run, recipe, embedder, summary, progress)
    summary.seconds = time.monotonic() - t_start
    progress(ExtractEnd(**report.counts()))
    return summary


def _silent(event: ExtractEvent) -> None:
    """The progress callback of a run nobody watches."""


def _load_videos(cfg: ExtractConfig) -> Manifest:
    """The dataset's manifest, cut to `--limit` videos; refuses an empty one."""
    manifest = load_manifest(cfg.dataset, cfg.root, cfg.splits, cfg.csv)
    if cfg.limit:
        manifest.videos = manifest.videos[: cfg.limit]
    if not manifest.videos:
        raise ScaleError(f"no videos found under {cfg.root} for dataset {cfg.dataset}")
    return manifest


def _open_store(cfg: ExtractConfig, loaded, manifest: Manifest, precision: Precision) -> FeatureStore:
    """`cfg.out`, created for the manifest's videos or resumed (store/resume.py)."""
    videos = manifest.videos
    return create_or_resume(
        cfg.out,
        video_ids=[v.video_id for v in videos],
        labels=np.array([v.label for v in videos], np.int32),
        splits=np.array([v.splits for v in videos], np.int8).T.reshape(3, -1),
        class_names=manifest.class_names,
        n_clips=VIEWS[cfg.view],
        feature_dim=loaded.spec.feature_dim,
        attrs=store_attrs(cfg, loaded.spec, loaded.checkpoint_sha256, manifest, precision),
        rows_per_chunk=cfg.rows_per_chunk,
    )


def _extract_rows(rows: list[int], store: FeatureStore, manifest: Manifest, decode, recipe: ViewRecipe,
                  embedder: BlockEmbedder, summary: ExtractSummary, progress: ExtractProgress) -> ExtractCounts:
    """Decode the rows' videos (`decode`: the pool's run), embed them and write each block once its
    videos are all back; returns the progress report."""
    videos = manifest.videos
    # decoded/failed count as videos come back from the decoders; "written" when their
    # block is embedded and stored, which is what a rate and an ETA must be based on
    report = ExtractCounts(total=len(rows), done=0, failed=0, clips=0, written=0, started=time.monotonic())
    progress(ExtractStart(**report.counts(), already_done=summary.already_done, precision=summary.precision))
    tasks = ((r, str(videos[r].path), videos[r].video_id) for r in rows)
    current_block, results = None, {}
    for row, result in decode(tasks, recipe):
        block = row // store.rows_per_chunk
        if current_block is not None and block != current_block:
            _finish_block(store, current_block, results, embedder, summary, manifest)
            report = replace(report, written=report.written + len(results))
            progress(ExtractBlock(**report.counts()))
            results = {}
        current_block = block
        if "error" in result:
            report = replace(report, failed=report.failed + 1)
        else:
            clips = result.pop("clips")
            embedder.add(row, clips)
            report = replace(report, done=report.done + 1, clips=report.clips + len(clips))
        results[row] = result
        progress(ExtractVideo(**report.counts(), video_id=videos[row].video_id, error=result.get("error")))
    if current_block is not None:
        _finish_block(store, current_block, results, embedder, summary, manifest)
        report = replace(report, written=report.written + len(results))
    return report


def _finish_block(store: FeatureStore, block: int, results: dict, embedder: BlockEmbedder, summary: ExtractSummary,
                  manifest: Manifest) -> None:
    """Embed the block's last clips, then write the block (a video with non-finite features fails)."""
    rows, feats = embedder.finish()
    for i, r in enumerate(rows):
        if np.isfinite(feats[i]).all():
            results[r]["features"] = feats[i]
            summary.clips += store.n_clips
        else:
            results[r] = {"error": "backbone produced non-finite features"}
    try:
        store.write_block(block, results)
    except OSError as exc:  # disk full, read-only or vanished output: the block stays pending
        raise ScaleError(f"cannot write to {store.path}: {exc.strerror or exc}; free space or fix permissions, "
                         "then rerun to continue") from exc
    for r, res in results.items():
        if "error" in res:
            summary.failed_now[manifest.videos[r].video_id] = res["error"]
        else:
            summary.done_now += 1

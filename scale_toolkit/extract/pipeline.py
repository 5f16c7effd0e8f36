"""`run_extraction`: videos -> clips -> frozen backbone -> FeatureStore, resumable and sharded.

Work is done in chunk-aligned blocks of videos. A shard (`--shard i/n`, or the rank under
torchrun) owns blocks b with b % n == i, so writers never share a chunk; a block is written
whole, data before status, so a killed run loses only its block in flight and a rerun
recomputes exactly the blocks still pending. Backbone batches are cut from one block's clips
only, so a block's features do not depend on which shard or which run computed it.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..backbones import load_backbone
from ..backbones.inference import embed_clips
from ..checks import check_numbers
from ..data.clips import VIEWS
from ..data.manifest import Manifest, load_manifest
from ..errors import ScaleError
from ..locks import release, try_lock
from ..ownership import is_feature_store
from ..precision import Precision, check_precision, resolve_precision
from ..runtime import dist_from_env, torch_threads
from ..store import DONE, FAILED, PENDING, FeatureStore
from .prepare import ViewRecipe
from .workers import DecodePool, default_workers

DECODERS = ("auto", "decord", "pyav")


@dataclass
class ExtractConfig:
    backbone: str
    out: Path
    root: Path
    dataset: str = "folder"
    view: str = "eval15"
    checkpoint: Path | None = None
    random_init: bool = False
    strict: bool = True
    backbone_options: dict = field(default_factory=dict)  # e.g. {"encoder": "momentum"}
    splits: Path | None = None
    csv: Path | None = None
    device: str = "cpu"
    precision: str = "auto"  # auto | bf16 | fp32 (scale_toolkit.precision)
    batch_size: int = 32  # clips per backbone forward
    workers: int = -1  # -1: pick from the core count; 0: decode in-process
    threads: int = 0  # torch intra-op threads for the backbone; 0 = torch's default
    limit: int | None = None
    seed: int = 0
    decoder: str = "auto"
    retry_failed: bool = False
    shard: str | None = None  # "i/n"
    timeout_s: float = 300.0
    # videos per store chunk = the unit of work, resume and sharding (env SCALE_ROWS_PER_CHUNK overrides)
    rows_per_chunk: int = field(default_factory=lambda: int(os.environ.get("SCALE_ROWS_PER_CHUNK", 16)))


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
    check_numbers(cfg, flags={"timeout_s": "--timeout", "rows_per_chunk": "SCALE_ROWS_PER_CHUNK"})
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
        "view": {"name": cfg.view, "clips": VIEWS[cfg.view], "frames": spec.frames, "stride": spec.stride, "crop_size": spec.crop_size},
        "dataset": manifest.dataset,
        "dataset_root": str(manifest.root),
        "seed": cfg.seed,
        "decoder": cfg.decoder,
        "precision": cfg.precision,
        "precision_resolved": precision.value,
        "precision_reason": precision.reason,
    }


# Attributes that must agree before a run may write into an existing store.
_RESUME_KEYS = ("backbone_name", "checkpoint_sha256", "view", "dataset", "seed", "backbone_options")


def _open_or_create(cfg: ExtractConfig, attrs: dict, manifest: Manifest, spec) -> FeatureStore:
    out = Path(cfg.out)
    if not out.exists():
        if not out.parent.exists():
            raise ScaleError(f"output directory does not exist: {out.parent}")
        if not os.access(out.parent, os.W_OK):
            raise ScaleError(f"cannot write to {out.parent} (read-only?)")
        # Build the empty store beside the target and rename it in: a killed or racing creator
        # never leaves a half-made store, and of several shards starting at once one wins.
        tmp = out.with_name(f".{out.name}.creating-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            FeatureStore.create(
                tmp,
                video_ids=[v.video_id for v in manifest.videos],
                labels=np.array([v.label for v in manifest.videos], np.int32),
                splits=np.array([v.splits for v in manifest.videos], np.int8).T.reshape(3, -1),
                class_names=manifest.class_names,
                n_clips=VIEWS[cfg.view],
                feature_dim=spec.feature_dim,
                attrs=attrs,
                rows_per_chunk=cfg.rows_per_chunk,
            )
            os.rename(tmp, out)
        except OSError as exc:
            if not out.exists():
                raise ScaleError(f"cannot create {out}: {exc.strerror or exc}") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    store = FeatureStore.open(out, mode="r+")
    old = store.attrs
    for key in _RESUME_KEYS:
        if old.get(key) != attrs.get(key):
            raise ScaleError(
                f"{out} was made with {key}={old.get(key)!r}, not {attrs.get(key)!r}; "
                "refusing to mix them: use another --out (or delete the store)"
            )
    if store.video_ids != [v.video_id for v in manifest.videos]:
        raise ScaleError(f"{out} holds a different list of videos (other --root, --limit or split files); use another --out")
    return store


class ShardLock:
    """Locks under STORE/.locks/ so that two extractions never write the same block.

    Shards of one layout (the same n in --shard i/n; a plain run is 0/1) own disjoint blocks and
    may run together, each shard once: `shard-i-of-n` is held exclusively. Shards of different
    layouts overlap (0/1 owns every block, 0/2 and 0/3 share block 0): each run holds
    `layout-n` shared, and refuses to start while a `layout-m` (m != n) is held; `layout.mutex`
    makes that check and the taking of `layout-n` one step. flocks die with their holder.
    """

    def __init__(self, store_path: Path, shard: tuple[int, int]) -> None:
        self.dir = Path(store_path) / ".locks"
        self.shard = shard
        self.handles: list = []

    def _refuse(self, running: str) -> None:
        self.__exit__()
        i, n = self.shard
        mine = f"--shard {i}/{n}" if n > 1 else "this whole-store run"
        raise ScaleError(f"another extraction is already writing {self.dir.parent} ({running}) and {mine} would "
                         "write the same blocks; wait for it, or run shards of one layout (same n in --shard i/n)")

    def __enter__(self) -> "ShardLock":
        i, n = self.shard
        self.dir.mkdir(exist_ok=True)
        with open(self.dir / "layout.mutex", "a+") as mutex:
            fcntl.flock(mutex, fcntl.LOCK_EX)  # held for microseconds by whoever starts
            for other in self.dir.glob("layout-*"):
                m = other.name.removeprefix("layout-")
                if m != str(n):
                    probe = try_lock(other)
                    if probe is None:
                        self._refuse("a whole-store run" if m == "1" else f"shards of --shard i/{m}")
                    release(probe)
            layout = try_lock(self.dir / f"layout-{n}", shared=True)
            if layout is None:  # only while a check of another layout holds it for a moment
                self._refuse("a run of another layout")
            self.handles.append(layout)
        shard = try_lock(self.dir / f"shard-{i}-of-{n}")
        if shard is None:
            self._refuse("the same shard" if n > 1 else "a whole-store run")
        self.handles.append(shard)
        return self

    def __exit__(self, *exc) -> None:
        for handle in reversed(self.handles):
            release(handle)
        self.handles = []


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


def run_extraction(cfg: ExtractConfig, progress: Callable[[dict], None] | None = None) -> ExtractSummary:
    """Extract features for every pending video of this shard into `cfg.out`."""
    _validate(cfg)
    t_start = time.monotonic()
    shard = parse_shard(cfg.shard)
    manifest = load_manifest(cfg.dataset, cfg.root, cfg.splits, cfg.csv)
    if cfg.limit:
        manifest.videos = manifest.videos[: cfg.limit]
    if not manifest.videos:
        raise ScaleError(f"no videos found under {cfg.root} for dataset {cfg.dataset}")
    workers = default_workers() if cfg.workers < 0 else cfg.workers
    # a store in use is refused before any decode worker is spawned (killing just-spawned workers
    # on the way out printed "Exception ignored ... Bad file descriptor"); only a store an extraction
    # already wrote (it has .locks): nothing is added to a store that may yet be refused as foreign
    early = is_feature_store(cfg.out) and (Path(cfg.out) / ".locks").is_dir()
    held = ShardLock(Path(cfg.out), shard) if early else None
    with held or nullcontext(), DecodePool(workers, cfg.timeout_s) as pool, torch_threads(cfg.threads):
        pool.start()  # decode workers come up while the backbone is built
        loaded = load_backbone(cfg.backbone, cfg.checkpoint, cfg.random_init, cfg.strict, **cfg.backbone_options)
        spec = loaded.spec
        precision = resolve_precision(cfg.precision, cfg.device)
        store = _open_or_create(cfg, store_attrs(cfg, spec, loaded.checkpoint_sha256, manifest, precision), manifest, spec)
        summary = ExtractSummary(store=str(cfg.out), total=store.n_videos, missing=manifest.missing, unlisted=manifest.unlisted,
                                 shard=f"{shard[0]}/{shard[1]}", precision=precision.describe())
        embedder = BlockEmbedder(loaded.module.to(cfg.device), cfg.batch_size, precision.value)
        recipe = ViewRecipe.for_backbone(cfg.view, spec, cfg.seed, cfg.decoder)

        with nullcontext() if held else ShardLock(store.path, shard):
            status = store.status
            # rows whose data is damaged (checksum, lost or truncated chunk) are extracted again
            for damage in store.verify(range(shard[0], store.n_blocks, shard[1])):
                rows = np.array(store.block_rows(damage["block"]))
                summary.damaged += int((status[rows] == DONE).sum())
                status[rows[status[rows] == DONE]] = PENDING
            if cfg.retry_failed:
                failed_rows = np.flatnonzero(status == FAILED)
                status[failed_rows] = PENDING
            blocks = [b for b in range(shard[0], store.n_blocks, shard[1]) if (status[list(store.block_rows(b))] == PENDING).any()]
            owned = [r for b in range(shard[0], store.n_blocks, shard[1]) for r in store.block_rows(b)]
            summary.already_done = int((status[owned] == DONE).sum())
            todo_rows = [r for b in blocks for r in store.block_rows(b) if status[r] == PENDING]
            by_row = manifest.videos
            # decoded/failed count as videos come back from the decoders; "written" when their
            # block is embedded and stored, which is what a rate and an ETA must be based on
            report = {"total": len(todo_rows), "done": 0, "failed": 0, "clips": 0, "written": 0, "started": time.monotonic()}
            if progress:
                progress(dict(report, event="start", already_done=summary.already_done, precision=summary.precision))
            tasks = ((r, str(by_row[r].path), by_row[r].video_id) for r in todo_rows)
            current_block, results = None, {}
            for row, result in pool.run(tasks, recipe):
                block = row // store.rows_per_chunk
                if current_block is not None and block != current_block:
                    _finish_block(store, current_block, results, embedder, summary, manifest)
                    report["written"] += len(results)
                    if progress:
                        progress(dict(report, event="block"))
                    results = {}
                current_block = block
                if "error" in result:
                    report["failed"] += 1
                else:
                    clips = result.pop("clips")
                    embedder.add(row, clips)
                    report["done"] += 1
                    report["clips"] += len(clips)
                results[row] = result
                if progress:
                    progress(dict(report, event="video", video_id=by_row[row].video_id, error=result.get("error")))
            if current_block is not None:
                _finish_block(store, current_block, results, embedder, summary, manifest)
                report["written"] += len(results)
    summary.seconds = time.monotonic() - t_start
    if progress:
        progress(dict(report, event="end"))
    return summary


def _finish_block(store: FeatureStore, block: int, results: dict, embedder: BlockEmbedder, summary: ExtractSummary, manifest: Manifest) -> None:
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
        raise ScaleError(f"cannot write to {store.path}: {exc.strerror or exc}; free space or fix permissions, then rerun to continue") from exc
    for r, res in results.items():
        if "error" in res:
            summary.failed_now[manifest.videos[r].video_id] = res["error"]
        else:
            summary.done_now += 1

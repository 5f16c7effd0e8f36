"""Everything a probe run reads, loaded and checked once: stores, views on the device, the model,
the grids and the BatchNorm choice. Both protocols (standard and official) run on a ProbeContext.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, cast

import numpy as np
import torch

from ..errors import ScaleError
from ..files import file_sha256
from ..memory import gib, memory_budget
from ..model.config import ScaleConfig
from ..run_files import model_file
from ..runtime import import_what_runs_import_later, resolve_device
from ..store import FeatureStore
from ..store.attributes import StoreAttrs, check_model_fits_store
from . import data as D
from .fit import Progress
from .footprint import probe_step_bytes
from .grid import GridSpec, resolve_grids
from .options import ProbeOptions
from .rows import REGISTRY, ROW

if TYPE_CHECKING:
    from ..model import ScaleModel

EMBEDDED_ROWS = tuple(row.name for row in REGISTRY if row.model == "frozen")  # read the SET token / refined clips


@dataclass
class LoadedModel:
    """A trained SCALE model with what the result document records about it."""

    module: ScaleModel
    config: dict[str, Any]  # its ScaleConfig as a dict
    meta: dict[str, Any]  # what its training run recorded (store, train settings)
    info: dict[str, Any]  # path, file, fingerprint, config, trained_on_split


@dataclass
class ProbeContext:
    """The inputs of one probe run, on the device, after every compatibility check."""

    options: ProbeOptions
    rows: list[str]
    progress: Progress
    store: FeatureStore
    train_store: Optional[FeatureStore]
    device: torch.device
    labels: np.ndarray
    n_classes: int
    model: Optional[LoadedModel]
    transformer_config: Any  # ScaleConfig of the Transformer row (the model's, with --model)
    grids: dict[str, GridSpec]
    batchnorm: list[bool]  # the BatchNorm settings to try in front of clip heads
    eval_view: D.View
    train_view: D.View
    notes: list[str] = field(default_factory=list)

    def check_complete(self, split: int) -> None:
        """Refuse a split with videos still pending extraction (ScaleError with the counts), or with
        --allow-incomplete note how many are left out: no probe quietly works on a fraction."""
        for store, parts in ((self.store, ("train", "test")), (self.train_store, ("train",))):
            if store is None:  # no --train-store
                continue
            left_out = store.check_complete(split, parts, self.options.allow_incomplete)
            if left_out:
                self.notes.append(f"split {split}: {left_out} videos still pending in {store.path} are left out "
                                  "(--allow-incomplete)")

    def split_rows(self, split: int) -> tuple[np.ndarray, np.ndarray]:
        """(train, test) eval-store rows of `split`: extracted, labelled, and present in --train-store."""
        train = self.store.split_indices(split, "train")
        test = self.store.split_indices(split, "test")
        train, test = train[self.labels[train] >= 0], test[self.labels[test] >= 0]
        if self.train_store is not None:
            present = self.train_view.row_of[train] >= 0
            if not present.all():
                self.notes.append(f"split {split}: {int((~present).sum())} train videos are not (done) in "
                                  f"{self.train_store.path} and are left out of probe training")
            train = train[present]
        if len(train) == 0:
            raise ScaleError(f"split {split} of {self.store.path} has no extracted, labelled train videos"
                             + (f" present in {self.train_store.path}" if self.train_store is not None else ""))
        if len(test) == 0:
            raise ScaleError(f"split {split} of {self.store.path} has no extracted, labelled test videos")
        if np.intersect1d(train, test).size:
            raise ScaleError(f"split {split} of {self.store.path} lists a video as both train and test")
        return train, test


def build_context(store_path: str | Path, rows: list[str], options: ProbeOptions, model_path: Optional[str | Path],
                  train_store_path: Optional[str | Path], progress: Progress) -> ProbeContext:
    """Open and check the stores and the model, then load the views onto the device (once)."""
    store, train_store = _open_stores(store_path, train_store_path)
    device = resolve_device(options.device)
    _check_eval_view(store)
    labels = store.labels
    n_classes = _count_classes(store, labels)
    notes: list[str] = []
    model = _load_model(model_path, store, options.splits(), notes) if model_path is not None else None
    transformer_config = _transformer_config(model, options, store)
    grids = resolve_grids(options.grid_preset, options.grid, options.epochs)
    mae = D.is_mae_family(StoreAttrs.of(store))
    batchnorm = {"auto": [mae], "on": [True], "off": [False], "search": [True, False]}[options.batchnorm]
    wanted = _probed_rows(store, options.splits())
    ragged = _check_ragged_rows(rows, store, train_store)
    embed = model.module if model is not None and any(row in rows for row in EMBEDDED_ROWS) else None
    if all(ROW[row].reads == "video_means" for row in rows) or ragged:  # streamed, never every clip in memory
        _check_means_fit(options, rows, grids, store, train_store, wanted, embed, n_classes, transformer_config)
        eval_view = D.load_mean_view(store, device, wanted=wanted, model=embed)
        train_view = (D.load_mean_view(train_store, device, eval_store=store, wanted=wanted, model=embed)
                      if train_store is not None else eval_view)
        if ragged and any(ROW[row].method == "set_classifier" for row in rows):  # sets of K of each video's clips
            working = _working_bytes(rows, grids, len(wanted), transformer_config.set_size, store, n_classes,
                                     transformer_config)
            _check_ragged_sets(options, rows, store, train_store, wanted, transformer_config.pos_input, working)
            eval_view.clips = D.load_flat_clips(store, device, wanted=wanted)
            if train_view is not eval_view:
                train_view.clips = D.load_flat_clips(train_store, device, eval_store=store, wanted=wanted)
    else:
        working = _working_bytes(rows, grids, len(wanted), store.n_clips, store, n_classes, transformer_config)
        over = _memory_budget(options, rows, store, train_store, wanted, model if embed is not None else None, working)
        if over is not None:  # over the budget: the clips stay in the store, streamed a window at a time
            budget, source = over
            eval_view = D.load_streamed_view(store, device, budget, wanted=wanted, model=embed)
            train_view = (D.load_streamed_view(train_store, device, budget, eval_store=store, wanted=wanted, model=embed)
                          if train_store is not None else eval_view)
            notes.append(f"the probed clips are over the memory budget of {gib(budget)} ({source}): Linear, MLP and SCALE_linear "
                         f"read them from the store {cast(D.StoreClips, eval_view.features).window_videos} videos "
                         "at a time (batches shuffled within those windows, so numbers differ slightly from a run that "
                         "holds them)")
        else:
            eval_view = D.load_view(store, device, wanted=wanted)
            train_view = (D.load_view(train_store, device, eval_store=store, wanted=wanted) if train_store is not None
                          else eval_view)
            if embed is not None:
                D.embed_view(eval_view, embed)
                if train_view is not eval_view:
                    D.embed_view(train_view, embed)
    return ProbeContext(options=options, rows=rows, progress=progress, store=store, train_store=train_store,
                        device=device, labels=labels, n_classes=n_classes, model=model,
                        transformer_config=transformer_config, grids=grids, batchnorm=batchnorm,
                        eval_view=eval_view, train_view=train_view, notes=notes)


def _working_bytes(rows: list[str], grids: dict[str, GridSpec], n_videos: int, n_clips: int, store: FeatureStore,
                   n_classes: int, transformer_config: ScaleConfig) -> int:
    """The largest step's own memory (footprint.py), with what trained rows import part-way (an
    optimiser's torch._dynamo) imported first, so that `--max-memory` measures the process with it."""
    if any(ROW[row].trained for row in rows):
        import_what_runs_import_later()
    return probe_step_bytes(rows, grids, n_videos, n_clips, store.feature_dim, n_classes, transformer_config)


def _check_means_fit(options: ProbeOptions, rows: list[str], grids: dict[str, GridSpec], store: FeatureStore,
                     train_store: Optional[FeatureStore], wanted: np.ndarray, embed: Any, n_classes: int,
                     transformer_config: ScaleConfig) -> None:
    """Under `--max-memory`: the vectors per video the k-NN rows (and, on a ragged store, the clip
    heads) hold, float32, twice (the search index copies them), checked before reading any."""
    if not options.max_memory:
        return
    hidden = 2 * int(embed.config.hidden) if embed is not None else 0  # the SET token and the mean refined clip
    need = (1 + (train_store is not None)) * len(wanted) * 2 * 4 * (store.feature_dim + hidden)
    clips = 1 if any(ROW[row].trained for row in rows) else store.n_clips  # trained heads see a vector per video
    working = _working_bytes(rows, grids, len(wanted), clips, store, n_classes, transformer_config)
    budget, source = memory_budget(options.max_memory, working=working)
    if need > budget:
        raise ScaleError(f"the probes would hold {gib(need)} of per-video vectors ({len(wanted)} videos), over the "
                         f"memory budget of {gib(budget)} ({source}): probe one split or set a larger --max-memory")


# rows that can read their clips from the store a window at a time (a view over the memory budget):
# every row but the set classifiers, which draw whole videos in random batches
STREAMED_ROWS = tuple(row.name for row in REGISTRY if row.method != "set_classifier")


def _memory_budget(options: ProbeOptions, rows: list[str], store: FeatureStore, train_store: Optional[FeatureStore],
                   wanted: np.ndarray, model: Optional[LoadedModel], working: int) -> Optional[tuple[int, str]]:
    """None where the probed clips (float16 features, float32 coords, and with a model the refined
    clips) fit the memory budget (less `working`, the largest step's own memory) and are held; the
    budget and where it came from where they do not and every row can stream them; a ScaleError,
    before reading any, where a row cannot (rather than be killed by the system part-way)."""
    per_clip = store.clip_bytes(("features", "coords", "flip"))  # what a loaded view holds
    if model is not None:
        per_clip += 2 * int(model.config.get("hidden", store.feature_dim))  # the refined clips, float16
    views = [store] + ([train_store] if train_store is not None else [])
    need = sum(len(wanted) * view.n_clips * per_clip for view in views)
    budget, source = memory_budget(options.max_memory, working=working)
    if need <= budget:
        return None
    held = [row for row in rows if row not in STREAMED_ROWS
            or (row == "scale_linear" and options.scale_clip_feature != "backbone")]
    if held:
        raise ScaleError(f"the probes would hold {gib(need)} of clips ({len(wanted)} videos x {store.n_clips} clips x "
                         f"{store.feature_dim} dims), over the memory budget of {gib(budget)} ({source}); "
                         f"{', '.join(held)} cannot stream them (the other rows can): drop those rows, probe one split, "
                         "or set a larger --max-memory")
    return budget, source


# rows a store of videos of any length is probed with: the k-NN and clip-head rows read a vector per video
# (the mean over all its valid clips, and with a model the SET token and mean refined clip over interleaved
# K-clip sets of them, model/long_sets.py); the set classifiers read sets of K clips (set_inputs.py)
RAGGED_ROWS = tuple(row.name for row in REGISTRY if row.ragged)


def _check_ragged_sets(options: ProbeOptions, rows: list[str], store: FeatureStore, train_store: Optional[FeatureStore],
                       wanted: np.ndarray, pos_input: str, working: int) -> None:
    """Set classifiers on videos of any length hold every probed clip (unpadded) and read the stored
    Eq. 5 coordinates: refused before reading where either cannot be."""
    sets = ", ".join(row for row in rows if ROW[row].method == "set_classifier")
    if options.protocol != "standard":  # the official code trains them on a fixed number of clips per video
        raise ScaleError(f"{store.path} has videos of any length: --protocol {options.protocol} cannot run {sets} on "
                         "it; use the standard protocol, which trains them on sets of K clips")
    if pos_input != "eq5":
        raise ScaleError(f"{store.path} has videos of any length: {sets} need a model with the Eq. 5 positions "
                         f"(pos_input eq5), not {pos_input}")
    views = [store] + ([train_store] if train_store is not None else [])
    need = sum(D.FlatClips.nbytes(view, D.view_rows(view, None if view is store else store, wanted)[0]) for view in views)
    budget, source = memory_budget(options.max_memory, working=working)
    if need > budget:
        raise ScaleError(f"{sets} would hold {gib(need)} of clips, over the memory budget of {gib(budget)} ({source}): "
                         "drop those rows, probe one split, or set a larger --max-memory")


def _check_ragged_rows(rows: list[str], store: FeatureStore, train_store: Optional[FeatureStore]) -> bool:
    """Whether a store has videos of any length (store/ragged.py); then only the per-video rows."""
    ragged = [s for s in (store, train_store) if s is not None and getattr(s, "clip_counts", None) is not None]
    if ragged:
        other = [row for row in rows if row not in RAGGED_ROWS]
        if other:
            raise ScaleError(f"{ragged[0].path} has videos of any length: probe it with {', '.join(RAGGED_ROWS)} "
                             f"(over all clips of each video), not {', '.join(other)}")
    return bool(ragged)


def _probed_rows(store: FeatureStore, splits: list[int]) -> np.ndarray:
    """The eval-store rows any probe of these splits reads: their done train and test videos."""
    rows = [store.split_indices(split, part) for split in splits for part in ("train", "test")]
    return np.unique(np.concatenate(rows)) if rows else np.zeros(0, np.int64)


def _open_stores(store_path: str | Path, train_store_path: Optional[str | Path]
                 ) -> tuple[FeatureStore, Optional[FeatureStore]]:
    """The eval store and, when given, the train store, checked to be of the same backbone and classes."""
    store = FeatureStore.open(store_path)
    train_store = FeatureStore.open(train_store_path) if train_store_path else None
    if train_store is not None:
        D.check_compatible(store, train_store)
    return store, train_store


def _check_eval_view(store: FeatureStore) -> None:
    """Probes test on the eval15 clips; a train16 store belongs to --train-store."""
    if StoreAttrs.of(store).view_name == "train16":
        raise ScaleError(f"--store {store.path} holds the train16 view (SSL training clips); probes evaluate on "
                         "the eval15 (5x3) clips: pass an eval15 store as --store (this one may go to --train-store)")


def _count_classes(store: FeatureStore, labels: np.ndarray) -> int:
    """The number of classes (named or labelled); at least two."""
    n_classes = max(len(store.class_names), int(labels.max()) + 1 if len(labels) else 0)
    if n_classes < 2:
        raise ScaleError(f"{store.path} has fewer than two classes; probes need labelled videos")
    return n_classes


def _load_model(model_path: str | Path, store: FeatureStore, splits: list[int], notes: list[str]) -> LoadedModel:
    """The SCALE model of a run directory, checked against the store; a note for each split whose test
    videos its SSL training saw."""
    from ..model import load_model

    module, run_config = load_model(model_path)
    model_config, meta = run_config["model"], run_config.get("meta", {}) or {}
    check_model_fits_store(Path(model_path), int(model_config.get("input_dim", -1)), StoreAttrs.of(meta.get("store")), store)
    file = model_file(model_path)
    store_meta = meta.get("store")
    trained_on = store_meta if isinstance(store_meta, dict) else {}  # the run's copy of the store attrs
    trained_split = trained_on.get("split")
    info = {"path": str(model_path), "file": str(file), "fingerprint": file_sha256(file, n_hex=16),
            "config": model_config, "trained_on_split": trained_split}
    for split in splits:
        if trained_split is not None and int(trained_split) != split:
            notes.append(f"the SCALE model was trained on the train videos of split {trained_split}; "
                         f"on split {split} some test videos were seen (unlabelled) during its SSL training")
    return LoadedModel(module=module, config=model_config, meta=meta, info=info)


def _transformer_config(model: Optional[LoadedModel], options: ProbeOptions, store: FeatureStore):
    """The Transformer row's architecture: the model's (with --model), else the store's input dim,
    then the [transformer_model] overrides."""
    base = model.config if model is not None else {"input_dim": store.feature_dim}
    config = ScaleConfig.from_dict({**base, **options.transformer_model})
    if config.input_dim != store.feature_dim:
        raise ScaleError(f"transformer input_dim {config.input_dim} != store feature dim {store.feature_dim}")
    return config

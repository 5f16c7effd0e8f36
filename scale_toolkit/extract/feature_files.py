"""`scale import DIR|LIST.csv --out STORE`: per-video feature files made elsewhere -> a ragged store.

The input is what video feature extractors write: one array [T, D] per video (T rows, one per
clip or per second, T varying with the video), as `.npy`, `.npz` (member `--key`, or its only
member) or `.h5`/`.hdf5` (dataset `--dataset`, or its only dataset). Videos are listed by

* a folder: `DIR/<class>/.../<video>.npy`, the class being the first sub-folder (as `--dataset
  folder` reads videos; files directly under DIR have no label), no split membership;
* a CSV with a header `path,label[,split]` (as `--dataset csv` reads videos; paths relative to
  the CSV's folder).

Each row becomes a clip with Eq. 5 coordinates [0, 0, t0/T, 1, 1, t1/T]: the full frame, no flip,
and a time span. By default row i spans [i, i+1) of the video's T rows (so t = i/T .. (i+1)/T,
what `eval15` coords mean for evenly spaced windows); with `RowTiming(length, stride, unit)` row i
spans [i*stride, i*stride + length) and the video lasts (T-1)*stride + length (clamped to [0, 1]).
`boxes` hold the span in frames when the unit is frames or rows, zeros for seconds (the source
frame numbers are unknown then). With `times_key`, each .npz/.h5 file's own array of that name
gives the rows' times in `unit`: [T] start times (a row ends where the next starts; the last lasts
as long as the one before it) or [T, 2] (start, end), e.g. video_features' `timestamps_ms` with
unit `ms`; a file without it, or with times that are not finite, negative, decreasing or of the
wrong length, fails like a bad feature file.

Every file is hostile input: it must be a 2-D floating-point array with 1..max_rows rows, at most
MAX_VALUES values (a compressed .npz member may declare any shape), D columns like the other files
(the most common D wins; the others fail), finite values within the float16 range. A file that
fails is recorded as a failed video with its reason, as extraction records a broken video, and
the import goes on.

Memory is bounded by one file: headers are read first (shapes only: `.npy` through a memory map),
then each file is read, checked and written by itself. The store is made hidden beside --out and
renamed in empty (every video pending), then filled block by block, status last: a killed import
leaves whole blocks pending and the same command continues where it stopped.
"""
from __future__ import annotations

import os
import shutil
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Literal

import numpy as np

from ..errors import ScaleError
from ..ownership import check_replaceable, exclusive_store_lock
from ..store.feature_store import FeatureStore
from ..store.import_source import Member, open_source
from ..store.layout import DEFAULT_ROWS_PER_CHUNK, PENDING
from ..store.ragged import RaggedStore

FEATURE_EXTENSIONS = (".npy", ".npz", ".h5", ".hdf5")
UNITS = ("rows", "frames", "seconds", "ms")
MAX_ROWS = 1_000_000  # rows of one file (a 1-clip-per-second video of 11 days)
MAX_DIM = 65_536
MAX_VALUES = 1 << 30  # T x D of one file (2 GiB as float16): a compressed member may declare any shape
_FLOAT16_MAX = 65504.0
_PIECE_ROWS = 65_536  # rows converted per step within one file
IMPORT_ATTR = "imported_from"


@dataclass(frozen=True)
class RowTiming:
    """Where row i of a file lies in time: [i*stride, i*stride + length) in `unit`."""

    length: float = 1.0
    stride: float = 1.0
    unit: str = "rows"
    times_key: str | None = None  # each file's array of per-row times (then length and stride are unused)

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ScaleError(f"--time-unit must be one of {', '.join(UNITS)}, got {self.unit!r}")
        if not (np.isfinite(self.length) and np.isfinite(self.stride)) or self.length <= 0 or self.stride <= 0:
            raise ScaleError(f"--clip-length and --clip-stride must be positive, got {self.length} and {self.stride}")

    def spans(self, rows: int) -> np.ndarray:
        """float64 [rows, 2]: each row's start and end in `unit`."""
        start = np.arange(rows, dtype=np.float64) * self.stride
        return np.stack([start, start + self.length], axis=1)

    def duration(self, rows: int, spans: np.ndarray | None = None) -> float:
        """How long the video lasts: where its last row ends (`spans` from the file where it gave them)."""
        return (rows - 1) * self.stride + self.length if spans is None else float(spans[:, 1].max())

    def clips(self, rows: int, spans: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(coords float32 [rows, 6] as Eq. 5, boxes int32 [rows, 6]) of a video of `rows` rows, its
        rows spanning `spans` [rows, 2] where the file gave them (the video then ends where its last
        row does), else as the length and stride say.

        >>> c, b = RowTiming().clips(4)
        >>> c[1].tolist(), b[1].tolist()
        ([0.0, 0.0, 0.25, 1.0, 1.0, 0.5], [0, 0, 1, 0, 0, 2])
        """
        duration = self.duration(rows, spans)
        spans = self.spans(rows) if spans is None else spans
        t = np.clip(spans / duration, 0.0, 1.0)
        coords = np.zeros((rows, 6), np.float32)
        coords[:, 2], coords[:, 3], coords[:, 4], coords[:, 5] = t[:, 0], 1.0, 1.0, t[:, 1]
        boxes = np.zeros((rows, 6), np.int32)
        if self.unit in ("rows", "frames"):
            boxes[:, 2], boxes[:, 5] = np.floor(spans[:, 0]), np.ceil(spans[:, 1])
        return coords, boxes


def file_spans(raw: np.ndarray, rows: int) -> np.ndarray | str:
    """float64 [rows, 2] (start, end) from a file's per-row times, or why they cannot place the rows.

    >>> file_spans(np.array([0, 40, 80]), 3).tolist()
    [[0.0, 40.0], [40.0, 80.0], [80.0, 120.0]]
    >>> file_spans(np.array([0, 80, 40]), 3)
    'per-row times must not decrease'
    """
    if raw.dtype.kind not in "fiu":
        return f"per-row times must be numbers, got {raw.dtype}"
    t = raw.astype(np.float64)
    if t.ndim == 1 and len(t) == rows:
        last = t[-1] - t[-2] if rows > 1 else 1.0  # the last row lasts as long as the one before it
        starts, ends = t, np.append(t[1:], t[-1] + last)
    elif t.ndim == 2 and t.shape == (rows, 2):
        starts, ends = t[:, 0], t[:, 1]
    else:
        return f"per-row times must have shape [{rows}] or [{rows}, 2] for {rows} rows, got {list(raw.shape)}"
    if not (np.isfinite(starts).all() and np.isfinite(ends).all()):
        return "per-row times must be finite"
    if (starts < 0).any():
        return "per-row times must not be negative"
    if (np.diff(starts) < 0).any():
        return "per-row times must not decrease"
    if (ends <= starts).any():
        return f"every row must end after it starts (row {int(np.flatnonzero(ends <= starts)[0])} does not)"
    return np.stack([starts, ends], axis=1)


@dataclass(frozen=True)
class FeatureFile:
    video_id: str
    path: Path
    label: int
    class_name: str
    split: int  # membership in split 1 (1 train, 2 test, 0 unused)


@dataclass
class ImportSummary:
    store: Path
    videos: int
    imported: int  # done
    failed: int
    resumed: bool
    missing: list[str]  # listed by the CSV but not on disk (not in the store)
    clips: dict


def is_feature_listing(source: Path) -> bool:
    """Whether `scale import` reads `source` as per-video feature files (a folder or a CSV)."""
    return Path(source).is_dir() or Path(source).suffix.lower() == ".csv"


# ---------------------------------------------------------------------- listing
def list_feature_files(source: Path) -> tuple[list[FeatureFile], list[str], list[str]]:
    """(files sorted by id, class names, ids the CSV lists that are missing on disk)."""
    source = Path(source)
    if source.suffix.lower() == ".csv":
        from ..data.manifest import load_manifest

        manifest = load_manifest("csv", source.parent, csv_path=source)
        files = [FeatureFile(v.video_id, v.path, v.label, v.class_name, v.splits[0]) for v in manifest.videos]
        return files, manifest.class_names, manifest.missing
    if not source.is_dir():
        raise ScaleError(f"{source} is neither a folder of feature files nor a .csv listing them")
    found = []
    for dirpath, dirnames, filenames in os.walk(source, followlinks=False):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(source)
        found += [(rel_dir / f).as_posix() for f in filenames if f.lower().endswith(FEATURE_EXTENSIONS)]
    if not found:
        raise ScaleError(f"no feature files ({' '.join(FEATURE_EXTENSIONS)}) under {source}")
    found.sort()
    classes = sorted({rel.split("/")[0] for rel in found if "/" in rel})
    label_of = {c: i for i, c in enumerate(classes)}
    files = []
    for rel in found:
        cls = rel.split("/")[0] if "/" in rel else ""
        files.append(FeatureFile(rel, Path(os.path.abspath(source)) / rel, label_of.get(cls, -1), cls, 0))
    return files, classes, []


# ---------------------------------------------------------------------- one file
class _NpyMember(Member):
    """An .npy file through a read-only memory map: its header now, its rows when asked."""

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as f:
            if f.read(6) != b"\x93NUMPY":
                raise ScaleError("is not an .npy file (no NUMPY header)")
        try:
            self.array = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:  # noqa: BLE001  truncated, not an .npy, object arrays: numpy raises many types
            raise ScaleError(f"cannot be read as .npy ({type(exc).__name__}: {str(exc)[:120]})") from None
        self.shape, self.dtype = tuple(self.array.shape), self.array.dtype

    def rows(self, start: int, stop: int) -> np.ndarray:
        return np.asarray(self.array[start:stop])


class _Opened:
    """An opened feature file (context manager): `.member` is its array."""

    def __init__(self, path: Path, key: str | None, dataset: str | None, besides: str | None = None) -> None:
        self.source = None
        suffix = path.suffix.lower()
        if suffix == ".npy":
            self.member: Member = _NpyMember(path)
            return
        fmt, name, flag = ("npz", key, "--key") if suffix == ".npz" else ("h5", dataset, "--dataset")
        try:
            self.source = open_source(path, fmt)
        except ScaleError as exc:
            raise ScaleError(_short(exc, path)) from None
        names = sorted(self.source.names - {besides})  # the features: the one array besides the per-row times
        if name is None:
            if len(names) != 1:
                self.close()
                raise ScaleError(f"holds {len(names)} arrays ({', '.join(names[:5])}): pass {flag} NAME")
            name = names[0]
        if name not in self.source.names:
            self.close()
            raise ScaleError(f"has no array '{name}' (it holds {', '.join(names[:5]) or 'none'})")
        try:
            self.member = self.source.member(name)
        except ScaleError as exc:
            self.close()
            raise ScaleError(_short(exc, path)) from None

    def close(self) -> None:
        if self.source is not None:
            self.source.close()
            self.source = None

    def __enter__(self) -> "_Opened":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _short(exc: BaseException, path: Path) -> str:
    """A reason without the file's path in front (the video id says which file)."""
    text = str(exc)
    return text[len(str(path)) + 2:] if text.startswith(f"{path}: ") else text


def _header(file: FeatureFile, key: str | None, dataset: str | None, max_rows: int,
            times_key: str | None = None) -> tuple[int, int] | str:
    """(rows, dim) from the file's header, or why it cannot be imported."""
    try:
        if not file.path.is_file():
            return "not a regular file"
        with _Opened(file.path, key, dataset, times_key) as opened:
            shape, dtype = opened.member.shape, opened.member.dtype
    except ScaleError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001  hostile bytes: whatever a reader raises is this file's failure
        return f"cannot be read ({type(exc).__name__})"
    if len(shape) != 2:
        return f"must be a 2-D array [T, D], got shape {list(shape)}"
    if dtype.kind != "f":
        return f"features must be floating point, got {dtype}"
    rows, dim = int(shape[0]), int(shape[1])
    if not 1 <= rows <= max_rows:
        return f"has {rows} rows; 1 to {max_rows} allowed"
    if not 1 <= dim <= MAX_DIM:
        return f"has feature dim {dim}; 1 to {MAX_DIM} allowed"
    if rows * dim > MAX_VALUES:
        return f"holds {rows} x {dim} values; at most {MAX_VALUES} per file"
    return rows, dim


def _read_video(file: FeatureFile, key: str | None, dataset: str | None, rows: int, dim: int,
                timing: RowTiming) -> dict:
    """One video's clip arrays (features as float16), or {"error": why}; reads the file in pieces."""
    try:
        with _Opened(file.path, key, dataset, timing.times_key) as opened:
            member = opened.member
            if tuple(member.shape) != (rows, dim):
                return {"error": f"changed while importing: shape {list(member.shape)}, was [{rows}, {dim}]"}
            spans = _times_of(opened, timing.times_key, rows) if timing.times_key else None
            if isinstance(spans, str):
                return {"error": spans}
            features = np.empty((rows, dim), np.float16)
            for start in range(0, rows, _PIECE_ROWS):
                piece = np.asarray(member.rows(start, min(start + _PIECE_ROWS, rows)))
                if not np.isfinite(piece).all():
                    bad = start + int(np.flatnonzero(~np.isfinite(piece).all(axis=1))[0])
                    return {"error": f"non-finite values (NaN or inf) in row {bad}"}
                if piece.size and float(np.abs(piece).max()) > _FLOAT16_MAX:
                    return {"error": f"values beyond the float16 range (|x| > {_FLOAT16_MAX:g}) near row {start}"}
                features[start:start + len(piece)] = piece
            member.finish()
    except ScaleError as exc:
        return {"error": _short(exc, file.path)}
    except Exception as exc:  # noqa: BLE001  hostile bytes
        return {"error": f"cannot be read ({type(exc).__name__})"}
    coords, boxes = timing.clips(rows, spans)
    frames = timing.duration(rows, spans) if timing.unit in ("rows", "frames") else 0.0
    return {"features": features, "coords": coords, "boxes": boxes,
            "video_meta": np.array([0, 0, frames, 0], np.float32)}


def _times_of(opened: _Opened, key: str, rows: int) -> np.ndarray | str:
    """The rows' spans from the file's array `key`, or why not."""
    if opened.source is None:
        return f"has no per-row times: an .npy file holds one array (--times-key {key} reads .npz or .h5 files)"
    if key not in opened.source.names:
        return f"has no per-row times array '{key}'"
    member = opened.source.member(key)
    if len(member.shape) not in (1, 2) or member.shape[0] != rows or member.shape[1:] not in ((), (2,)):
        return f"per-row times must have shape [{rows}] or [{rows}, 2] for {rows} rows, got {list(member.shape)}"
    return file_spans(np.asarray(member.read()), rows)


# ---------------------------------------------------------------------- the import
def import_feature_files(source: str | Path, out: str | Path, *, key: str | None = None, dataset: str | None = None,
                         timing: RowTiming = RowTiming(), max_rows: int = MAX_ROWS, overwrite: bool = False,
                         rows_per_chunk: int = DEFAULT_ROWS_PER_CHUNK,
                         progress: Callable[[int, int], None] | None = None) -> ImportSummary:
    """Import (or continue importing) the feature files of `source` into the ragged store `out`."""
    source, out = Path(source), Path(out)
    if not source.exists():
        raise ScaleError(f"not found: {source}")
    files, classes, missing = list_feature_files(source)
    record = {"source": os.path.abspath(source), "key": key, "dataset": dataset, "timing": asdict(timing),
              "max_rows": max_rows}
    store, resumed = _open_or_start(out, files, classes, record, key, dataset, max_rows, overwrite, rows_per_chunk)
    pending_blocks = sorted({row // store.rows_per_chunk for row in np.flatnonzero(store.status == PENDING).tolist()})
    counts = store.clip_counts
    for i, block in enumerate(pending_blocks):
        store.write_video_block(block, _block_videos(store, block, files, counts, key, dataset, max_rows, timing))
        if progress is not None:
            progress(i + 1, len(pending_blocks))
    store = _ragged(out, "r")
    status = store.status
    return ImportSummary(out, store.n_videos, int((status == 1).sum()), int((status == 2).sum()), resumed, missing,
                         store.clips_summary())


def _block_videos(store, block: int, files: list[FeatureFile], counts: np.ndarray, key, dataset, max_rows,
                  timing: RowTiming) -> Iterator[tuple[int, dict]]:
    dims = store.feature_dim
    for row in store.block_rows(block):
        file, n = files[row], int(counts[row])
        head = _header(file, key, dataset, max_rows, timing.times_key)
        if isinstance(head, str):
            yield row, {"error": head}
        elif head[1] != dims:
            yield row, {"error": f"has feature dim {head[1]}, the other files {dims}"}
        elif head[0] != n:
            yield row, {"error": f"changed while importing: {head[0]} rows, was {n}"}
        else:
            yield row, _read_video(file, key, dataset, n, dims, timing)


def _open_or_start(out: Path, files: list[FeatureFile], classes: list[str], record: dict, key, dataset,
                   max_rows: int, overwrite: bool, rows_per_chunk: int) -> tuple[RaggedStore, bool]:
    """The store to fill: the one at `out` when it is this same import left unfinished, else a new one."""
    if out.exists() and not overwrite:
        try:
            store = _ragged(out, "r+")
        except ScaleError:
            raise ScaleError(f"{out} already exists and is not a store of imported feature files; choose another --out") from None
        if store.attrs.get(IMPORT_ATTR) != record or store.video_ids != [f.video_id for f in files]:
            raise ScaleError(f"{out} already exists and holds another import (other files or options); choose "
                             "another --out, or pass --overwrite to replace it")
        return store, True
    if out.exists() or out.is_symlink():
        check_replaceable(out, "store")
    if not out.parent.is_dir():
        raise ScaleError(f"output directory does not exist: {out.parent}; create it or choose another --out")
    heads = [_header(f, key, dataset, max_rows, record["timing"]["times_key"]) for f in files]  # shapes only: the clip counts
    dims = Counter(h[1] for h in heads if not isinstance(h, str))
    if not dims:
        first = next((f"{f.video_id}: {h}" for f, h in zip(files, heads)), "")
        raise ScaleError(f"none of the {len(files)} feature files can be imported (e.g. {first})")
    dim = max(dims, key=lambda d: (dims[d], -d))
    counts = [h[0] if not isinstance(h, str) and h[1] == dim else 0 for h in heads]
    splits = np.zeros((3, len(files)), np.int8)
    splits[0] = [f.split for f in files]
    tmp = out.with_name(f".{out.name}.importing-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        FeatureStore.create(tmp, video_ids=[f.video_id for f in files], labels=[f.label for f in files],
                            splits=splits, class_names=classes, n_clips=0, feature_dim=dim, clip_counts=counts,
                            rows_per_chunk=rows_per_chunk,
                            attrs={IMPORT_ATTR: record, "dataset": "imported features",
                                   "view": {"name": "imported", "clips": "per video"}})
        if out.exists():
            with exclusive_store_lock(out):
                shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _ragged(out, "r+"), False


def _ragged(path: Path, mode: Literal["r", "r+"]) -> RaggedStore:
    """The ragged store at `path` (a ScaleError when it is not one)."""
    store = FeatureStore.open(path, mode=mode)
    if not isinstance(store, RaggedStore):
        raise ScaleError(f"{path} is a store of fixed clip counts, not one of imported feature files")
    return store

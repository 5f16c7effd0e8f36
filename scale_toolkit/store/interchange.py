"""Import features made elsewhere (.npz / .h5) into a FeatureStore, and export a store back.

Both formats use the store's array names:

    required  features [N, V, D] (any float), coords [N, V, 6], labels [N] (int, -1 = unknown),
              video_ids [N] (text), class_names [C] (text), splits [3, N] (0 unused, 1 train, 2 test)
    optional  boxes [N, V, 6] int (default zeros), flip [N, V] bool (default False),
              status [N] int (0 pending, 1 done, 2 failed; default all done), reasons [N] text (why a
              failed row failed), video_meta [N, 4] float (source height, width, frames, fps; default
              zeros), attrs (a JSON string of store attributes)

An imported file is hostile input (store/import_source.py reads it): every value is checked
exactly in the file's own dtype before it is converted, so nothing wraps (a uint64 label 2**32+1
is refused, not read as 1); integers must be integers, flags booleans (or the integers 0/1), text
text - bytes are decoded strictly as UTF-8, never shown as "b'...'". The file is converted block by
block (about 64 MiB of features at a time) into a hidden store that is renamed in at the end, so
memory stays near one block whatever the file's size, and a refused file leaves nothing behind.
"""
from __future__ import annotations

import json
import os
import shutil
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from ..contracts.export import REQUIRED
from ..errors import ScaleError
from ..ownership import check_replaceable, exclusive_store_lock
from .feature_store import DONE, FAILED, FeatureStore
from .import_source import Member, Source, open_source
from .layout import DEFAULT_ROWS_PER_CHUNK
from .names import escape_id, needs_escape, unescape_id

OPTIONAL = ("boxes", "flip", "status", "reasons", "video_meta", "attrs")
FORMATS = (".npz", ".h5", ".hdf5")
# attributes the new store writes itself: an imported file's are dropped
_STORE_OWN_ATTRS = ("schema_version", "toolkit_version", "class_names", "rows_per_chunk", "escaped_class_names",
                    "escaped_video_ids", "checksums", "integrity")
_BLOCK_BYTES = 64 << 20  # features converted per step (rounded to whole store blocks)
_INT32 = (-(2**31), 2**31 - 1)
_MAX_TEXT_BYTES = 64 << 10  # one id, class name or reason (a path is at most 4096 bytes)
_MAX_CLASSES = 1_000_000


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ScaleError(f"{path}: unsupported format '{suffix}'; use .npz or .h5 (a store's export), or a folder "
                         "or .csv of per-video feature files")
    return "npz" if suffix == ".npz" else "h5"


# ---------------------------------------------------------------------- value checks
def _integers(arr: np.ndarray, source: str, name: str, lo: int, hi: int, what: str | None = None) -> np.ndarray:
    """`arr` as int64 after checking, in its own dtype, that it holds integers within [lo, hi]."""
    if arr.dtype.kind not in "iu":
        raise ScaleError(f"{source}: {name} must be integers, got {arr.dtype}")
    if arr.size:
        low, high = int(arr.min()), int(arr.max())  # exact Python ints: a uint64 2**32+1 stays 2**32+1
        if low < lo or high > hi:
            raise ScaleError(f"{source}: {what or f'{name} must be in [{lo}, {hi}]'}, got [{low}, {high}]")
    return arr.astype(np.int64)


def _floats(arr: np.ndarray, source: str, name: str) -> np.ndarray:
    """Real numbers (floats, or integers) as float64; booleans, complex numbers and text are refused."""
    if arr.dtype.kind not in "fiu":
        raise ScaleError(f"{source}: {name} must be real numbers, got {arr.dtype}")
    return arr.astype(np.float64)


def _booleans(arr: np.ndarray, source: str, name: str) -> np.ndarray:
    """Booleans, or the integers 0 and 1 (HDF5 writers without a bool type); never text ("no" is not True)."""
    if arr.dtype.kind == "b":
        return arr.astype(bool)
    if arr.dtype.kind in "iu":
        return _integers(arr, source, name, 0, 1, f"{name} must be booleans (or 0/1)").astype(bool)
    raise ScaleError(f"{source}: {name} must be booleans, got {arr.dtype}")


def _texts(arr: np.ndarray, source: str, name: str) -> list[str]:
    """Strings of a 1-d text array; bytes (numpy 'S', HDF5 byte strings) decoded strictly as UTF-8."""
    if arr.ndim != 1:
        raise ScaleError(f"{source}: {name} must be a 1-d array of text, got shape {list(arr.shape)}")
    if arr.dtype.kind not in "USO":
        raise ScaleError(f"{source}: {name} must be text (strings), got {arr.dtype}")
    out = []
    for row, value in enumerate(arr.tolist()):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ScaleError(f"{source}: {name}[{row}] is not UTF-8 text (byte 0x{value[exc.start]:02x} at "
                                 f"{exc.start}); store it as UTF-8 strings") from None
        if not isinstance(value, str):
            raise ScaleError(f"{source}: {name}[{row}] must be text, got {type(value).__name__}")
        out.append(value)
    return out


def _bounded(member: Member, source: str) -> Member:
    """A text member whose entries are each at most _MAX_TEXT_BYTES: its header is trusted for nothing
    else, and a compressed member may announce gigabytes it never holds (a zip bomb)."""
    if member.dtype.kind in "US" and member.dtype.itemsize > _MAX_TEXT_BYTES:
        raise ScaleError(f"{source}: {member.name} holds texts of {member.dtype.itemsize:,} bytes each; "
                         f"ids, names and reasons are at most {_MAX_TEXT_BYTES:,} bytes")
    return member


def _shape(member: Member, source: str, shape: tuple) -> Member:
    if member.shape != shape:
        raise ScaleError(f"{source}: {member.name} must have shape {list(shape)}, got {list(member.shape)}")
    return member


def _parsed_attrs(raw: object, source: str) -> dict:
    """The optional `attrs` JSON object ({} when absent)."""
    if raw is None:
        return {}
    arr = np.asarray(raw)
    if arr.dtype.kind not in "USO" or arr.size != 1:
        raise ScaleError(f"{source}: the attribute 'attrs' must be a JSON string, got "
                         f"{type(raw).__name__ if not isinstance(raw, np.ndarray) else arr.dtype}")
    text = _texts(arr.reshape(1), source, "attrs")[0]
    try:
        attrs = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ScaleError(f"{source}: attrs must be a JSON string ({type(exc).__name__})") from None
    if not isinstance(attrs, dict):
        raise ScaleError(f"{source}: attrs must be a JSON object, got {type(attrs).__name__}")
    return attrs


def _unescaped(values: list[str], attrs: dict, name: str, source: str) -> list[str]:
    """`values` with the rows listed in attrs["escaped_<name>"] unescaped (store/names.py)."""
    rows = attrs.get(f"escaped_{name}", [])
    if not isinstance(rows, list) or not all(isinstance(r, int) and not isinstance(r, bool) and 0 <= r < len(values)
                                             for r in rows):
        raise ScaleError(f"{source}: attrs.escaped_{name} must list row numbers of {name} (0..{len(values) - 1})")
    for row in rows:
        values[row] = unescape_id(values[row])
    return values


# ---------------------------------------------------------------------- the per-video arrays
def _small_arrays(src: Source, source: str, n: int, v: int) -> dict:
    """Everything but the per-clip arrays, read whole (N entries each) and checked."""
    def member(name: str, shape: tuple) -> np.ndarray:
        return _bounded(_shape(src.member(name), source, shape), source).read()

    attrs = _parsed_attrs(src.attrs_text(), source)
    cn = _bounded(src.member("class_names"), source)
    if len(cn.shape) != 1 or cn.shape[0] > _MAX_CLASSES:
        raise ScaleError(f"{source}: class_names must be a 1-d array of at most {_MAX_CLASSES:,} texts, "
                         f"got shape {list(cn.shape)}")
    class_names = _unescaped(_texts(cn.read(), source, "class_names"), attrs, "class_names", source)
    c = len(class_names)
    labels = _integers(member("labels", (n,)), source, "labels", -1, c - 1,
                       f"labels must be in [-1, {c - 1}] for {c} class names").astype(np.int32)
    splits = _integers(member("splits", (3, n)), source, "splits", 0, 2,
                       "splits values must be 0 (unused), 1 (train) or 2 (test)").astype(np.int8)
    video_ids = _unescaped(_texts(member("video_ids", (n,)), source, "video_ids"), attrs, "video_ids", source)
    if len(set(video_ids)) != n:
        raise ScaleError(f"{source}: video_ids must be unique")
    if "" in video_ids:
        raise ScaleError(f"{source}: video_ids[{video_ids.index('')}] is empty; every video needs an id")
    status = (_integers(member("status", (n,)), source, "status", 0, 2,
                        "status values must be 0 (pending), 1 (done) or 2 (failed)").astype(np.uint8)
              if "status" in src.names else np.full(n, DONE, np.uint8))
    reasons = _texts(member("reasons", (n,)), source, "reasons") if "reasons" in src.names else [""] * n
    return {"attrs": attrs, "class_names": class_names, "labels": labels, "splits": splits, "video_ids": video_ids,
            "status": status, "reasons": reasons}


def _features_member(src: Source, source: str) -> Member:
    feats = src.member("features")
    if len(feats.shape) != 3 or feats.dtype.kind != "f":
        raise ScaleError(f"{source}: features must be a float array [N, V, D], got {feats.dtype} {list(feats.shape)}")
    if 0 in feats.shape:
        raise ScaleError(f"{source}: features is empty {list(feats.shape)}: need N videos x V clips x D dims, each >= 1")
    return feats


def _clip_members(src: Source, source: str, n: int, v: int) -> dict[str, Member]:
    """The per-clip arrays besides features, their shapes checked (their values are checked per block)."""
    shapes = {"coords": (n, v, 6), "boxes": (n, v, 6), "flip": (n, v), "video_meta": (n, 4)}
    return {name: _shape(src.member(name), source, shape) for name, shape in shapes.items() if name in src.names}


class _BlockChecks:
    """The per-clip arrays of one block of rows, checked; features' damage is counted over the whole file."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.bad_videos = 0

    def features(self, feats: np.ndarray) -> np.ndarray:
        finite = np.isfinite(feats).all(axis=(1, 2))
        self.bad_videos += int((~finite).sum())
        if self.bad_videos:
            return feats
        if np.abs(feats).max() > np.finfo(np.float16).max:
            raise ScaleError(f"{self.source}: features exceed the float16 range of the store (max |x| 65504)")
        return feats.astype(np.float16)

    def coords(self, coords: np.ndarray) -> np.ndarray:
        coords = _floats(coords, self.source, "coords")
        if not np.isfinite(coords).all() or coords.min() < 0 or coords.max() > 1:
            raise ScaleError(f"{self.source}: coords must be finite and normalised to [0, 1] "
                             "(Eq. 5: [y0/H, x0/W, t0/T, y1/H, x1/W, t1/T])")
        return coords.astype(np.float32)

    def boxes(self, boxes: np.ndarray) -> np.ndarray:
        return _integers(boxes, self.source, "boxes", *_INT32, "boxes must fit int32").astype(np.int32)

    def flip(self, flip: np.ndarray) -> np.ndarray:
        return _booleans(flip, self.source, "flip")

    def video_meta(self, meta: np.ndarray) -> np.ndarray:
        meta = _floats(meta, self.source, "video_meta")
        if not np.isfinite(meta).all() or (meta < 0).any():
            raise ScaleError(f"{self.source}: video_meta (height, width, frames, fps) must be finite and >= 0")
        return meta.astype(np.float32)


# ---------------------------------------------------------------------- import
def import_features(src: str | Path, out: str | Path, overwrite: bool = False,
                    rows_per_chunk: int = DEFAULT_ROWS_PER_CHUNK) -> FeatureStore:
    """Check a .npz/.h5 file and convert it, block by block, into a new store (built hidden beside
    `out`, then renamed in). `overwrite` replaces a scale store at `out` that no extraction is writing."""
    src, out = Path(src), Path(out)
    if not src.is_file():
        raise ScaleError(f"file not found: {src}")
    fmt = _format_of(src)
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise ScaleError(f"{out} already exists; choose another --out, or pass --overwrite to replace a scale store")
    check_replaceable(out, "store")
    if out.exists() and src.resolve().is_relative_to(out.resolve()):
        raise ScaleError(f"{src} lies inside --out {out}; refusing to replace the folder that holds the input")
    if not out.parent.is_dir():
        raise ScaleError(f"output directory does not exist: {out.parent}; create it or choose another --out")
    with ExitStack() as stack:
        if out.exists():  # an extraction writing the old store must finish first (held until the swap)
            stack.enter_context(exclusive_store_lock(out))
        source = stack.enter_context(open_source(src, fmt))
        tmp = out.with_name(f".{out.name}.importing-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        stack.callback(shutil.rmtree, tmp, True)
        _convert(source, str(src), tmp, rows_per_chunk)
        _swap_in(tmp, out)
    return FeatureStore.open(out)


def _convert(src: Source, source: str, tmp: Path, rows_per_chunk: int) -> None:
    missing = [k for k in REQUIRED if k not in src.names]
    if missing:
        raise ScaleError(f"{source}: missing arrays {', '.join(missing)} (required: {', '.join(REQUIRED)})"
                         + ("; the file holds no arrays at all" if not src.names else ""))
    feats = _features_member(src, source)
    n, v, d = feats.shape
    clip = _clip_members(src, source, n, v)
    small = _small_arrays(src, source, n, v)
    attrs = {"imported_from": Path(source).name,
             **{k: val for k, val in small["attrs"].items() if k not in _STORE_OWN_ATTRS}}
    fs = FeatureStore.create(tmp, video_ids=small["video_ids"], labels=small["labels"], splits=small["splits"],
                             class_names=small["class_names"], n_clips=v, feature_dim=d, attrs=attrs,
                             rows_per_chunk=rows_per_chunk)
    rpc = fs.rows_per_chunk
    step = rpc * max(1, _BLOCK_BYTES // max(1, rpc * v * d * 4))
    checks = _BlockChecks(source)
    status = small["status"]
    for start in range(0, n, step):
        stop = min(n, start + step)
        block = {"features": checks.features(feats.rows(start, stop))}
        if checks.bad_videos:  # keep counting the damaged videos, write nothing more
            continue
        for name, member in clip.items():
            block[name] = getattr(checks, name)(member.rows(start, stop))
        done = np.flatnonzero(status[start:stop] == DONE)
        if len(done):
            fs.write_rows(done + start, features=block["features"][done], coords=block["coords"][done],
                          boxes=block["boxes"][done] if "boxes" in block else None,
                          flip=block["flip"][done] if "flip" in block else None,
                          video_meta=block["video_meta"][done] if "video_meta" in block else None)
    if not checks.bad_videos:
        for member in (feats, *clip.values()):
            member.finish()
    if checks.bad_videos:
        raise ScaleError(f"{source}: features contain NaN or inf in {checks.bad_videos} video(s); "
                         "fix or drop them before importing")
    failed = np.flatnonzero(status == FAILED)
    if len(failed):
        fs.mark_failed(failed, [small["reasons"][i] or "failed before import" for i in failed])


def _swap_in(new: Path, out: Path) -> None:
    """Put the finished store `new` at `out`; an old store there is moved aside first and only
    deleted once the new one is in place (a failed rename puts it back)."""
    if not out.exists():
        os.replace(new, out)
        return
    old = out.with_name(f".{out.name}.replaced-{os.getpid()}")
    os.replace(out, old)
    try:
        os.replace(new, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def export_store(store: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Write every row of a store to .npz or .h5 with the same array names (atomic rename).
    An existing --out is replaced only with `overwrite` and only if it is an earlier export."""
    fs = FeatureStore.open(store)
    out = Path(out)
    fmt = _format_of(out)
    if getattr(fs, "clip_counts", None) is not None:
        raise ScaleError(f"{store} has videos of any length (a ragged store, made by importing per-video feature "
                         "files): export writes fixed-length stores only; keep the feature files it was imported from")
    if not out.parent.is_dir():
        raise ScaleError(f"output directory does not exist: {out.parent}")
    if out.is_dir():
        raise ScaleError(f"--out {out} is a directory; give a file name ending in .npz or .h5")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise ScaleError(f"{out} already exists; choose another --out, or pass --overwrite to replace an earlier export")
    check_replaceable(out, "export")
    data = fs.read(None, names=("features", "coords", "boxes", "flip", "video_meta", "labels", "splits", "status"))
    # ids as stored (non-UTF-8 ones escaped, listed in attrs.escaped_video_ids): valid UTF-8 for HDF5
    names = fs.class_names
    escaped_names = [i for i, c in enumerate(names) if needs_escape(c)]
    strings = {"video_ids": fs.stored_video_ids, "reasons": fs.reasons,
               "class_names": [escape_id(c) if i in escaped_names else c for i, c in enumerate(names)]}
    attrs = json.dumps({**fs.attrs, **({"escaped_class_names": escaped_names} if escaped_names else {})}, default=str)
    tmp = out.with_name(f".{out.name}.exporting-{os.getpid()}{out.suffix}")
    try:
        if fmt == "npz":
            arrays: dict[str, Any] = {**data, **{k: np.array(v, dtype=str) for k, v in strings.items()}, "attrs": np.array(attrs)}
            np.savez(tmp, **arrays)
        else:
            import h5py

            with h5py.File(tmp, "w") as f:
                for k, arr in data.items():
                    f.create_dataset(k, data=arr)
                for k, vals in strings.items():
                    f.create_dataset(k, data=np.array(vals, dtype=object), dtype=h5py.string_dtype())
                f.attrs["attrs"] = attrs
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out

"""Import features made elsewhere (.npz / .h5) into a FeatureStore, and export a store back.

Both formats use the store's array names:

    required  features [N, V, D] (any float), coords [N, V, 6], labels [N] (int, -1 = unknown),
              video_ids [N] (str), class_names [C] (str), splits [3, N] (0 unused, 1 train, 2 test)
    optional  boxes [N, V, 6] int (default zeros), flip [N, V] bool (default False),
              status [N] uint8 (default all done), reasons [N] str (why a failed row failed),
              video_meta [N, 4] float (source height, width, frames, fps; default zeros),
              attrs (a JSON string of store attributes)
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import ScaleError
from ..ownership import check_replaceable
from .feature_store import DONE, FeatureStore
from .names import escape_id, needs_escape, unescape_id

REQUIRED = ("features", "coords", "labels", "video_ids", "class_names", "splits")
OPTIONAL = ("boxes", "flip", "status", "reasons", "video_meta", "attrs")
FORMATS = (".npz", ".h5", ".hdf5")
# attributes the new store writes itself: an imported file's are dropped
_STORE_OWN_ATTRS = ("schema_version", "toolkit_version", "class_names", "rows_per_chunk", "escaped_class_names")


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise ScaleError(f"cannot read {path} as .npz ({exc})") from exc


def _read_h5(path: Path) -> dict[str, np.ndarray]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            out = {}
            for k in REQUIRED + OPTIONAL:  # other groups and datasets are not ours to read
                if k not in f:
                    continue
                ds = f[k]
                if not isinstance(ds, h5py.Dataset):
                    raise ScaleError(f"{path}: '{k}' is an HDF5 group; it must be a dataset (array)")
                out[k] = ds.asstr()[()] if h5py.check_string_dtype(ds.dtype) else ds[()]
            if "attrs" in f.attrs:
                value = f.attrs["attrs"]
                if isinstance(value, bytes):
                    value = value.decode("utf-8", "replace")
                if not isinstance(value, str):
                    raise ScaleError(f"{path}: the HDF5 attribute 'attrs' must be a JSON string, got {type(value).__name__}")
                out["attrs"] = np.array(value)
            return out
    except OSError as exc:
        raise ScaleError(f"cannot read {path} as HDF5 ({exc})") from exc


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ScaleError(f"{path}: unsupported format '{suffix}'; use .npz or .h5")
    return "npz" if suffix == ".npz" else "h5"


def validate_arrays(arrays: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """Check shapes, values and types; return arrays with canonical dtypes. Raises ScaleError."""
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise ScaleError(f"{source}: missing arrays {', '.join(missing)} (required: {', '.join(REQUIRED)})")
    feats = _checked_features(np.asarray(arrays["features"]), source)
    n, v, _ = feats.shape
    attrs = _parsed_attrs(arrays, source)
    coords = _shaped(arrays, source, "coords", (n, v, 6), "float").astype(np.float32)
    if not np.isfinite(coords).all() or coords.min() < 0 or coords.max() > 1:
        raise ScaleError(f"{source}: coords must be finite and normalised to [0, 1] "
                         "(Eq. 5: [y0/H, x0/W, t0/T, y1/H, x1/W, t1/T])")
    class_names = _unescaped(arrays, attrs, "class_names", source)
    labels = _shaped(arrays, source, "labels", (n,), "int").astype(np.int32)
    if labels.min() < -1 or labels.max() >= len(class_names):
        raise ScaleError(f"{source}: labels must be in [-1, {len(class_names) - 1}] for {len(class_names)} class names, "
                         f"got [{labels.min()}, {labels.max()}]")
    splits = _shaped(arrays, source, "splits", (3, n), "int").astype(np.int8)
    if not np.isin(splits, (0, 1, 2)).all():
        raise ScaleError(f"{source}: splits values must be 0 (unused), 1 (train) or 2 (test)")
    video_ids = _unescaped(arrays, attrs, "video_ids", source)  # ids that were not UTF-8 travel escaped (store/names.py)
    if len(video_ids) != n:
        raise ScaleError(f"{source}: video_ids must have {n} entries, got {len(video_ids)}")
    if len(set(video_ids)) != n:
        raise ScaleError(f"{source}: video_ids must be unique")
    out = {"features": feats, "coords": coords, "labels": labels, "splits": splits, "video_ids": video_ids,
           "class_names": class_names}
    return {**out, **_optional_arrays(arrays, source, n, v), "attrs": attrs}


def _checked_features(feats: np.ndarray, source: str) -> np.ndarray:
    """Features float [N, V, D], not empty, finite and within float16's range."""
    if feats.ndim != 3 or not np.issubdtype(feats.dtype, np.floating):
        raise ScaleError(f"{source}: features must be a float array [N, V, D], got {feats.dtype} {feats.shape}")
    if feats.shape[0] == 0 or feats.shape[1] == 0:
        raise ScaleError(f"{source}: features is empty {feats.shape}")
    if not np.isfinite(feats).all():
        bad = int((~np.isfinite(feats)).any(axis=(1, 2)).sum())
        raise ScaleError(f"{source}: features contain NaN or inf in {bad} video(s); fix or drop them before importing")
    if np.abs(feats).max() > np.finfo(np.float16).max:
        raise ScaleError(f"{source}: features exceed the float16 range of the store (max |x| 65504)")
    return feats


def _parsed_attrs(arrays: dict[str, np.ndarray], source: str) -> dict:
    """The optional `attrs` JSON object ({} when absent)."""
    if "attrs" not in arrays:
        return {}
    try:
        attrs = json.loads(str(np.asarray(arrays["attrs"]).reshape(-1)[0]))
    except (ValueError, IndexError, TypeError) as exc:
        raise ScaleError(f"{source}: attrs must be a JSON string") from exc
    if not isinstance(attrs, dict):
        raise ScaleError(f"{source}: attrs must be a JSON object, got {type(attrs).__name__}")
    return attrs


def _shaped(arrays: dict[str, np.ndarray], source: str, name: str, shape: tuple, kind: str) -> np.ndarray:
    """Array `name` of exactly `shape`, of integers (`kind` "int"), numbers ("float") or anything ("any")."""
    arr = np.asarray(arrays[name])
    if arr.shape != shape:
        raise ScaleError(f"{source}: {name} must have shape {list(shape)}, got {list(arr.shape)}")
    if kind == "int" and not np.issubdtype(arr.dtype, np.integer):
        raise ScaleError(f"{source}: {name} must be integers, got {arr.dtype}")
    if kind == "float" and not np.issubdtype(arr.dtype, np.number):
        raise ScaleError(f"{source}: {name} must be numeric, got {arr.dtype}")
    return arr


def _unescaped(arrays: dict[str, np.ndarray], attrs: dict, name: str, source: str) -> list[str]:
    """The strings of `name`, those listed in attrs["escaped_<name>"] unescaped (store/names.py)."""
    values = [str(x) for x in np.asarray(arrays[name]).reshape(-1)]
    try:
        for row in attrs.get(f"escaped_{name}", []):
            values[row] = unescape_id(values[row])
    except (TypeError, IndexError):
        raise ScaleError(f"{source}: attrs.escaped_{name} must list row numbers of {name}") from None
    return values


def _optional_arrays(arrays: dict[str, np.ndarray], source: str, n: int, v: int) -> dict:
    """boxes, flip, status, video_meta and reasons: checked where given, their defaults otherwise."""
    out = {"boxes": _shaped(arrays, source, "boxes", (n, v, 6), "int").astype(np.int32) if "boxes" in arrays
           else np.zeros((n, v, 6), np.int32),
           "flip": _shaped(arrays, source, "flip", (n, v), "any").astype(bool) if "flip" in arrays else np.zeros((n, v), bool)}
    status = _shaped(arrays, source, "status", (n,), "int").astype(np.uint8) if "status" in arrays else np.full(n, DONE, np.uint8)
    if not np.isin(status, (0, 1, 2)).all():
        raise ScaleError(f"{source}: status values must be 0 (pending), 1 (done) or 2 (failed)")
    out["status"] = status
    out["video_meta"] = (_shaped(arrays, source, "video_meta", (n, 4), "float").astype(np.float32) if "video_meta" in arrays
                         else np.zeros((n, 4), np.float32))
    if not np.isfinite(out["video_meta"]).all():
        raise ScaleError(f"{source}: video_meta must be finite")
    reasons = [str(r) for r in np.asarray(arrays["reasons"]).reshape(-1)] if "reasons" in arrays else [""] * n
    if len(reasons) != n:
        raise ScaleError(f"{source}: reasons must have {n} entries, got {len(reasons)}")
    out["reasons"] = reasons
    return out


def import_features(src: str | Path, out: str | Path, overwrite: bool = False) -> FeatureStore:
    """Validate a .npz/.h5 file and write it as a new store (built beside `out`, then renamed)."""
    src, out = Path(src), Path(out)
    if not src.is_file():
        raise ScaleError(f"file not found: {src}")
    arrays = _read_npz(src) if _format_of(src) == "npz" else _read_h5(src)
    data = validate_arrays(arrays, str(src))
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise ScaleError(f"{out} already exists; choose another --out, or pass --overwrite to replace a scale store")
    check_replaceable(out, "store")
    if out.exists() and src.resolve().is_relative_to(out.resolve()):
        raise ScaleError(f"{src} lies inside --out {out}; refusing to replace the folder that holds the input")
    if not out.parent.is_dir():
        raise ScaleError(f"output directory does not exist: {out.parent}; create it or choose another --out")
    n, v, d = data["features"].shape
    attrs = {"imported_from": src.name, **{k: val for k, val in data["attrs"].items() if k not in _STORE_OWN_ATTRS}}
    tmp = out.with_name(f".{out.name}.importing-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        fs = FeatureStore.create(
            tmp, video_ids=data["video_ids"], labels=data["labels"], splits=data["splits"], class_names=data["class_names"],
            n_clips=v, feature_dim=d, attrs=attrs,
        )
        done = np.flatnonzero(data["status"] == DONE)
        fs.write_rows(done, features=data["features"][done], coords=data["coords"][done], boxes=data["boxes"][done],
                      flip=data["flip"][done], video_meta=data["video_meta"][done])
        failed = np.flatnonzero(data["status"] == 2)
        if len(failed):
            fs.mark_failed(failed, [data["reasons"][i] or "failed before import" for i in failed])
        _swap_in(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return FeatureStore.open(out)


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
            np.savez(tmp, **data, **{k: np.array(v, dtype=str) for k, v in strings.items()}, attrs=np.array(attrs))
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

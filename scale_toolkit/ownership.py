"""The one output policy: scale creates a path fresh, or replaces only its own artefact of that kind.

Every path a command writes - a store (`import --out`), a run directory (`train --out`), an index
with its sidecar `X.json` and media folder `X.media/` (`retrieve --build-index X`), a result JSON
(`probe --json`, `retrieve --json`) and its picture, an export - goes through `check_replaceable`
(or `check_outputs` for several), called before any work starts. A path is accepted when:

- nothing is there; or
- what is there is recognisably scale's own artefact of the same kind: a store (zarr.json with
  scale's schema_version), a run (config.json with train/model), an index (its sidecar says so), a
  result JSON carrying `"scale_result": KIND` of the same kind (an unmarked JSON object - the
  user's, a store's zarr.json, a run's config.json, an index sidecar - is never replaced), an export
  holding the store's array names, a PNG drawn by scale (matplotlib's Software text chunk);

and never when the path lies inside a store, a run directory or an index's media folder (their
inner files are theirs), is a symlink, contains `..`, or is the current, home or root folder.
Result files written before the marker existed are recognised by the exact set of keys their
command wrote (see `_legacy_result`).
"""
from __future__ import annotations

import fcntl
import json
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from .atomic import RESULT_MARKER
from .errors import ScaleError
from .run_files import CONFIG_FILE, OWN_HIDDEN_PREFIXES

MEDIA_SUFFIX = ".media"  # an index's posters and previews: INDEX.media/ (scale_toolkit/serve/media.py)
_MEDIA_FILE = re.compile(r"^([0-9a-f]{20}\.(poster\.jpg|preview\.webp)|\..+\.tmp)$")
RESULT_KINDS = ("probe", "retrieve")


def _json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None


def _plain_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _plain_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def is_feature_store(path: str | os.PathLike) -> bool:
    """A Zarr group whose attributes carry scale's schema_version."""
    path = Path(path)
    meta = _json(path / "zarr.json") if _plain_dir(path) else None
    return isinstance(meta, dict) and isinstance(meta.get("attributes"), dict) and "schema_version" in meta["attributes"]


def is_run_dir(path: str | os.PathLike) -> bool:
    """A `scale train` run directory: config.json with train/model sections."""
    path = Path(path)
    meta = _json(path / CONFIG_FILE) if _plain_dir(path) else None
    return isinstance(meta, dict) and "train" in meta and "model" in meta


def _sidecar(index: Path) -> Path:
    return index.with_name(index.name + ".json")


def _media(index: Path) -> Path:
    return index.with_name(index.name + MEDIA_SUFFIX)


def is_index_sidecar(path: str | os.PathLike) -> bool:
    from .retrieval.index import SIDECAR_FORMAT

    path = Path(path)
    meta = _json(path) if _plain_file(path) else None
    return isinstance(meta, dict) and meta.get("format") == SIDECAR_FORMAT


def is_index(path: str | os.PathLike) -> bool:
    """An index file written by `scale retrieve --build-index` (its sidecar says so)."""
    path = Path(path)
    return _plain_file(path) and is_index_sidecar(_sidecar(path))


def is_media_dir(path: str | os.PathLike) -> bool:
    """An index's media folder: INDEX.media/ holding only scale's poster/preview names (or nothing)."""
    path = Path(path)
    if not (_plain_dir(path) and path.name.endswith(MEDIA_SUFFIX)):
        return False
    return all(_MEDIA_FILE.match(p.name) and _plain_file(p) for p in path.iterdir())


def result_kind(path: str | os.PathLike) -> str | None:
    """The kind of a result JSON scale wrote ("probe", "retrieve"), or None for any other file."""
    path = Path(path)
    doc = _json(path) if _plain_file(path) else None
    if not isinstance(doc, dict):
        return None
    marked = doc.get(RESULT_MARKER)
    if marked is not None:
        return marked if marked in RESULT_KINDS else None
    return _legacy_result(doc)


# the keys an unmarked result of an earlier scale holds: probe's result_document, and the resolved
# flags `scale retrieve` recorded under "config"; a user's JSON matching either exactly is implausible
_LEGACY_PROBE_KEYS = {"results", "rows", "splits", "seeds", "config", "store", "protocol", "notes"}
_LEGACY_RETRIEVE_FLAGS = {"store", "split", "model", "build_index", "index", "query", "top", "json_out", "index_type"}


def _legacy_result(doc: dict) -> str | None:
    if _LEGACY_PROBE_KEYS <= doc.keys() and isinstance(doc["store"], dict) and "fingerprint" in doc["store"]:
        return "probe"
    if isinstance(doc.get("config"), dict) and _LEGACY_RETRIEVE_FLAGS <= doc["config"].keys():
        return "retrieve"
    return None


def is_scale_png(path: str | os.PathLike) -> bool:
    """A PNG scale drew: matplotlib writes a `Software` tEXt chunk naming itself before the image data."""
    path = Path(path)
    if not _plain_file(path):
        return False
    with open(path, "rb") as f:
        head = f.read(4096)
    return head.startswith(b"\x89PNG\r\n\x1a\n") and b"tEXtSoftware\x00Matplotlib" in head.split(b"IDAT")[0]


def is_export(path: str | os.PathLike) -> bool:
    """A .npz / .h5 written by `scale export` (it holds the store's array names)."""
    from .store.interchange import REQUIRED

    path = Path(path)
    if not _plain_file(path):
        return False
    try:
        if path.suffix.lower() == ".npz":
            import zipfile

            with zipfile.ZipFile(path) as z:  # the member names only: nothing is decompressed
                return {f"{k}.npy" for k in REQUIRED} <= set(z.namelist())
        import h5py

        with h5py.File(path, "r") as f:
            return set(REQUIRED) <= set(f.keys())
    except Exception:  # noqa: BLE001  not readable as its suffix says: not ours
        return False


_KINDS = {
    "store": (is_feature_store, "a scale feature store"),
    "run": (is_run_dir, "a scale training run"),
    "index": (is_index, "a scale retrieval index (with its .json sidecar)"),
    "export": (is_export, "a file written by scale export"),
    "png": (is_scale_png, "a picture drawn by scale"),
    **{kind: ((lambda p, k=kind: result_kind(p) == k), f"a JSON result file of scale {kind} (marked \"{RESULT_MARKER}\": "
              f"\"{kind}\")") for kind in RESULT_KINDS},
}


def _is_index_media(path: Path) -> bool:
    return is_media_dir(path) and is_index(path.with_name(path.name[: -len(MEDIA_SUFFIX)]))


def _container(path: Path) -> tuple[Path, str] | None:
    """The store, run directory or index media folder that `path` lies inside, if any."""
    for parent in Path(os.path.abspath(path)).parents:
        for test, what in ((is_feature_store, "scale feature store"), (is_run_dir, "scale training run"),
                           (_is_index_media, "scale index media folder")):
            if test(parent):
                return parent, what
    return None


def check_replaceable(path: str | os.PathLike, kind: str, flag: str = "--out") -> None:
    """Raise ScaleError unless `path` is absent or is scale's own output of `kind` (see the module doc).
    For an index, its sidecar `X.json` and media folder `X.media/` are checked too."""
    path = Path(path)
    inside = _container(path)
    if inside is not None:
        raise ScaleError(f"{flag} {path} lies inside the {inside[1]} {inside[0]}, whose files are its own; "
                         f"refusing to write there: choose a {flag} outside it")
    if kind == "index":
        _check_index_companions(path, flag)
    if not path.exists() and not path.is_symlink():
        return
    test, what = _KINDS[kind]
    if path.is_symlink():
        raise ScaleError(f"{flag} {path} is a symlink; refusing to replace it: give the real path or another {flag}")
    if ".." in path.parts:
        raise ScaleError(f"{flag} {path} contains '..'; refusing to replace it: give a plain path")
    if path.resolve() in (Path.cwd().resolve(), Path.home().resolve(), Path("/")):
        raise ScaleError(f"{flag} {path} is the current, home or root folder; refusing to replace it")
    if not test(path):
        raise ScaleError(f"{flag} {path} exists and is not {what}; refusing to replace it: "
                         f"choose another {flag} (or move it away yourself)")


def _check_index_companions(path: Path, flag: str) -> None:
    """`--build-index X` also writes X.json and X.media/: each absent, or scale's own."""
    side, media = _sidecar(path), _media(path)
    if side.is_symlink() or (side.exists() and not is_index_sidecar(side)):
        raise ScaleError(f"{flag} {path}: {side} exists and is not a scale index sidecar; refusing to replace it: "
                         f"choose another {flag} (or move it away yourself)")
    if media.is_symlink() or (media.exists() and not is_media_dir(media)):
        raise ScaleError(f"{flag} {path}: {media} exists and is not the media folder of a scale index; refusing to "
                         f"write into it: choose another {flag} (or move it away yourself)")


def check_outputs(outputs: Iterable[tuple[str | os.PathLike | None, str, str]]) -> None:
    """Every (path, kind, flag) of a command, checked before its work starts; None paths are skipped."""
    for path, kind, flag in outputs:
        if path is not None:
            check_replaceable(path, kind, flag)


def check_run_dir(path: str | os.PathLike) -> None:
    """`scale train --out`: absent, empty (but for scale's own hidden files) or a run directory."""
    path = Path(path)
    inside = _container(path)
    if inside is not None:
        raise ScaleError(f"--out {path} lies inside the {inside[1]} {inside[0]}; choose a --out outside it")
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        raise ScaleError(f"--out {path} exists and is not a directory; choose another --out")
    if is_run_dir(path):
        return
    if is_feature_store(path) or _is_index_media(path):
        raise ScaleError(f"--out {path} is a scale store or media folder, not a training run; choose another --out")
    foreign = [p.name for p in path.iterdir() if not p.name.startswith(OWN_HIDDEN_PREFIXES)]
    if foreign:
        raise ScaleError(f"--out {path} is a folder of other files (e.g. {foreign[0]}), not a training run; "
                         "refusing to write into it: choose a new or empty --out")


@contextmanager
def exclusive_store_lock(store: str | os.PathLike) -> Iterator[None]:
    """Hold every extraction lock of `store` (STORE/.locks, store/shard_lock.py) while it is replaced:
    refused in one line while an extraction writes it; flocks die with their holder, so a killed
    extraction never blocks this."""
    from .locks import release, try_lock

    folder = Path(store) / ".locks"
    if not _plain_dir(folder):
        yield
        return
    handles = []
    try:
        mutex = open(folder / "layout.mutex", "a+")
        handles.append(mutex)
        fcntl.flock(mutex, fcntl.LOCK_EX)  # starters hold it for microseconds; new ones wait behind us
        for lock in sorted(folder.iterdir()):
            if lock.name.startswith(("layout-", "shard-")) and _plain_file(lock):
                handle = try_lock(lock)
                if handle is None:
                    raise ScaleError(f"an extraction is writing {store}; wait for it to finish "
                                     "(or stop it) before replacing the store with --overwrite")
                handles.append(handle)
        yield
    finally:
        for handle in reversed(handles):
            release(handle)

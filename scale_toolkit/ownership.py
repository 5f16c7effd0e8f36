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
command wrote. What each artefact looks like is its contract's to say (`is_ours` in scale_toolkit/contracts/);
this module only applies the policy.
"""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator

from .contracts.export import ExportFile
from .contracts.index import IndexFiles
from .contracts.picture import Picture
from .contracts.result import RESULT_KINDS, ResultDocument
from .contracts.run import RunFiles
from .contracts.store import StoreFiles
from .errors import ScaleError
from .locks import release, try_lock


def _is_result(path: Path, kind: str) -> bool:
    return ResultDocument.is_ours(path, kind)


# every kind of output a command writes: (whether a path holds scale's own artefact of that kind, what it is)
_KINDS: dict[str, tuple[Callable[[Path], bool], str]] = {
    "store": (StoreFiles.is_ours, StoreFiles.WHAT),
    "run": (RunFiles.is_ours, RunFiles.WHAT),
    "index": (IndexFiles.is_ours, IndexFiles.WHAT),
    "export": (ExportFile.is_ours, ExportFile.WHAT),
    "png": (Picture.is_ours, Picture.WHAT),
    **{kind: (partial(_is_result, kind=kind), ResultDocument.WHAT.format(kind=kind)) for kind in RESULT_KINDS},
}
# the artefacts whose inner files are their own: nothing is written inside them
_CONTAINERS: tuple[tuple[Callable[[Path], bool], str], ...] = (
    (StoreFiles.is_ours, "scale feature store"), (RunFiles.is_ours, "scale training run"),
    (IndexFiles.owns_media_dir, "scale index media folder"))


def _container(path: Path) -> tuple[Path, str] | None:
    """The store, run directory or index media folder that `path` lies inside, if any."""
    for parent in Path(os.path.abspath(path)).parents:
        for test, what in _CONTAINERS:
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
    files = IndexFiles.at(path)
    side, media = files.sidecar, files.media
    if side.is_symlink() or (side.exists() and not IndexFiles.is_sidecar(side)):
        raise ScaleError(f"{flag} {path}: {side} exists and is not a scale index sidecar; refusing to replace it: "
                         f"choose another {flag} (or move it away yourself)")
    if media.is_symlink() or (media.exists() and not IndexFiles.is_media_dir(media)):
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
    if RunFiles.is_ours(path):
        return
    if StoreFiles.is_ours(path) or IndexFiles.owns_media_dir(path):
        raise ScaleError(f"--out {path} is a scale store or media folder, not a training run; choose another --out")
    foreign = [p.name for p in path.iterdir() if not RunFiles.is_own_hidden(p.name)]
    if foreign:
        raise ScaleError(f"--out {path} is a folder of other files (e.g. {foreign[0]}), not a training run; "
                         "refusing to write into it: choose a new or empty --out")


@contextmanager
def exclusive_store_lock(store: str | os.PathLike) -> Iterator[None]:
    """Hold every extraction lock of `store` (STORE/.locks, store/shard_lock.py) while it is replaced:
    refused in one line while an extraction writes it; flocks die with their holder, so a killed
    extraction never blocks this."""
    folder = Path(store) / ".locks"
    if not folder.is_dir() or folder.is_symlink():
        yield
        return
    handles: list[IO[Any]] = []
    try:
        mutex = open(folder / "layout.mutex", "a+")
        handles.append(mutex)
        fcntl.flock(mutex, fcntl.LOCK_EX)  # starters hold it for microseconds; new ones wait behind us
        for lock in sorted(folder.iterdir()):
            if lock.name.startswith(("layout-", "shard-")) and lock.is_file() and not lock.is_symlink():
                handle = try_lock(lock)
                if handle is None:
                    raise ScaleError(f"an extraction is writing {store}; wait for it to finish "
                                     "(or stop it) before replacing the store with --overwrite")
                handles.append(handle)
        yield
    finally:
        for handle in reversed(handles):
            release(handle)

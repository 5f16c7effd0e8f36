"""FeatureStore: the Zarr v3 feature cache every command after extraction reads.

Layout (the contract other tools rely on; see README "Store format"):

    features  float16 [N, V, D]   frozen-backbone clip features
    coords    float32 [N, V, 6]   Eq. 5: [y0/H, x0/W, t0/T, y1/H, x1/W, t1/T]
    boxes     int32   [N, V, 6]   the same box in source pixels/frames [y0, x0, t0, y1, x1, t1]
    flip      bool    [N, V]      horizontally flipped clip
    labels    int32   [N]         class index, -1 if unknown
    splits    int8    [3, N]      membership in splits 1..3 (1 train, 2 test, 0 unused)
    video_ids str     [N]         stable id (path relative to the dataset root)
    status    uint8   [N]         0 pending, 1 done, 2 failed
    reasons   str     [N]         why a row failed ("" otherwise)
    video_meta float32 [N, 4]     source height, width, frame count, fps (0 where unknown)
    checksums int64   [blocks, 5] CRC-32 per block of the five arrays above it (store/integrity.py)

Rows are chunked in blocks of `rows_per_chunk` videos. A writer only ever writes whole
blocks it owns (shards own disjoint blocks), data arrays first and `status` last, and
Zarr writes each chunk to a temporary file and renames it, so a killed writer leaves
at most its in-flight block pending and a rerun redoes exactly that block.

Videos with any number of clips live in the ragged layout (store/ragged.py: clip rows concatenated,
per-video offsets and counts); `open` returns a RaggedStore for those, same per-video arrays.
"""
from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Sequence

import numpy as np
import zarr

from .. import __version__
from ..errors import ScaleError
from .attributes import StoreAttrs
from .integrity import ALGORITHM, CHECKED, INTEGRITY_ATTR, ROW_STATE, WHOLE, attributes_crc, block_runs, crc, scan
from .layout import DEFAULT_ROWS_PER_CHUNK, DONE, FAILED, PENDING, STATUS_NAMES, check_layout, create_row_arrays
from .names import escape_id, needs_escape, printable, unescape_id
from .nodes import array_of
from .summary import StoreInfo

SCHEMA_VERSION = 1  # written by fixed-layout stores
RAGGED_SCHEMA_VERSION = 2  # written by ragged stores (store/ragged.py), so a scale before them refuses them
_WRITTEN_AT_CREATION = ("labels", "splits", "video_ids")  # never rewritten: kept once read, in any mode


@contextmanager
def _string_arrays_known() -> Iterator[None]:
    """Zarr 3.0 and 3.1.0 warn that their variable-length string codec is not yet in the v3 spec, each time
    the metadata of a string array is read; we rely on it knowingly.

    Silenced only around the methods that look up the string arrays (video_ids, reasons), never process-wide.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not part (of|in) the Zarr format 3 specification.*")
        warnings.filterwarnings("ignore", category=UserWarning, module="zarr.*")
        yield


def _as_str_array(values: Sequence[str]) -> np.ndarray:
    """Free text (failure reasons) as valid UTF-8: a reason may quote a non-UTF-8 file name."""
    return np.array([printable(str(v)) for v in values], dtype=object)


class FeatureStore:
    """A Zarr group of clip features for N videos x V clips x D dims.

    >>> fs = FeatureStore.create("/tmp/x.zarr", video_ids=["a", "b"], labels=[0, 1],
    ...                          splits=np.ones((3, 2), np.int8), class_names=["c0", "c1"],
    ...                          n_clips=15, feature_dim=8, attrs={}, overwrite=True)
    >>> fs.n_videos, fs.n_clips, fs.feature_dim
    (2, 15, 8)
    """

    CLIP_AXES = 2  # per-clip arrays are [N, V, ...]: a clip's own shape starts at this axis

    def __init__(self, path: Path, group: zarr.Group) -> None:
        self.path = Path(path)
        self.group = group
        self._arrays: dict[str, zarr.Array] = {}
        # Whole per-video metadata arrays, read at most once per open store: labels, splits and ids
        # are written only at creation; status, reasons and checksums also change while a store is
        # written, so they are kept only by a read-only open (a snapshot of the store as opened).
        self._kept: dict[str, Any] = {}
        self._row_of_id: dict[str, int] | None = None

    # ------------------------------------------------------------------ creation / opening
    @classmethod
    @_string_arrays_known()
    def create(
        cls,
        path: str | Path,
        *,
        video_ids: Sequence[str],
        labels: Sequence[int] | np.ndarray,
        splits: np.ndarray,
        class_names: Sequence[str],
        n_clips: int,
        feature_dim: int,
        attrs: dict | None = None,
        video_meta: np.ndarray | None = None,
        rows_per_chunk: int = DEFAULT_ROWS_PER_CHUNK,
        overwrite: bool = False,
        clip_counts: Sequence[int] | np.ndarray | None = None,
    ) -> "FeatureStore":
        """Create a store with every row pending. Refuses to replace an existing store unless asked.
        With `clip_counts` (one per video) the store has the ragged layout (store/ragged.py) and
        `n_clips` is ignored."""
        from . import ragged

        path = Path(path)
        n = len(video_ids)
        labels = np.asarray(labels, dtype=np.int32)
        splits = np.asarray(splits, dtype=np.int8)
        counts = None if clip_counts is None else ragged.check_ragged_layout(n, labels, splits, clip_counts, feature_dim)
        if counts is None:
            check_layout(n, labels, splits, n_clips, feature_dim)
        if path.exists() and not overwrite:
            raise ScaleError(f"{path} already exists; choose another --out or delete it")
        chunk = max(1, min(rows_per_chunk, n))
        group = zarr.open_group(str(path), mode="w", zarr_format=3)
        index_sums: dict[str, int] = {}
        if counts is None:
            create_row_arrays(group, n, n_clips, feature_dim, chunk)
        else:
            index_sums = ragged.create_clip_arrays(group, counts, feature_dim, chunk)
        # Whole-store metadata is small and written once here, by the creator only.
        group.create_array("labels", data=labels, chunks=(n,))
        group.create_array("splits", data=splits, chunks=(3, n))
        group.create_array("video_ids", shape=(n,), chunks=(n,), dtype=str, fill_value="")
        escaped = [i for i, v in enumerate(video_ids) if needs_escape(str(v))]  # lossless, see names.py
        stored_ids = [escape_id(str(v)) if needs_escape(str(v)) else str(v) for v in video_ids]
        array_of(group, "video_ids")[:] = np.array(stored_ids, dtype=object)
        if video_meta is not None:
            array_of(group, "video_meta")[:] = np.asarray(video_meta, dtype=np.float32)
        group.attrs.update(
            {
                "schema_version": SCHEMA_VERSION if counts is None else RAGGED_SCHEMA_VERSION,
                "toolkit_version": __version__,
                "class_names": list(class_names),
                "rows_per_chunk": chunk,
                "checksums": ALGORITHM,
                **{k: v for k, v in (attrs or {}).items() if k not in ("escaped_video_ids", INTEGRITY_ATTR)},
                **({"escaped_video_ids": escaped} if escaped else {}),
                **({ragged.LAYOUT_ATTR: ragged.RAGGED} if counts is not None else {}),
            }
        )
        store = (ragged.RaggedStore if counts is not None else cls)(path, group)
        store._seal({**{name: crc(np.asarray(array_of(group, name)[:])) for name in WHOLE}, **index_sums})
        return store

    @classmethod
    @_string_arrays_known()  # looking its arrays up reads their metadata, video_ids' string codec included
    def open(cls, path: str | Path, mode: Literal["r", "r+"] = "r") -> "FeatureStore":
        """Open an existing store (`mode` "r" or "r+"); a clear error if it is not one."""
        path = Path(path)
        if not path.exists():
            raise ScaleError(f"feature store not found: {path}")
        try:
            group = zarr.open_group(str(path), mode=mode, zarr_format=3)
        except Exception as exc:  # zarr raises several types for "not a group"
            raise ScaleError(f"{path} is not a scale feature store ({type(exc).__name__})") from exc
        missing = [a for a in ("features", "coords", "labels", "splits", "video_ids", "status") if a not in group]
        if missing or "schema_version" not in group.attrs:
            raise ScaleError(f"{path} is not a scale feature store (missing {', '.join(missing) or 'schema_version'})")
        version = group.attrs["schema_version"]
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ScaleError(f"{path} is not a valid scale feature store (schema_version {version!r} is not a "
                             "positive integer): its zarr.json was damaged or edited")
        if version > RAGGED_SCHEMA_VERSION:
            raise ScaleError(f"{path} has store schema {group.attrs['schema_version']}; upgrade scale to read it")
        from .ragged import RaggedStore, is_ragged

        store = (RaggedStore if is_ragged(group) else cls)(path, group)
        store._check_attributes()
        return store

    def _seal(self, whole: dict[str, int] | None = None) -> None:
        """Record the checksums of the arrays written once (`whole`, kept if None) and of the attributes."""
        record = dict(whole if whole is not None else self._attr(INTEGRITY_ATTR, {}))
        record["attributes"] = attributes_crc(dict(self.group.attrs))
        self.group.attrs.update({INTEGRITY_ATTR: record})

    def _check_attributes(self) -> None:
        """The attributes match their checksum, and a store that says it has checksums has them."""
        attrs = dict(self.group.attrs)
        record = attrs.get(INTEGRITY_ATTR)
        if record is not None and (not isinstance(record, dict) or record.get("attributes") != attributes_crc(attrs)):
            raise ScaleError(f"{self.path} is damaged: its attributes (zarr.json) do not match their checksum; "
                             "restore the store from a copy or extract it again into a new --out")
        if attrs.get("checksums") and "checksums" not in self.group:
            raise ScaleError(f"{self.path} is damaged: it was made with checksums but its checksums array is missing; "
                             "restore the store from a copy or extract it again into a new --out")

    # ------------------------------------------------------------------ shape and metadata
    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs)

    def _attr(self, name: str, default: Any = None) -> Any:
        """One attribute, as JSON gave it (its shape is checked where it is used)."""
        return self.group.attrs.get(name, default)

    def update_attrs(self, **values: Any) -> None:
        self.group.attrs.update(values)
        if INTEGRITY_ATTR in self.group.attrs:
            self._seal()

    @property
    def n_videos(self) -> int:
        return int(self._array("features").shape[0])

    @property
    def n_clips(self) -> int:
        return int(self._array("features").shape[1])

    @property
    def feature_dim(self) -> int:
        return int(self._array("features").shape[2])

    def clip_bytes(self, names: Sequence[str] = ("features", "coords")) -> int:
        """Bytes one clip takes in memory when these per-clip arrays are read (their dtypes and widths):
        what anything that holds clips sizes itself by."""
        total = 0
        for name in names:
            arr = self._array(name)
            total += int(np.dtype(arr.dtype).itemsize * int(np.prod(arr.shape[self.CLIP_AXES:], dtype=np.int64)))
        return total

    @property
    def rows_per_chunk(self) -> int:
        return int(self._array("status").chunks[0])

    @property
    def n_blocks(self) -> int:
        return -(-self.n_videos // self.rows_per_chunk)

    @property
    def class_names(self) -> list[str]:
        return list(self._attr("class_names", []))

    def _array(self, name: str) -> zarr.Array:
        """An array of the group, its metadata read once per open store (not on every row read)."""
        if name not in self._arrays:
            self._arrays[name] = array_of(self.group, name)
        return self._arrays[name]

    def _keeps(self, name: str) -> bool:
        """Whether a whole array, once read, is kept for the life of this open store."""
        return name in _WRITTEN_AT_CREATION or bool(self.group.read_only)

    def _whole(self, name: str) -> np.ndarray:
        """A whole per-video array, the caller's own copy (a memory copy of a kept array, not a read);
        a truncated or garbled chunk is one clear line, not a codec traceback."""
        if name not in self._kept:
            values = self._rows_of(name, 0, None)
            self._check_whole(name, values)
            if not self._keeps(name):
                return values
            self._kept[name] = values
        kept: np.ndarray = self._kept[name]
        return kept.copy()

    def _check_whole(self, name: str, values: np.ndarray) -> None:
        """A whole array read is checked against its checksum: the arrays written once against the
        attributes' record, status and reasons block by block (damage is never read as data)."""
        if name in WHOLE:
            recorded = (self._attr(INTEGRITY_ATTR) or {}).get(name)
            if recorded is not None and crc(values) != recorded:
                raise ScaleError(f"{self.path} is damaged: its {name} array does not match its checksum (rows 0-"
                                 f"{len(values) - 1}); restore the store from a copy or extract it again into a new --out")
        elif name in ROW_STATE and self._has_state_sums:
            blocks = np.arange(self.n_blocks)
            for block, problem in self._state_problems(name, blocks, values, self._whole("checksums")):
                raise self._damage(name, block, problem)

    @property
    def metadata_checked(self) -> bool:
        """Whether labels, splits, ids, status, reasons and attributes have checksums (stores made since #26)."""
        return INTEGRITY_ATTR in self.group.attrs and self._has_state_sums

    @property
    def _has_state_sums(self) -> bool:
        """Whether `checksums` also covers status and reasons (stores made since issue #26)."""
        return self.has_checksums and self._array("checksums").shape[1] == len(CHECKED) + len(ROW_STATE)

    def _state_problems(self, name: str, blocks: np.ndarray, values: np.ndarray, sums: np.ndarray
                        ) -> Iterator[tuple[int, str]]:
        """(block, problem) for each of `blocks` whose `name` rows (`values`, the rows of those blocks
        in order) do not match the recorded checksum; `sums` are the checksum rows of `blocks`."""
        col, pos = len(CHECKED) + ROW_STATE.index(name), 0
        for block, recorded in zip(blocks.tolist(), np.asarray(sums).reshape(len(blocks), -1)[:, col].tolist()):
            size = len(self.block_rows(block))
            piece, pos = values[pos:pos + size], pos + size
            if recorded >= 0 and crc(piece) != recorded:
                yield block, "checksum mismatch"

    def _rows_of(self, name: str, start: int, stop: int | None) -> np.ndarray:
        """Rows start..stop-1 of a per-row or per-block array: from the kept whole array when there is
        one, else only the chunks that hold them."""
        if name in self._kept:
            kept: np.ndarray = self._kept[name][start:stop]
            return kept
        try:
            return np.asarray(self._array(name)[start:stop])
        except Exception as exc:  # zarr's codecs raise many types
            raise ScaleError(f"{self.path} is damaged: its {name} array cannot be read ({type(exc).__name__}); "
                             "restore the store from a copy or extract it again into a new --out") from exc

    @property
    def labels(self) -> np.ndarray:
        return np.asarray(self._whole("labels"), dtype=np.int32)

    @property
    def splits(self) -> np.ndarray:
        return np.asarray(self._whole("splits"), dtype=np.int8)

    @property
    @_string_arrays_known()
    def stored_video_ids(self) -> list[str]:
        """The ids as stored: those that are not valid UTF-8 escaped (names.py), as export writes them."""
        return [str(v) for v in self._whole("video_ids")]

    @property
    def video_ids(self) -> list[str]:
        """The ids (a new list each time: index a local copy in loops, or use `row_of`)."""
        if "ids" not in self._kept:
            ids = self.stored_video_ids
            for row in self._attr("escaped_video_ids", []):
                ids[row] = unescape_id(ids[row])
            self._kept["ids"] = ids
        return list(self._kept["ids"])

    def row_of(self, video_id: str) -> int | None:
        """The row of a video id, or None: a dict built once per open store, not a scan per lookup."""
        if self._row_of_id is None:
            self._row_of_id = {vid: row for row, vid in enumerate(self.video_ids)}
        return self._row_of_id.get(video_id)

    def status_of(self, rows: np.ndarray | Sequence[int]) -> np.ndarray:
        """The status of some rows, reading only the blocks that hold them."""
        rows = np.asarray(rows, dtype=np.int64)
        if "status" in self._kept or rows.size == 0:
            return np.asarray(self.status[rows], dtype=np.uint8)
        if not self.has_checksums:
            return np.asarray(self.read(rows, names=("status",))["status"], dtype=np.uint8)
        blocks, which = np.unique(rows // self.rows_per_chunk, return_inverse=True)
        statuses: dict[int, np.ndarray] = {}
        self._block_checks(blocks, statuses)  # the blocks' status, read once and checked against its checksum
        joined = np.concatenate([statuses[int(b)] for b in blocks])
        sizes = np.array([len(statuses[int(b)]) for b in blocks], dtype=np.int64)
        first = np.cumsum(sizes) - sizes  # each block's start in `joined`
        return np.asarray(joined[first[which] + rows % self.rows_per_chunk], dtype=np.uint8)

    @property
    def status(self) -> np.ndarray:
        return np.asarray(self._whole("status"), dtype=np.uint8)

    @property
    @_string_arrays_known()
    def reasons(self) -> list[str]:
        return [str(v) for v in self._whole("reasons")]

    def block_rows(self, block: int) -> range:
        start = block * self.rows_per_chunk
        return range(start, min(start + self.rows_per_chunk, self.n_videos))

    # ------------------------------------------------------------------ selection
    def split_indices(self, split: int, part: str, only_done: bool = True) -> np.ndarray:
        """Row indices of the train (`part="train"`) or test videos of split 1..3."""
        if split not in (1, 2, 3):
            raise ScaleError(f"--split must be 1, 2 or 3, got {split}")
        code = {"train": 1, "test": 2}.get(part)
        if code is None:
            raise ScaleError(f"split part must be 'train' or 'test', got {part!r}")
        mask = self.splits[split - 1] == code
        if only_done:
            mask &= self.status == DONE
        return np.flatnonzero(mask)

    def has_split_membership(self) -> bool:
        """Whether any video is in a split (False for a folder, or a CSV without a split column)."""
        return bool((self.splits != 0).any())

    def check_complete(self, split: int, parts: Sequence[str] | None, allow_incomplete: bool = False) -> int:
        """Refuse (ScaleError) a split whose `parts` ("train", "test"; None: every video of the
        store) still have pending videos, so no command quietly works on a fraction of the data;
        with `allow_incomplete`, return how many are left out. Failed videos are a recorded outcome,
        not missing work: they never refuse."""
        if parts is None:
            rows, what = np.arange(self.n_videos), f"videos in {self.path}"
        else:
            rows = np.concatenate([self.split_indices(split, part, only_done=False) for part in parts])
            what = f"{'/'.join(parts)} videos of split {split} in {self.path}"
        status = self.status[rows]
        pending, done, failed = (int((status == s).sum()) for s in (PENDING, DONE, FAILED))
        if pending and not allow_incomplete:
            raise ScaleError(f"{pending} of the {len(rows)} {what} are still pending extraction ({done} done, "
                             f"{failed} failed); rerun `scale extract` to finish them, or pass --allow-incomplete "
                             f"to use only the {done} done ones")
        return pending

    def pending(self) -> np.ndarray:
        return np.flatnonzero(self.status == PENDING)

    def failed(self) -> np.ndarray:
        return np.flatnonzero(self.status == FAILED)

    # ------------------------------------------------------------------ reading
    @property
    def has_checksums(self) -> bool:
        if "has_checksums" not in self._kept:
            self._kept["has_checksums"] = "checksums" in self.group
        return bool(self._kept["has_checksums"])

    def _scan_inputs(self) -> tuple[np.ndarray, np.ndarray]:
        """Recorded checksums and, per block, whether it holds a done row (every block)."""
        sums = np.asarray(self._whole("checksums"), dtype=np.int64)
        done = self.status_as_stored() == DONE
        has_done = np.zeros(self.n_blocks, bool)
        np.logical_or.at(has_done, np.arange(self.n_videos) // self.rows_per_chunk, done)
        return sums, has_done

    def _block_checks(self, blocks: np.ndarray, statuses: dict[int, np.ndarray] | None = None
                      ) -> tuple[dict[int, np.ndarray], dict[int, bool]]:
        """Recorded checksums and whether it holds a done row, of just these blocks: a read checks
        what it reads at a cost in proportion to it, not to the store. `statuses`, when given, gets
        each block's status rows as read here."""
        rpc, sums, has_done = self.rows_per_chunk, {}, {}
        for run in block_runs(blocks):
            first, stop = run[0], run[-1] + 1
            recorded = np.asarray(self._rows_of("checksums", first, stop), dtype=np.int64)
            status = self._rows_of("status", first * rpc, min(stop * rpc, self.n_videos))
            if self._has_state_sums and "status" not in self._kept:  # a kept status was checked when read
                for block, problem in self._state_problems("status", np.arange(first, stop), status, recorded):
                    raise self._damage("status", block, problem)
            done = status == DONE
            for b in run:
                sums[b] = recorded[b - first]
                has_done[b] = bool(done[(b - first) * rpc:(b - first + 1) * rpc].any())
                if statuses is not None:
                    statuses[b] = status[(b - first) * rpc:(b - first + 1) * rpc]
        return sums, has_done

    def _damage(self, name: str, block: int, problem: str) -> ScaleError:
        rows = self.block_rows(block)
        return ScaleError(f"{self.path} is damaged: {name} of rows {rows.start}-{rows.stop - 1} (block {block}) "
                          f"{problem}; `scale info --verify {self.path}` lists the damaged rows and rerunning "
                          "`scale extract` re-extracts them")

    def _read_checked(self, name: str, rows: np.ndarray, blocks: np.ndarray, sums: dict, has_done: dict) -> np.ndarray:
        """Rows of a checksummed array, every block they touch checked first (ScaleError if damaged)."""
        arr = self._array(name)
        out = np.zeros((len(rows), *arr.shape[1:]), dtype=arr.dtype)
        if len(rows) == 0:
            return out
        rpc = self.rows_per_chunk
        # rows grouped by block once (a stable sort), not one scan of all rows per block
        order = np.argsort(rows // rpc, kind="stable")
        bounds = np.searchsorted(rows[order] // rpc, blocks, side="left")
        ends = np.searchsorted(rows[order] // rpc, blocks, side="right")
        where = {int(b): order[lo:hi] for b, lo, hi in zip(blocks, bounds, ends)}
        for block, data, problem in scan(arr, name, blocks, rpc, sums, has_done):
            if problem is not None or data is None:  # scan gives data whenever there is no problem
                raise self._damage(name, block, problem or "unreadable")
            pos = where[block]
            out[pos] = data[rows[pos] - block * rpc]
        return out

    @_string_arrays_known()
    def verify(self, blocks: Iterable[int] | None = None) -> list[dict]:
        """Every damaged block (of `blocks`, default all): its status or reasons, or the data of its
        done rows, not as written: [{"block", "rows": [first, last], "arrays": {name: problem}}].
        Damage in the arrays written once (labels, splits, ids) is a ScaleError naming the array."""
        if not self.has_checksums:
            return []
        for name in WHOLE:  # written once: damage there is the whole store's (a ScaleError naming the array)
            self._whole(name)
        sums, has_done = self._scan_inputs()
        wanted = np.arange(self.n_blocks) if blocks is None else np.array(sorted(set(blocks)), np.int64)
        found: dict[int, dict] = {}

        def note(block: int, name: str, problem: str) -> None:
            rows = self.block_rows(block)
            found.setdefault(block, {"block": block, "rows": [rows.start, rows.stop - 1], "arrays": {}})["arrays"][name] = problem

        if self._has_state_sums and len(wanted):
            rows = np.concatenate([np.arange(r.start, r.stop) for r in map(self.block_rows, wanted.tolist())])
            for name in ROW_STATE:
                values = np.asarray(self._rows_of(name, 0, None))[rows]
                for block, problem in self._state_problems(name, wanted, values, sums[wanted]):
                    note(block, name, problem)
        with_done = wanted[has_done[wanted]]
        for name in CHECKED:
            for block, _, trouble in scan(self._array(name), name, with_done, self.rows_per_chunk, sums, has_done):
                if trouble is not None:
                    note(block, name, trouble)
        return [found[b] for b in sorted(found)]

    def status_as_stored(self) -> np.ndarray:
        """The whole status array unchecked: for `verify` and for a writer that redoes what `verify` finds."""
        return np.asarray(self._rows_of("status", 0, None), dtype=np.uint8).copy()

    def read(self, indices: Iterable[int] | np.ndarray | slice | None = None, names: Sequence[str] = ("features", "coords"),
             verify: bool = True) -> dict[str, np.ndarray]:
        """Read some rows of some arrays without touching the rest of the store.

        `indices` may be a sorted or unsorted integer array (order is preserved) or None for all rows.
        Blocks of checksummed arrays are checked (store/integrity.py): damage is a ScaleError.
        """
        out: dict[str, np.ndarray] = {}
        if indices is None:
            sel: slice | np.ndarray = slice(None)
        elif isinstance(indices, slice):
            sel = indices
        else:
            sel = np.asarray(indices, dtype=np.int64)
        checked = [n for n in names if n in CHECKED] if verify and self.has_checksums else []
        if checked:
            rows = np.arange(self.n_videos)[sel] if isinstance(sel, slice) else sel
            blocks = np.unique(rows // self.rows_per_chunk)
            sums, has_done = self._block_checks(blocks)
        for name in names:
            if name in checked:
                out[name] = self._read_checked(name, rows, blocks, sums, has_done)
                continue
            if name in WHOLE or name in self._kept:  # kept once read (and checked): a memory copy
                if name in WHOLE and name not in self._kept:
                    self._whole(name)
                out[name] = np.array(self._kept[name][sel])
                continue
            arr = self._array(name)
            if isinstance(sel, slice):
                out[name] = np.asarray(arr[sel])
                continue
            if sel.size == 0:
                out[name] = np.zeros((0, *arr.shape[1:]), dtype=arr.dtype)
                continue
            # orthogonal selection wants sorted unique indices; restore the caller's order after
            uniq, inverse = np.unique(sel, return_inverse=True)
            data = np.asarray(arr.oindex[uniq] if arr.ndim > 1 else arr.get_orthogonal_selection(uniq))
            # already sorted and unique (split_indices): no reordering copy, which would briefly
            # double the memory of a large read (the trainer's whole train split)
            out[name] = data if uniq.size == sel.size and np.array_equal(uniq, sel) else data[inverse]
        return out

    def iter_blocks(self, indices: np.ndarray, names: Sequence[str] = ("features", "coords"), rows: int = 4096
                    ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """Yield (indices, arrays) in pieces of at most `rows` rows, for stores that do not fit in memory."""
        indices = np.asarray(indices, dtype=np.int64)
        for start in range(0, len(indices), rows):
            part = indices[start : start + rows]
            yield part, self.read(part, names)

    # ------------------------------------------------------------------ writing
    def write_rows(
        self,
        indices: Sequence[int] | np.ndarray,
        *,
        features: np.ndarray,
        coords: np.ndarray,
        boxes: np.ndarray | None = None,
        flip: np.ndarray | None = None,
        video_meta: np.ndarray | None = None,
    ) -> None:
        """Write finished rows (status done; boxes and flip zero unless given, video_meta kept unless given).

        They go through the block write of `write_block`: every block they touch is rewritten whole,
        its other rows as they are, so concurrent writers must own disjoint blocks; writing the same
        rows twice gives the same store (idempotent).
        """
        idx = np.asarray(indices, dtype=np.int64)
        n = len(idx)
        features = np.asarray(features)
        if features.shape != (n, self.n_clips, self.feature_dim):
            raise ScaleError(f"features must have shape ({n}, {self.n_clips}, {self.feature_dim}), got {features.shape}")
        if not np.isfinite(features).all():
            raise ScaleError("refusing to write non-finite features (NaN or inf)")
        given = {"features": features, "coords": np.asarray(coords),
                 "boxes": np.zeros((n, self.n_clips, 6), np.int32) if boxes is None else np.asarray(boxes),
                 "flip": np.zeros((n, self.n_clips), bool) if flip is None else np.asarray(flip)}
        if video_meta is not None:
            given["video_meta"] = np.asarray(video_meta)
        results = {int(row): {name: values[i] for name, values in given.items()} for i, row in enumerate(idx)}
        for run in block_runs(np.unique(idx // self.rows_per_chunk)):
            self._write_blocks(run[0], run[-1] + 1, results)

    def write_block(self, block: int, results: dict[int, dict]) -> None:
        """Write one whole chunk-aligned block: `results[row]` holds either the row's arrays
        (features, coords, boxes, flip, video_meta) or {"error": reason}. Rows of the block
        that are absent stay as they are in the store (e.g. already done)."""
        self._write_blocks(block, block + 1, results)

    @_string_arrays_known()
    def _write_blocks(self, first: int, stop: int, results: dict[int, dict]) -> None:
        """The one write path: blocks first..stop-1 rewritten whole, their rows in `results` set and
        the others kept; the data arrays first, then their checksums, then `status` last, so a row
        is done only once its data is in and a killed writer leaves its blocks pending."""
        rpc = self.rows_per_chunk
        rows = range(first * rpc, min(stop * rpc, self.n_videos))
        sel = slice(rows.start, rows.stop)
        current = self._read_for_rewrite(sel)
        for pos, row in enumerate(rows):
            res = results.get(row)
            if res is None:
                continue
            if "error" in res:
                current["status"][pos] = FAILED
                current["reasons"][pos] = printable(str(res["error"]))[:500]
                continue
            for name in CHECKED:
                if name in res:
                    current[name][pos] = res[name]
            current["status"][pos] = DONE
            current["reasons"][pos] = ""
        if not np.isfinite(current["features"].astype(np.float32)).all():
            raise ScaleError("refusing to write non-finite features (NaN or inf)")
        for name in (*CHECKED, "reasons"):
            array_of(self.group, name)[sel] = current[name]
        if self.has_checksums:  # of the data exactly as written (and the status about to be), before status
            names = (*CHECKED, *ROW_STATE) if self._has_state_sums else CHECKED
            array_of(self.group, "checksums")[first:stop] = np.array(
                [[crc(current[name][b * rpc - sel.start:(b + 1) * rpc - sel.start]) for name in names]
                 for b in range(first, stop)], dtype=np.int64)
        array_of(self.group, "status")[sel] = current["status"]

    def _read_for_rewrite(self, sel: slice) -> dict[str, np.ndarray]:
        """Blocks' arrays before they are rewritten; a damaged (unreadable) chunk reads as its fill
        value: its rows are being re-extracted, so nothing of it is kept."""
        out = {}
        for name in (*CHECKED, "status", "reasons"):
            arr = array_of(self.group, name)
            try:
                out[name] = np.asarray(arr[sel])
            except Exception:  # zarr's codecs raise many types on a truncated chunk
                out[name] = np.full((sel.stop - sel.start, *arr.shape[1:]), arr.fill_value, dtype=arr.dtype)
        return out

    def mark_failed(self, indices: Sequence[int] | np.ndarray, reasons: Sequence[str]) -> None:
        """Record rows as failed with their reasons (status and reasons only: their data stays as it is)."""
        idx = np.asarray(indices, dtype=np.int64)
        self._set_rows(idx, "reasons", _as_str_array([str(r)[:500] for r in reasons]))
        self._set_rows(idx, "status", np.full(len(idx), FAILED, np.uint8))
        self._reseal_state(idx)

    def reset_rows(self, indices: Sequence[int]) -> None:
        """Mark rows pending again (their data is kept until rewritten): the next extraction redoes them.
        `--retry-failed` does not call this; it treats failed rows as pending in memory (resume.shard_work)."""
        idx = np.asarray(indices, dtype=np.int64)
        self._set_rows(idx, "status", np.full(len(idx), PENDING, np.uint8))
        self._reseal_state(idx)

    @_string_arrays_known()
    def _reseal_state(self, rows: np.ndarray) -> None:
        """The status and reasons checksums of the blocks holding `rows`, after a status-only write."""
        if not self._has_state_sums or len(rows) == 0:
            return
        rpc, sums = self.rows_per_chunk, self._array("checksums")
        for run in block_runs(np.unique(rows // rpc)):
            first, stop = run[0], run[-1] + 1
            sel = slice(first * rpc, min(stop * rpc, self.n_videos))
            state = {name: np.asarray(self._array(name)[sel]) for name in ROW_STATE}
            sums[first:stop, len(CHECKED):] = np.array(
                [[crc(state[name][(b - first) * rpc:(b - first + 1) * rpc]) for name in ROW_STATE] for b in run],
                dtype=np.int64)

    @_string_arrays_known()
    def _set_rows(self, idx: np.ndarray, name: str, values: np.ndarray) -> None:
        """Rows of one array, for the status-only writes (mark_failed, reset_rows); data goes through _write_blocks."""
        arr = array_of(self.group, name)
        if len(idx) == 0:
            return
        if len(idx) == idx[-1] - idx[0] + 1 and np.all(np.diff(idx) == 1):
            arr[int(idx[0]) : int(idx[-1]) + 1] = values
        elif arr.ndim == 1:
            arr.set_orthogonal_selection(idx, values)
        else:
            arr.oindex[idx] = values

    # ------------------------------------------------------------------ summary
    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    @property
    def schema_version(self) -> int:
        return int(self._attr("schema_version"))  # checked by `open`

    @_string_arrays_known()
    def info(self, check_row_state: bool = True) -> StoreInfo:
        """Counts per status and split, how the store was made, classes and size on disk.
        `check_row_state=False` takes status and reasons as stored: for `verify`, which lists their damage."""
        if check_row_state:
            status, reasons = self.status, self.reasons
        else:
            status, reasons = self.status_as_stored(), [str(v) for v in self._rows_of("reasons", 0, None)]
        splits = self.splits
        done = status == DONE
        parts = (("train", 1), ("test", 2), ("unused", 0))
        per_split = {s + 1: {part: int(((splits[s] == code) & done).sum()) for part, code in parts} for s in range(3)}
        return StoreInfo(
            path=self.path, videos=self.n_videos, clips_per_video=self.n_clips, feature_dim=self.feature_dim,
            status={STATUS_NAMES[k]: int((status == k).sum()) for k in STATUS_NAMES},
            done_per_split=per_split if self.has_split_membership() else None,
            classes=len(self.class_names), attrs=StoreAttrs.of(self), schema_version=self.schema_version,
            disk_bytes=self.disk_bytes(),
            failures={vid: reasons[i] for i, vid in enumerate(self.video_ids) if status[i] == FAILED},
        )

    def fingerprint(self) -> str:
        """A short id of what the store holds (attrs + shape + status), for result files."""
        import hashlib

        payload = json.dumps(
            {"attrs": self.attrs, "shape": [self.n_videos, self.n_clips, self.feature_dim],
             "done": int((self.status == DONE).sum())},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

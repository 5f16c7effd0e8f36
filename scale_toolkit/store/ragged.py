"""The ragged store layout: videos with any number of clips, clip rows concatenated.

A store whose attributes say `layout: "ragged"` holds, over N videos with C clips in all:

    features  float16 [C, D]  every video's clips, video after video, chunked by clip rows
    coords    float32 [C, 6]  Eq. 5 per clip
    boxes     int32   [C, 6]  the same box in source units
    flip      bool    [C]
    clip_offsets int64 [N]    the first clip row of each video   (written once, at creation)
    clip_counts  int32 [N]    how many clips each video has       (written once, at creation)

and the per-video arrays of the fixed layout (labels, splits, video_ids, status, reasons, video_meta,
checksums) unchanged, chunked in blocks of `rows_per_chunk` videos. A block's checksums cover the
clip rows of its videos (one contiguous range), so a read checks exactly the blocks it reads, at a
cost in proportion to them. The clip counts are fixed when the store is made (an import reads every
file's shape before writing anything), which is what lets a block be rewritten in place.

Reads of a set of videos return their clips padded to the longest video *of that set* with a
validity mask `valid` [n, L] (`read`), or concatenated with their counts (`read_clips`); never
padded to the store's longest video.
"""
from __future__ import annotations

import zlib
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import zarr

from ..errors import ScaleError
from .feature_store import FeatureStore, _string_arrays_known
from .integrity import CHECKED, INTEGRITY_ATTR, ROW_STATE, block_runs, crc, scan
from .layout import DONE, FAILED, PENDING, check_layout
from .nodes import array_of
from .summary import StoreInfo

LAYOUT_ATTR, RAGGED = "layout", "ragged"
CLIP_ARRAYS = ("features", "coords", "boxes", "flip")  # one row per clip
INDEX_ARRAYS = ("clip_offsets", "clip_counts")  # per video, written once
DEFAULT_CLIPS_PER_CHUNK = 4096
_READ_BYTES = 64 << 20  # clip bytes read per zarr call: bounds the memory of a read beyond its result


def check_ragged_layout(n: int, labels: np.ndarray, splits: np.ndarray, clip_counts: Sequence[int] | np.ndarray,
                        feature_dim: int) -> np.ndarray:
    """The clip counts as int64 after checking them and the shapes a new ragged store is made with."""
    counts = np.asarray(clip_counts, dtype=np.int64)
    check_layout(n, labels, splits, 1, feature_dim)
    if counts.shape != (n,):
        raise ScaleError(f"clip counts must have shape ({n},), got {counts.shape}")
    if (counts < 0).any():
        raise ScaleError("clip counts must not be negative")
    return counts


def create_clip_arrays(group: zarr.Group, counts: np.ndarray, feature_dim: int, chunk: int,
                       clips_per_chunk: int = DEFAULT_CLIPS_PER_CHUNK) -> dict[str, int]:
    """The ragged arrays of a new store, every row pending; returns the checksums of the index arrays."""
    n, total = len(counts), int(counts.sum())
    rows = max(1, min(clips_per_chunk, total))
    mk = group.create_array
    mk("features", shape=(total, feature_dim), chunks=(rows, feature_dim), dtype="float16", fill_value=0)
    mk("coords", shape=(total, 6), chunks=(rows, 6), dtype="float32", fill_value=0)
    mk("boxes", shape=(total, 6), chunks=(rows, 6), dtype="int32", fill_value=0)
    mk("flip", shape=(total,), chunks=(rows,), dtype="bool", fill_value=False)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    mk("clip_offsets", data=offsets, chunks=(n,))
    mk("clip_counts", data=counts.astype(np.int32), chunks=(n,))
    mk("video_meta", shape=(n, 4), chunks=(chunk, 4), dtype="float32", fill_value=0)
    mk("status", shape=(n,), chunks=(chunk,), dtype="uint8", fill_value=PENDING)
    mk("reasons", shape=(n,), chunks=(chunk,), dtype=str, fill_value="")
    columns = len(CHECKED) + len(ROW_STATE)
    mk("checksums", shape=(-(-n // chunk), columns), chunks=(1, columns), dtype="int64", fill_value=-1)
    return {"clip_offsets": crc(offsets), "clip_counts": crc(counts.astype(np.int32))}


def is_ragged(group: zarr.Group) -> bool:
    return bool(group.attrs.get(LAYOUT_ATTR) == RAGGED)


class RaggedStore(FeatureStore):
    """A FeatureStore whose videos have any number of clips (see the module doc).

    `n_clips` is the longest video's clip count (what a fixed-layout consumer would have to pad to);
    `clip_counts` gives every video's.
    """

    CLIP_AXES = 1  # clip arrays are flat [C, ...] (clip_bytes sizes a clip from them)

    # ------------------------------------------------------------------ shape
    @property
    def n_videos(self) -> int:
        return int(self._array("status").shape[0])

    @property
    def n_clips(self) -> int:
        counts = self.clip_counts
        return int(counts.max()) if counts.size else 0

    @property
    def feature_dim(self) -> int:
        return int(self._array("features").shape[1])

    @property
    def n_total_clips(self) -> int:
        return int(self._array("features").shape[0])

    @property
    def clip_counts(self) -> np.ndarray:
        return self._index()[1].copy()

    @property
    def clip_offsets(self) -> np.ndarray:
        return self._index()[0].copy()

    def _index(self) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, counts), read once and checked against the checksums recorded at creation."""
        if "ragged_index" not in self._kept:
            recorded = self.group.attrs.get(INTEGRITY_ATTR)
            record: Mapping[str, Any] = recorded if isinstance(recorded, Mapping) else {}
            values = []
            for name in INDEX_ARRAYS:
                arr = self._rows_of(name, 0, None)
                if name in record and crc(arr) != record[name]:
                    raise ScaleError(f"{self.path} is damaged: its {name} array does not match its checksum; "
                                     "restore the store from a copy or import it again into a new --out")
                values.append(np.asarray(arr, dtype=np.int64))
            offsets, counts = values
            if offsets.shape != (self.n_videos,) or counts.shape != (self.n_videos,) or (counts < 0).any() or \
                    (len(counts) and int(offsets[-1] + counts[-1]) != self.n_total_clips) or \
                    (len(counts) > 1 and not np.array_equal(offsets[1:], offsets[:-1] + counts[:-1])):
                raise ScaleError(f"{self.path} is damaged: its clip_offsets and clip_counts do not describe its "
                                 f"{self.n_total_clips} clip rows; import it again into a new --out")
            self._kept["ragged_index"] = (offsets, counts)
        offsets, counts = self._kept["ragged_index"]
        return offsets, counts

    def clips_summary(self, rows: np.ndarray | None = None) -> dict[str, float]:
        """Clips per video over `rows` (default: the done videos): min, median, max, mean and total."""
        counts = self.clip_counts
        rows = np.flatnonzero(self.status == DONE) if rows is None else np.asarray(rows, np.int64)
        c = counts[rows]
        if not c.size:
            return {"videos": 0, "min": 0, "median": 0, "max": 0, "mean": 0.0, "total": 0}
        return {"videos": int(c.size), "min": int(c.min()), "median": float(np.median(c)), "max": int(c.max()),
                "mean": round(float(c.mean()), 2), "total": int(c.sum())}

    def info(self, check_row_state: bool = True) -> StoreInfo:
        from dataclasses import replace

        return replace(super().info(check_row_state), clips=self.clips_summary())

    def fingerprint(self) -> str:
        import hashlib

        counts = self.clip_counts
        return hashlib.sha256(f"{super().fingerprint()}:{crc(counts)}".encode()).hexdigest()[:16]

    # ------------------------------------------------------------------ reading
    def _block_span(self, first: int, stop: int) -> tuple[int, int]:
        """Clip rows [start, end) of blocks first..stop-1."""
        offsets, counts = self._index()
        rows = range(first * self.rows_per_chunk, min(stop * self.rows_per_chunk, self.n_videos))
        return int(offsets[rows.start]), int(offsets[rows.stop - 1] + counts[rows.stop - 1])

    def _clip_runs(self, blocks: np.ndarray) -> Iterator[list[int]]:
        """Runs of consecutive blocks, cut so that one run's clip rows stay near _READ_BYTES."""
        per_clip = 2 * self.feature_dim + 4 * 6 + 4 * 6 + 1
        for run in block_runs(np.asarray(blocks, np.int64)):
            piece: list[int] = []
            size = 0
            for b in run:
                start, end = self._block_span(b, b + 1)
                if piece and size + (end - start) * per_clip > _READ_BYTES:
                    yield piece
                    piece, size = [], 0
                piece.append(b)
                size += (end - start) * per_clip
            if piece:
                yield piece

    def _scan_clips(self, name: str, blocks: np.ndarray, sums: Mapping[int, np.ndarray] | np.ndarray,
                    has_done: Mapping[int, bool] | np.ndarray) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
        """(block, its clip rows of `name`, what is wrong or None) for each of `blocks` (sorted)."""
        arr, col = self._array(name), CHECKED.index(name)
        for run in self._clip_runs(blocks):
            start, end = self._block_span(run[0], run[-1] + 1)
            try:
                data, error = np.asarray(arr[start:end]), None
            except Exception as exc:  # a truncated or garbled chunk: zarr's codecs raise many types
                data, error = None, f"unreadable ({type(exc).__name__})"
            for b in run:
                lo, hi = self._block_span(b, b + 1)
                piece, problem = None, error
                if data is not None:
                    piece = data[lo - start:hi - start]
                elif len(run) > 1:  # find which block of the run is unreadable
                    try:
                        piece, problem = np.asarray(arr[lo:hi]), None
                    except Exception as exc:
                        problem = f"unreadable ({type(exc).__name__})"
                if problem is None and has_done[b]:
                    if sums[b][col] < 0:
                        problem = "checksum missing"
                    elif piece is None or crc(piece) != sums[b][col]:
                        problem = "checksum mismatch"
                yield b, piece, problem

    def read_clips(self, indices: Iterable[int] | np.ndarray, names: Sequence[str] = ("features", "coords"),
                   verify: bool = True) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The clips of some videos, concatenated in the order asked, and each video's count.

        Only the blocks holding those videos are read, and each is checked against its checksum
        (damage is a ScaleError)."""
        rows = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices, dtype=np.int64)
        offsets, counts = self._index()
        if rows.size and (rows.min() < 0 or rows.max() >= self.n_videos):
            raise ScaleError(f"video rows out of range 0..{self.n_videos - 1}")
        want = counts[rows]
        starts = np.concatenate([[0], np.cumsum(want)[:-1]]).astype(np.int64)
        out = {name: np.zeros((int(want.sum()), *self._array(name).shape[1:]), dtype=self._array(name).dtype)
               for name in names}
        if not rows.size:
            return out, want
        rpc = self.rows_per_chunk
        blocks = np.unique(rows // rpc)
        check = verify and self.has_checksums
        sums, has_done = self._block_checks(blocks) if check else ({}, {})
        by_block: dict[int, list[int]] = {}
        order = np.argsort(rows // rpc, kind="stable")
        for pos in order:
            by_block.setdefault(int(rows[pos] // rpc), []).append(int(pos))
        for name in names:
            if check:
                pieces = self._scan_clips(name, blocks, sums, has_done)
            else:
                pieces = ((b, np.asarray(self._array(name)[slice(*self._block_span(b, b + 1))]), None) for b in blocks.tolist())
            for block, data, problem in pieces:
                if problem is not None or data is None:
                    raise self._damage(name, block, problem or "unreadable")
                base = self._block_span(block, block + 1)[0]
                for pos in by_block[block]:
                    row = rows[pos]
                    lo = int(offsets[row]) - base
                    out[name][starts[pos]:starts[pos] + want[pos]] = data[lo:lo + counts[row]]
        return out, want

    def read(self, indices: Iterable[int] | np.ndarray | slice | None = None, names: Sequence[str] = ("features", "coords"),
             verify: bool = True) -> dict[str, np.ndarray]:
        """Per-video arrays as in the fixed layout; clip arrays padded to the longest video of this
        read, with `valid` bool [n, L] saying which clip slots hold a clip."""
        if indices is None:
            rows = np.arange(self.n_videos)
        elif isinstance(indices, slice):
            rows = np.arange(self.n_videos)[indices]
        else:
            rows = np.asarray(indices, dtype=np.int64)
        clip_names = [n for n in names if n in CLIP_ARRAYS]
        other = [n for n in names if n not in CLIP_ARRAYS and n != "valid"]
        out = super().read(indices, other, verify) if other else {}  # as given: `splits` is [3, N]
        if clip_names or "valid" in names:
            flat, counts = self.read_clips(rows, clip_names, verify)
            out.update(pad_clips(flat, counts))
        return out

    def iter_blocks(self, indices: np.ndarray, names: Sequence[str] = ("features", "coords"), rows: int = 4096
                    ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """Yield (indices, arrays) in pieces of at most `rows` videos whose padded clips stay near
        MAX_PADDED_CLIPS (a few long videos per piece, many short ones)."""
        indices = np.asarray(indices, dtype=np.int64)
        for piece in padded_pieces(self.clip_counts[indices], rows):
            part = indices[piece]
            yield part, self.read(part, names)

    # ------------------------------------------------------------------ verify
    @_string_arrays_known()
    def verify(self, blocks: Iterable[int] | None = None) -> list[dict]:
        """As FeatureStore.verify, the clip arrays checked over each block's clip rows."""
        if not self.has_checksums:
            return []
        for name in ("labels", "splits", "video_ids"):
            self._whole(name)
        self._index()
        sums, has_done = self._scan_inputs()
        wanted = np.arange(self.n_blocks) if blocks is None else np.array(sorted(set(blocks)), np.int64)
        found: dict[int, dict] = {}

        def note(block: int, name: str, problem: str) -> None:
            rows = self.block_rows(block)
            found.setdefault(block, {"block": block, "rows": [rows.start, rows.stop - 1], "arrays": {}})["arrays"][name] = problem

        if len(wanted):
            rows = np.concatenate([np.arange(r.start, r.stop) for r in map(self.block_rows, wanted.tolist())])
            for name in ROW_STATE:
                values = np.asarray(self._rows_of(name, 0, None))[rows]
                for block, problem in self._state_problems(name, wanted, values, sums[wanted]):
                    note(block, name, problem)
        with_done = wanted[has_done[wanted]]
        for name in CLIP_ARRAYS:
            for block, _, clip_problem in self._scan_clips(name, with_done, sums, has_done):
                if clip_problem is not None:
                    note(block, name, clip_problem)
        meta = self._array("video_meta")
        for block, _, meta_problem in scan(meta, "video_meta", with_done, self.rows_per_chunk, sums, has_done):
            if meta_problem is not None:
                note(block, "video_meta", meta_problem)
        return [found[b] for b in sorted(found)]

    # ------------------------------------------------------------------ writing
    def write_rows(self, indices: Sequence[int] | np.ndarray, *, features: np.ndarray, coords: np.ndarray,
                   boxes: np.ndarray | None = None, flip: np.ndarray | None = None,
                   video_meta: np.ndarray | None = None) -> None:
        raise ScaleError("a ragged store is written video by video (write_video_block), not in fixed rows")

    @_string_arrays_known()
    def write_video_block(self, block: int, videos: Iterable[tuple[int, dict]]) -> None:
        """Write one block of videos, in row order: `videos` yields (row, result) for every row of
        the block, a result being {"features": [n, D], "coords": [n, 6], "boxes"?, "flip"?,
        "video_meta"?} with n the row's clip count, or {"error": reason}. The results are taken one
        at a time (an import holds one file), their clip rows written and their checksums updated
        as they go; status is written last, so a killed writer leaves the block pending."""
        offsets, counts = self._index()
        rows = self.block_rows(block)
        sums = {name: 0 for name in CHECKED}
        status = np.full(len(rows), PENDING, np.uint8)
        reasons = np.array([""] * len(rows), dtype=object)
        meta = np.zeros((len(rows), 4), np.float32)
        seen = 0
        for row, res in videos:
            if row != rows.start + seen:
                raise ScaleError(f"internal: block {block} written out of order (row {row})")
            pos, lo, n = seen, int(offsets[row]), int(counts[row])
            seen += 1
            if "error" in res:
                status[pos], reasons[pos] = FAILED, str(res["error"])[:500]
                res = _zeros(n, self.feature_dim)
            else:
                status[pos] = DONE
                res = {**_zeros(n, self.feature_dim, only_missing=res), **res}
                if "video_meta" in res:
                    meta[pos] = res["video_meta"]
            for name in CLIP_ARRAYS:
                values = np.ascontiguousarray(res[name], dtype=self._array(name).dtype)
                if values.shape[:1] != (n,):
                    raise ScaleError(f"internal: {name} of row {row} has {values.shape[0]} clips, the store {n}")
                if n:
                    self._array(name)[lo:lo + n] = values
                sums[name] = zlib.crc32(values.tobytes(), sums[name])
        if seen != len(rows):
            raise ScaleError(f"internal: block {block} got {seen} of its {len(rows)} videos")
        sel = slice(rows.start, rows.stop)
        array_of(self.group, "video_meta")[sel] = meta
        sums["video_meta"] = crc(meta)
        array_of(self.group, "reasons")[sel] = reasons
        array_of(self.group, "checksums")[block:block + 1] = np.array(
            [[sums[name] for name in CHECKED] + [crc(status), crc(reasons)]], dtype=np.int64)
        array_of(self.group, "status")[sel] = status


def _zeros(n: int, dim: int, only_missing: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Fill values of a video's clip arrays (all, or those `only_missing` lacks; boxes and flip default to zero)."""
    full: dict[str, Callable[[], np.ndarray]] = {
        "features": lambda: np.zeros((n, dim), np.float16), "coords": lambda: np.zeros((n, 6), np.float32),
        "boxes": lambda: np.zeros((n, 6), np.int32), "flip": lambda: np.zeros(n, bool)}
    return {k: make() for k, make in full.items() if only_missing is None or k not in only_missing}


MAX_PADDED_CLIPS = 1 << 18  # clip slots of one padded piece (videos x longest of them)
MAX_ATTENTION = 1 << 26  # attention scores of one piece's masked forward (videos x longest^2)


def padded_pieces(counts: np.ndarray, max_videos: int, max_clips: int = MAX_PADDED_CLIPS,
                  max_attention: int = MAX_ATTENTION) -> Iterator[slice]:
    """Consecutive pieces of videos (with these clip counts) to read and run padded together: at
    most `max_videos`, their padded clips (n x longest) and attention scores (n x longest^2) within
    budget; a video over budget by itself is a piece of its own.

    >>> [(p.start, p.stop) for p in padded_pieces(np.array([10, 10, 500, 10]), 8, max_clips=600)]
    [(0, 2), (2, 3), (3, 4)]
    """
    counts = np.asarray(counts, np.int64)
    start, longest = 0, 0
    for i, c in enumerate(counts.tolist()):
        wide = max(longest, c, 1)
        n = i - start + 1
        if i > start and (n > max_videos or n * wide > max_clips or n * wide * wide > max_attention):
            yield slice(start, i)
            start, wide = i, max(c, 1)
        longest = wide
    if start < len(counts):
        yield slice(start, len(counts))


def pad_clips(flat: dict[str, np.ndarray], counts: np.ndarray) -> dict[str, np.ndarray]:
    """Concatenated clips -> [n, L, ...] padded to the longest of `counts`, plus `valid` bool [n, L].

    >>> out = pad_clips({"features": np.arange(5.0)[:, None]}, np.array([2, 3]))
    >>> out["features"][..., 0].tolist(), out["valid"].tolist()
    ([[0.0, 1.0, 0.0], [2.0, 3.0, 4.0]], [[True, True, False], [True, True, True]])
    """
    counts = np.asarray(counts, np.int64)
    length = int(counts.max()) if counts.size else 0
    valid = np.arange(length)[None, :] < counts[:, None]
    out = {"valid": valid}
    for name, values in flat.items():
        padded = np.zeros((len(counts), length, *values.shape[1:]), dtype=values.dtype)
        padded[valid] = values
        out[name] = padded
    return out

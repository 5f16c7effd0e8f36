"""Per-block checksums of a FeatureStore: written with the data, checked when a block is read.

A store made by this version holds `checksums` int64 [n_blocks, 5]: the CRC-32 of each block's
features, coords, boxes, flip and video_meta exactly as written (-1: never written), one chunk per
block so shards never share one, written after the data and before `status`. A deleted chunk
(it would read back as zeros), a truncated one (undecodable) or a flipped byte is then a checksum
mismatch or a read error of that block, never silently trusted data. Stores made before have no
`checksums` array and are read as before.

Since issue #26 the rest of the store is covered too: `checksums` has two more columns, the CRC
of each block's `status` and `reasons` (written with the block, rewritten by status-only writes),
and the root attributes hold `integrity`: the CRC of `labels`, `splits`, `video_ids` (written
once at creation) and of the attributes themselves. A store whose attributes say it has
checksums but lacks the array is damaged, never read as an older store.
"""
from __future__ import annotations

import json
import zlib
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import numpy as np

if TYPE_CHECKING:
    import zarr

CHECKED = ("features", "coords", "boxes", "flip", "video_meta")
ROW_STATE = ("status", "reasons")  # per block too, columns 5 and 6 of `checksums` (stores made since 0.x: 7 columns)
WHOLE = ("labels", "splits", "video_ids")  # written once at creation: one checksum each, in the attributes
INTEGRITY_ATTR = "integrity"  # {"labels", "splits", "video_ids", "attributes": crc}
ALGORITHM = "crc32 per block and array"
WINDOW_BLOCKS = 64  # blocks read per zarr call while checking: bounds the extra memory of a read


def crc(values: np.ndarray) -> int:
    """CRC-32 of an array's bytes; of the JSON list of its values for text (object) arrays."""
    values = np.asarray(values)
    if values.dtype == object or values.dtype.kind in "UT":
        return zlib.crc32(json.dumps([str(v) for v in values.tolist()], ensure_ascii=False).encode("utf-8", "surrogatepass"))
    return zlib.crc32(np.ascontiguousarray(values).tobytes())


def attributes_crc(attrs: dict) -> int:
    """CRC-32 of the store's attributes (all but the integrity record itself), as canonical JSON."""
    kept = {k: v for k, v in attrs.items() if k != INTEGRITY_ATTR}
    return zlib.crc32(json.dumps(kept, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass"))


def block_runs(blocks: np.ndarray) -> Iterator[list[int]]:
    """Sorted blocks cut into runs of consecutive blocks, at most WINDOW_BLOCKS long (one read each)."""
    run: list[int] = []
    for b in blocks.tolist():
        if run and (b != run[-1] + 1 or len(run) == WINDOW_BLOCKS):
            yield run
            run = []
        run.append(b)
    if run:
        yield run


def scan(arr: zarr.Array, name: str, blocks: np.ndarray, rows_per_chunk: int, sums: np.ndarray | Mapping[int, Any],
         has_done: np.ndarray | Mapping[int, bool]) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
    """(block, its data or None, what is wrong or None) for each of `blocks` of the zarr array `arr` (named `name`).

    `sums[b]` is block b's recorded checksum row and `has_done[b]` whether it holds a done row
    (arrays over every block, or mappings over just these). A block with done rows must match its
    recorded checksum; blocks without done rows (pending or failed) hold no data anyone trusts and
    are not checked.
    """
    col = CHECKED.index(name)
    n = arr.shape[0]
    for run in block_runs(np.asarray(blocks)):
        start, stop = run[0] * rows_per_chunk, min((run[-1] + 1) * rows_per_chunk, n)
        try:
            data = np.asarray(arr[start:stop])
        except Exception as exc:  # a truncated or garbled chunk: zarr's codecs raise many types
            data, error = None, f"unreadable ({type(exc).__name__})"
        for b in run:
            piece: np.ndarray | None
            problem: str | None
            if data is None:
                piece, problem = None, error
                if len(run) > 1:  # find which block of the run is unreadable
                    try:
                        piece = np.asarray(arr[b * rows_per_chunk:min((b + 1) * rows_per_chunk, n)])
                        problem = None
                    except Exception as exc:
                        problem = f"unreadable ({type(exc).__name__})"
            else:
                piece = data[(b - run[0]) * rows_per_chunk:(b - run[0] + 1) * rows_per_chunk]
                problem = None
            if problem is None and piece is not None and has_done[b]:  # no problem: piece was read
                if sums[b][col] < 0:
                    problem = "checksum missing"
                elif crc(piece) != sums[b][col]:
                    problem = "checksum mismatch"
            yield b, piece, problem

"""`ShardLock`: two extractions never write the same block of a store."""
from __future__ import annotations

import fcntl
from pathlib import Path

from ..contracts.store import StoreFiles
from ..errors import ScaleError
from ..locks import release, try_lock


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

    @classmethod
    def of_extracted_store(cls, store_path: str | Path, shard: tuple[int, int]) -> "ShardLock | None":
        """The lock to take before any other work when an extraction already wrote the store (it has
        .locks): a store in use is then refused before decode workers are spawned. None otherwise:
        nothing is added to a store that may yet be refused as foreign."""
        path = Path(store_path)
        return cls(path, shard) if StoreFiles.is_ours(path) and (path / ".locks").is_dir() else None

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

    def __exit__(self, *exc: object) -> None:
        for handle in reversed(self.handles):
            release(handle)
        self.handles = []

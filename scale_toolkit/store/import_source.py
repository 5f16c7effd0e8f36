"""The arrays of an `.npz` or `.h5` file to import, read whole or in row slices, trusting nothing.

`scale import` reads files made elsewhere: any byte may be wrong. This module only reads; what
the values must be is checked by store/interchange.py. What is refused here, in one line each:
a file that is not a zip / HDF5 file (random bytes, truncated), an `.npz` member holding Python
objects, a member whose declared size does not match its bytes, and any HDF5 link or storage that
points elsewhere (external links, soft links - which could loop -, external raw storage, virtual
datasets): scale reads what is inside the file and nothing it names.

Memory: `Member.rows(start, stop)` reads one slice. An uncompressed `.npz` member (np.savez) is
read by slices at its offset in the file (its CRC-32 checked as it goes); a compressed one
(np.savez_compressed) is decompressed as a stream, in order (the import reads blocks in order);
an HDF5 dataset is sliced. So a file is converted holding about one block.
"""
from __future__ import annotations

import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import ScaleError

# what a damaged zip or npy stream raises while it is read
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError,
               struct.error)


class Member:
    """One array of the input file: its shape and dtype (from its header, nothing read yet)."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype

    def read(self) -> np.ndarray:
        """The whole array (only for the small per-video arrays: labels, ids, splits, ...)."""
        if not self.shape:
            return self._scalar()
        data = self.rows(0, self.shape[0])
        self.finish()
        return data

    def rows(self, start: int, stop: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def finish(self) -> None:
        """After every row was read in order: check what the format can check (an .npz member's CRC-32)."""

    def _scalar(self) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class Source:
    """An opened input file: `names`, `member(name)`, `attrs_text` (the `attrs` JSON, or None)."""

    path: Path
    names: set[str]

    def member(self, name: str) -> Member:  # pragma: no cover - abstract
        raise NotImplementedError

    def attrs_text(self) -> Any:
        """The raw `attrs` value (a text, bytes or array), or None when absent."""
        return self.member("attrs").read() if "attrs" in self.names else None

    def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_source(path: Path, fmt: str) -> Source:
    return NpzSource(path) if fmt == "npz" else H5Source(path)


# ---------------------------------------------------------------------- .npz
class NpzMember(Member):
    def __init__(self, source: "NpzSource", info: zipfile.ZipInfo) -> None:
        self.source, self.info, self.name = source, info, info.filename[: -len(".npy")]
        self.stream: Any = None  # a column-major member: its whole array; a compressed one: its zip stream
        self.position = 0
        self.crc: int | None = None  # running CRC-32 of an uncompressed member read in order
        with self._open() as f:
            self.shape, self.fortran, self.dtype = self._header(f)
            self.offset = f.tell()
        if self.dtype.hasobject:
            raise ScaleError(f"{source.path}: '{self.name}' holds Python objects; scale reads only plain arrays "
                             "(save it with numpy arrays of numbers or strings)")
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize if self.shape else 0
        expected = self.offset + int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        if info.file_size != expected:  # the zip directory's size and the npy header disagree
            raise ScaleError(f"{source.path}: '{self.name}' is damaged: its header announces {self.shape} "
                             f"{self.dtype} but the member holds {info.file_size} bytes; export it again")
        self.mapped: np.memmap | None = None
        self.start: int | None = None
        if info.compress_type == zipfile.ZIP_STORED:
            self._locate()

    def _open(self) -> IO[bytes]:
        try:
            return self.source.zip.open(self.info)
        except _ZIP_ERRORS as exc:
            raise self.source.damaged(exc) from None

    def _header(self, f: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                return np.lib.format.read_array_header_1_0(f, max_header_size=100_000)
            if version == (2, 0):
                return np.lib.format.read_array_header_2_0(f, max_header_size=100_000)
            raise ValueError(f"unsupported npy version {version}")
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise self.source.damaged(exc) from None
        except _ZIP_ERRORS + (SyntaxError, TypeError) as exc:
            raise ScaleError(f"{self.source.path}: '{self.name}' is not a readable numpy array "
                             f"({type(exc).__name__}: {str(exc)[:120]})") from None

    def _locate(self) -> None:
        """An uncompressed member: where its data lie in the file, read there by slices (pread; a
        column-major one through a memory map); it is never loaded whole, nor kept mapped, which
        would count every page read towards the process's memory."""
        if not self.shape or 0 in self.shape:
            return
        with open(self.source.path, "rb") as raw:
            raw.seek(self.info.header_offset)
            local = raw.read(30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            raise self.source.damaged(ValueError("bad local header"))
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        start = self.info.header_offset + 30 + name_len + extra_len + self.offset
        nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        if start + nbytes > self.source.path.stat().st_size:
            raise self.source.damaged(EOFError("the file ends inside the array"))
        with open(self.source.path, "rb") as raw:  # the npy header's bytes start the member's CRC-32
            raw.seek(start - self.offset)
            self.crc = None if self.fortran else zlib.crc32(raw.read(self.offset))
        self.start = start
        if self.fortran:
            self.mapped = np.memmap(self.source.path, dtype=self.dtype, mode="r", offset=start, shape=self.shape,
                                    order="F")

    def _scalar(self) -> np.ndarray:
        with self._open() as f:
            self._header(f)
            data = self._exactly(f, self.dtype.itemsize)
        return np.frombuffer(data, self.dtype).reshape(())

    def _exactly(self, f: IO[bytes], nbytes: int) -> bytes:
        try:
            data: bytes = f.read(nbytes)
        except _ZIP_ERRORS as exc:
            raise self.source.damaged(exc) from None
        if len(data) != nbytes:
            raise self.source.damaged(EOFError(f"'{self.name}' ends early"))
        return data

    def rows(self, start: int, stop: int) -> np.ndarray:
        if self.mapped is not None:
            return np.array(self.mapped[start:stop])
        if self.start is not None:
            nbytes = (stop - start) * self.row_bytes
            data = os.pread(self.source.fd, nbytes, self.start + start * self.row_bytes)
            if len(data) != nbytes:
                raise self.source.damaged(EOFError(f"'{self.name}' ends early"))
            if self.crc is not None and start == self.position:
                self.crc, self.position = zlib.crc32(data, self.crc), stop
            return np.frombuffer(data, self.dtype).reshape((stop - start, *self.shape[1:])).copy()
        if 0 in self.shape:
            return np.zeros((stop - start, *self.shape[1:]), self.dtype)
        if self.fortran:  # column-major rows are not contiguous in a compressed stream: read it whole once
            if self.stream is None:
                with self._open() as f:
                    self._header(f)
                    whole = self._exactly(f, self.row_bytes * self.shape[0])
                self.stream = np.frombuffer(whole, self.dtype).reshape(self.shape, order="F")
            return np.array(self.stream[start:stop])
        if self.stream is None or start < self.position:  # compressed: a stream read forward
            if self.stream is not None:
                self.stream.close()
            self.stream = self._open()
            self._header(self.stream)
            self.position = 0
        if start > self.position:
            self._exactly(self.stream, (start - self.position) * self.row_bytes)
        data = self._exactly(self.stream, (stop - start) * self.row_bytes)
        self.position = stop
        return np.frombuffer(data, self.dtype).reshape((stop - start, *self.shape[1:])).copy()

    def finish(self) -> None:
        """A flipped byte in an uncompressed member fails its CRC-32 (a compressed stream checks its own
        as it reaches the end: reading one byte more makes it do so)."""
        if self.start is not None and self.crc is not None and self.position == self.shape[0]:
            if self.crc != self.info.CRC:
                raise self.source.damaged(ValueError(f"'{self.name}' fails its CRC-32: the file was damaged"))
        elif self.stream is not None and not isinstance(self.stream, np.ndarray) and self.position == self.shape[0]:
            self._exactly(self.stream, 0)
            try:
                self.stream.read(1)
            except _ZIP_ERRORS as exc:
                raise self.source.damaged(exc) from None

    def close(self) -> None:
        if self.stream is not None and not isinstance(self.stream, np.ndarray):
            self.stream.close()
        self.stream = self.mapped = None


class NpzSource(Source):
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.zip = zipfile.ZipFile(self.path)
        except _ZIP_ERRORS as exc:
            raise ScaleError(f"cannot read {self.path} as .npz: not a zip archive of numpy arrays "
                             f"({type(exc).__name__}: {str(exc)[:100]}); random bytes, a truncated copy "
                             "or another format") from None
        self.fd = os.open(self.path, os.O_RDONLY)
        self.infos = {i.filename[: -len(".npy")]: i for i in self.zip.infolist()
                      if i.filename.endswith(".npy") and not i.is_dir()}
        self.names = set(self.infos)
        self.members: dict[str, NpzMember] = {}

    def damaged(self, exc: BaseException) -> ScaleError:
        return ScaleError(f"cannot read {self.path}: the .npz is damaged or truncated ({type(exc).__name__}: "
                          f"{str(exc)[:100]}); export or copy it again")

    def member(self, name: str) -> NpzMember:
        if name not in self.members:
            self.members[name] = NpzMember(self, self.infos[name])
        return self.members[name]

    def close(self) -> None:
        for m in self.members.values():
            m.close()
        self.zip.close()
        os.close(self.fd)


# ---------------------------------------------------------------------- .h5
class H5Member(Member):
    def __init__(self, source: "H5Source", name: str, dataset: Any) -> None:
        self.source, self.name, self.dataset = source, name, dataset
        self.shape, self.dtype = tuple(int(s) for s in dataset.shape or ()), dataset.dtype

    def _get(self, selection: Any) -> np.ndarray:
        try:
            return np.asarray(self.dataset[selection])
        except Exception as exc:  # noqa: BLE001  h5py raises many types on damaged data or missing filters
            raise ScaleError(f"cannot read '{self.name}' of {self.source.path}: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:120] if str(exc) else ''}; the file is damaged or "
                             "needs an HDF5 filter this install lacks") from None

    def rows(self, start: int, stop: int) -> np.ndarray:
        return self._get(slice(start, stop))

    def _scalar(self) -> np.ndarray:
        return self._get(())


class H5Source(Source):
    def __init__(self, path: Path) -> None:
        import h5py

        self.path = Path(path)
        try:
            self.file = h5py.File(self.path, "r")
        except Exception as exc:  # noqa: BLE001  OSError mostly; h5py raises others on odd superblocks
            raise ScaleError(f"cannot read {self.path} as HDF5: not an HDF5 file, or truncated "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0][:100] if str(exc) else ''})") from None
        try:
            self.names = set(self.file.keys())
        except Exception as exc:  # noqa: BLE001
            self.file.close()
            raise ScaleError(f"cannot read {self.path}: its HDF5 root group is damaged ({type(exc).__name__})") from None

    def member(self, name: str) -> H5Member:
        import h5py

        try:
            link = self.file.get(name, getlink=True)
        except Exception as exc:  # noqa: BLE001  a user-defined link type, a damaged link table
            raise ScaleError(f"{self.path}: '{name}' cannot be read as a link ({type(exc).__name__})") from None
        if isinstance(link, (h5py.ExternalLink, h5py.SoftLink)) or not isinstance(link, h5py.HardLink):
            kind = {h5py.ExternalLink: "an external link to another file", h5py.SoftLink: "a soft link"}.get(
                type(link), "a link of an unknown kind")
            raise ScaleError(f"{self.path}: '{name}' is {kind}; scale imports only arrays stored in the file "
                             "itself and follows no links (copy the data in, e.g. h5copy or h5py's copy)")
        try:
            obj = self.file[name]
        except Exception as exc:  # noqa: BLE001
            raise ScaleError(f"{self.path}: '{name}' cannot be read ({type(exc).__name__})") from None
        if not isinstance(obj, h5py.Dataset):
            raise ScaleError(f"{self.path}: '{name}' is an HDF5 group; it must be a dataset (array)")
        if obj.external or obj.is_virtual:
            raise ScaleError(f"{self.path}: '{name}' keeps its data in other files (external storage or a virtual "
                             "dataset); scale imports only data stored in the file itself")
        return H5Member(self, name, obj)

    def attrs_text(self) -> Any:
        try:
            return self.file.attrs["attrs"] if "attrs" in self.file.attrs else None
        except Exception as exc:  # noqa: BLE001  an attribute of a type h5py cannot read
            raise ScaleError(f"{self.path}: the HDF5 attribute 'attrs' cannot be read ({type(exc).__name__}); "
                             "it must be a JSON string") from None

    def close(self) -> None:
        self.file.close()

"""Class: `scale import` as a parser of hostile input. Every malformed .npz / .h5 - numbers out of
range in any integer width (nothing wraps), text that is not text, flags that are not booleans,
HDF5 links and storage that point elsewhere, empty, zero-width, random or truncated files, flipped
bytes - is one `error:` line and exit 2 from the real CLI process, and leaves no store and no
hidden folder behind. Valid files of every supported flavour import exactly."""
from __future__ import annotations

import zipfile

import h5py
import numpy as np
import pytest

from scale_toolkit.store import FeatureStore

from .helpers import import_arrays, message_lines, scale


def _npz(path, compressed=False, **overrides):
    arrays = {**import_arrays(), **overrides}
    (np.savez_compressed if compressed else np.savez)(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def _h5(path, skip=(), **overrides):
    arrays = {**import_arrays(), **overrides}
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            if k in skip:
                continue
            if v.dtype.kind == "U":
                f.create_dataset(k, data=np.array(v, dtype=object), dtype=h5py.string_dtype())
            else:
                f.create_dataset(k, data=v)
    return path


def _flip_byte(path, member, at):
    """Flip one bit `at` bytes into the data of `member` (after its local zip header)."""
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(member)
    blob = bytearray(path.read_bytes())
    blob[info.header_offset + 30 + len(info.filename) + len(info.extra) + at] ^= 0x10
    path.write_bytes(bytes(blob))
    return path


def _bad_files(d):
    """name -> (file, words the one error line must contain)."""
    a = import_arrays()
    n = len(a["labels"])
    rng = np.random.default_rng(0)
    cases = {
        "labels-uint64-2**32+k": (_npz(d / "u64.npz", labels=np.array([0, 1, 0, 1, 0, 2**32 + 1], np.uint64)),
                                  "labels must be in"),
        "labels-float": (_npz(d / "lf.npz", labels=np.zeros(n, np.float32)), "labels must be integers"),
        "labels-bool": (_npz(d / "lb.npz", labels=np.zeros(n, bool)), "labels must be integers"),
        "splits-int16-257": (_npz(d / "s16.npz", splits=np.full((3, n), 257, np.int16)), "splits values"),
        "splits-negative": (_npz(d / "sneg.npz", splits=np.full((3, n), -255, np.int64)), "splits values"),
        "status-256": (_npz(d / "st.npz", status=np.full(n, 256, np.int32)), "status values"),
        "status-uint64-huge": (_npz(d / "st64.npz", status=np.full(n, 2**64 - 1, np.uint64)), "status values"),
        "boxes-beyond-int32": (_npz(d / "bx.npz", boxes=np.full((n, 4, 6), 2**31, np.int64)), "boxes must fit int32"),
        "video-meta-negative-count": (_npz(d / "vm.npz", video_meta=np.full((n, 4), -5, np.float32)), "video_meta"),
        "flip-string-no": (_npz(d / "flip.npz", flip=np.full((n, 4), "no")), "flip must be booleans"),
        "flip-int-2": (_npz(d / "flip2.npz", flip=np.full((n, 4), 2, np.int8)), "flip must be booleans"),
        "coords-complex": (_npz(d / "cc.npz", coords=a["coords"].astype(np.complex64)), "coords must be real numbers"),
        "ids-numbers": (_npz(d / "idn.npz", video_ids=np.arange(n)), "video_ids must be text"),
        "ids-bytes-not-utf8": (_npz(d / "idb.npz", video_ids=np.array([b"v%d\xff" % i for i in range(n)])), "not UTF-8"),
        "ids-2d": (_npz(d / "id2.npz", video_ids=np.array([["a", "b", "c"], ["d", "e", "f"]])), "video_ids must have shape"),
        "ids-empty-string": (_npz(d / "ide.npz", video_ids=np.array(["", "a", "b", "c", "d", "e"])), "empty"),
        "class-names-numbers": (_npz(d / "cn.npz", class_names=np.array([1, 2])), "class_names must be text"),
        "class-names-huge-entries": (_npz(d / "bomb.npz", compressed=True, class_names=np.array(["a" * 100000, "b"])),
                                     "at most"),
        "features-D=0": (_npz(d / "d0.npz", features=np.zeros((n, 4, 0), np.float32)), "features is empty"),
        "features-int": (_npz(d / "fi.npz", features=np.zeros((n, 4, 8), np.int32)), "features must be a float array"),
        "escaped-row-negative": (_npz(d / "er.npz", attrs=np.array('{"escaped_video_ids": [-1]}')), "escaped_video_ids"),
        "attrs-deeply-nested": (_npz(d / "deep.npz", attrs=np.array("[" * 100000 + "]" * 100000)), "attrs must be a JSON"),
        "npz-empty-archive": (_npz(d / "none.npz", **{k: None for k in a}), "holds no arrays"),
        "npz-zero-bytes": (d / "zero.npz", "not a zip archive"),
        "npz-random-bytes": (d / "rand.npz", "not a zip archive"),
        "npz-truncated": (d / "trunc.npz", "not a zip archive"),
        "npz-object-array": (d / "obj.npz", "Python objects"),
        "npz-flipped-byte-stored": (_flip_byte(_npz(d / "fs.npz", features=rng.standard_normal((n, 4, 512)).astype(np.float32)),
                                               "features.npy", 4000), "damaged"),
        "npz-flipped-byte-compressed": (_flip_byte(_npz(d / "fc.npz", compressed=True), "features.npy", 60), "damaged"),
        "h5-random-bytes": (d / "rand.h5", "not an HDF5 file"),
        "h5-truncated": (d / "trunc.h5", "HDF5"),
        "h5-external-link": (d / "ext.h5", "external link"),
        "h5-soft-link-loop": (d / "loop.h5", "soft link"),
        "h5-external-storage": (d / "extstore.h5", "other files"),
        "h5-ids-not-utf8": (d / "latin.h5", "not UTF-8"),
        "h5-flip-strings": (_h5(d / "hflip.h5", flip=np.full((n, 4), "no")), "flip must be booleans"),
    }
    (d / "zero.npz").write_bytes(b"")
    (d / "rand.npz").write_bytes(rng.bytes(4096))
    (d / "rand.h5").write_bytes(rng.bytes(4096))
    ok = _npz(d / "okfile.npz").read_bytes()
    (d / "trunc.npz").write_bytes(ok[: len(ok) // 2])
    _npz(d / "obj.npz", features=np.full((n, 4, 8), None, dtype=object))  # np.savez pickles object arrays
    okh = _h5(d / "okfile.h5").read_bytes()
    (d / "trunc.h5").write_bytes(okh[: len(okh) // 2])
    _h5(d / "other.h5")
    _h5(d / "ext.h5", skip=("features",))
    with h5py.File(d / "ext.h5", "a") as f:
        f["features"] = h5py.ExternalLink(str(d / "other.h5"), "/features")
    _h5(d / "loop.h5", skip=("features",))
    with h5py.File(d / "loop.h5", "a") as f:
        f["features"] = h5py.SoftLink("/features")
    (d / "raw.bin").write_bytes(a["labels"].astype("<i4").tobytes())
    _h5(d / "extstore.h5", skip=("labels",))
    with h5py.File(d / "extstore.h5", "a") as f:
        f.create_dataset("labels", shape=(n,), dtype="<i4", external=[(str(d / "raw.bin"), 0, n * 4)])
    _h5(d / "latin.h5", skip=("video_ids",))
    with h5py.File(d / "latin.h5", "a") as f:
        f.create_dataset("video_ids", data=np.array([b"caf\xe9%d" % i for i in range(n)], dtype="S8"))
    return cases


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return _bad_files(tmp_path_factory.mktemp("hostile"))


CASE_NAMES = [  # the keys of _bad_files (test_case_list_is_complete keeps them equal)
    "labels-uint64-2**32+k", "labels-float", "labels-bool", "splits-int16-257", "splits-negative", "status-256",
    "status-uint64-huge", "boxes-beyond-int32", "video-meta-negative-count", "flip-string-no", "flip-int-2",
    "coords-complex", "ids-numbers", "ids-bytes-not-utf8", "ids-2d", "ids-empty-string", "class-names-numbers",
    "class-names-huge-entries", "features-D=0", "features-int", "escaped-row-negative", "attrs-deeply-nested",
    "npz-empty-archive",
    "npz-zero-bytes", "npz-random-bytes", "npz-truncated", "npz-object-array", "npz-flipped-byte-stored",
    "npz-flipped-byte-compressed", "h5-random-bytes", "h5-truncated", "h5-external-link", "h5-soft-link-loop",
    "h5-external-storage", "h5-ids-not-utf8", "h5-flip-strings",
]


def test_case_list_is_complete(bad):
    assert sorted(bad) == sorted(CASE_NAMES)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_hostile_file_is_one_line_exit_2_and_writes_nothing(bad, name, tmp_path):
    src, words = bad[name]
    code, out, err = scale("import", src, "--out", tmp_path / "s.zarr")
    lines = message_lines(err)
    assert code == 2, (name, code, out, err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], (name, err[-2000:])
    assert "Traceback" not in err and "interrupted" not in err
    assert list(tmp_path.iterdir()) == []  # no store, no hidden .s.zarr.importing-PID


def test_text_ids_of_every_flavour_import_exactly(tmp_path):
    """bytes ids (npz 'S', HDF5 fixed-length bytes) are decoded strictly as UTF-8 - never "b'...'";
    non-ASCII fixed-length ids keep every character; 0/1 integer flips are booleans."""
    n = 6
    ids = [f"vidé/ß{i}.avi" for i in range(n)]
    _npz(tmp_path / "b.npz", video_ids=np.array([i.encode() for i in ids]), flip=np.eye(n, 4, dtype=np.uint8))
    _h5(tmp_path / "f.h5", skip=("video_ids",))
    with h5py.File(tmp_path / "f.h5", "a") as f:
        f.create_dataset("video_ids", data=np.array([i.encode() for i in ids], dtype="S20"))
    _npz(tmp_path / "u.npz", video_ids=np.array(ids))
    for src in ("b.npz", "f.h5", "u.npz"):
        code, _, err = scale("import", tmp_path / src, "--out", tmp_path / f"{src}.zarr")
        assert code == 0, err
        fs = FeatureStore.open(tmp_path / f"{src}.zarr")
        assert fs.video_ids == ids, src
    flip = FeatureStore.open(tmp_path / "b.npz.zarr").read(None, names=("flip",))["flip"]
    np.testing.assert_array_equal(flip, np.eye(n, 4, dtype=bool))


def test_block_by_block_conversion_equals_the_file(tmp_path, monkeypatch):
    """Many small blocks (compressed stream and uncompressed slices alike) give exactly the arrays of
    the file; failed rows keep their reasons, pending rows stay pending."""
    from scale_toolkit.store import interchange

    n, v, d = 53, 3, 7
    rng = np.random.default_rng(1)
    lo = rng.random((n, v, 3)) * 0.5
    arrays = {"features": rng.standard_normal((n, v, d)).astype(np.float32),
              "coords": np.concatenate([lo, lo + 0.5], axis=2).astype(np.float32),
              "labels": (np.arange(n) % 3).astype(np.int64), "video_ids": np.array([f"x{i}" for i in range(n)]),
              "class_names": np.array(["a", "b", "c"]), "splits": np.ones((3, n), np.int16),
              "boxes": rng.integers(0, 500, (n, v, 6)).astype(np.int64), "flip": rng.random((n, v)) > 0.5,
              "video_meta": rng.random((n, 4)).astype(np.float64) * 100,
              "status": np.where(np.arange(n) % 11 == 5, 2, np.where(np.arange(n) % 13 == 7, 0, 1)).astype(np.uint8),
              "reasons": np.array([f"broken {i}" if i % 11 == 5 else "" for i in range(n)])}
    monkeypatch.setattr(interchange, "_BLOCK_BYTES", 4 * v * d * 4)  # 4-row store blocks, one per step
    for compressed in (False, True):
        src = tmp_path / f"in{compressed}.npz"
        (np.savez_compressed if compressed else np.savez)(src, **arrays)
        fs = interchange.import_features(src, tmp_path / f"s{compressed}.zarr", rows_per_chunk=4)
        done = arrays["status"] == 1
        got = fs.read(None, names=("features", "coords", "boxes", "flip", "video_meta"))
        np.testing.assert_array_equal(got["features"][done], arrays["features"][done].astype(np.float16))
        np.testing.assert_array_equal(got["coords"][done], arrays["coords"][done])
        np.testing.assert_array_equal(got["boxes"][done], arrays["boxes"][done])
        np.testing.assert_array_equal(got["flip"][done], arrays["flip"][done])
        np.testing.assert_array_equal(got["video_meta"][done], arrays["video_meta"][done].astype(np.float32))
        np.testing.assert_array_equal(fs.status, arrays["status"])
        assert [fs.reasons[i] for i in fs.failed()] == [f"broken {i}" for i in range(n) if i % 11 == 5]
        assert fs.verify() == []


def test_nan_is_counted_over_every_block(tmp_path, monkeypatch):
    from scale_toolkit.errors import ScaleError
    from scale_toolkit.store import interchange

    a = import_arrays(n=12)
    a["features"][[1, 7, 11], 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", **a)
    monkeypatch.setattr(interchange, "_BLOCK_BYTES", 1)
    with pytest.raises(ScaleError, match="NaN or inf in 3 video"):
        interchange.import_features(tmp_path / "nan.npz", tmp_path / "s.zarr", rows_per_chunk=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.npz"]

"""Manifests: which videos a dataset has, their labels and their split membership.

Four layouts are understood (``load_manifest(dataset=...)``):

* ``ucf101`` — ``<root>/<Class>/v_<Class>_gXX_cYY.avi`` plus the official
  ``ucfTrainTestlist`` (classInd.txt, trainlist0{1,2,3}.txt, testlist0{1,2,3}.txt).
  Class order is classInd.txt order (label = index - 1). Split entries are matched
  to files on disk by file name, case-insensitively (the ``HandstandPushups``
  folder holds ``v_HandStandPushups_*`` files; copies in the wild differ in case).
* ``hmdb51`` — ``<root>/<class>/<name>.avi`` plus the official
  ``testTrainMulti_7030_splits`` (``<class>_test_split{1,2,3}.txt``, lines
  ``<name>.avi <flag>`` with 1 = train, 2 = test, 0 = unused). Class order is the
  sorted class names, so ``sword`` < ``sword_exercise``; sorting the split *file*
  names would give the opposite order for that pair.
* ``folder`` — ``<root>/<class>/.../<video>``; classes are the sorted sub-folder
  names; videos directly under root get label -1; no split membership.
* ``csv`` — a CSV file with a header row and columns ``path,label[,split]``. Labels that
  are all non-negative integers keep their numeric meaning (label ``10`` is class index 10;
  class names are ``"0"`` .. ``"max"``); any other labels are class names in sorted string
  order. The store keeps the order as its ``class_names``.

A ``folder`` dataset, and a ``csv`` one without a split column, have no split membership:
``scale train`` then uses every extracted video as SSL training data; probing needs labelled
train and test videos, i.e. a CSV with a split column.

Split membership is ``splits = (s1, s2, s3)`` with 1 = train, 2 = test, 0 = unused
(the HMDB51 convention, used for every dataset). For ucf101/hmdb51, ``videos``
holds the split-listed videos found on disk; listed-but-absent videos go to
``missing`` and video files that no split file lists go to ``unlisted`` (reported,
not extracted). Walking never follows directory symlinks, and a directory whose
name looks like a video is kept as a video so that extraction records it as failed.
"""

from __future__ import annotations

import csv
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from scale_toolkit.errors import ScaleError

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".mpg", ".mpeg", ".m4v")
DATASETS = ("ucf101", "hmdb51", "folder", "csv")
NUM_SPLITS = 3
TRAIN, TEST, UNUSED = 1, 2, 0


@dataclass(frozen=True)
class VideoRecord:
    """One video: stable id (posix path relative to the dataset root), absolute path,
    label (-1 unknown), class name and membership in splits 1..3 (1 train, 2 test, 0 unused)."""

    video_id: str
    path: Path
    label: int
    class_name: str
    splits: tuple[int, int, int] = (0, 0, 0)


@dataclass
class Manifest:
    """The videos of a dataset present on disk (sorted by id) and what the split files disagree on."""

    dataset: str
    root: Path
    class_names: list[str]
    videos: list[VideoRecord]
    missing: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)

    def split_videos(self, split: int, membership: int) -> list[VideoRecord]:
        """Videos whose membership in ``split`` (1..3) equals ``membership`` (1 train, 2 test, 0 unused)."""
        if split not in (1, 2, 3):
            raise ScaleError(f"split must be 1, 2 or 3, got {split}")
        return [v for v in self.videos if v.splits[split - 1] == membership]


def is_video_name(name: str) -> bool:
    return name.lower().endswith(VIDEO_EXTENSIONS)


def load_manifest(
    dataset: str,
    root: Path,
    splits_dir: Path | None = None,
    csv_path: Path | None = None,
) -> Manifest:
    """List a dataset. ``dataset`` is one of ``ucf101``, ``hmdb51``, ``folder``, ``csv``.

    Raises ScaleError (one line) for a missing root, missing split files, or split
    files that name none of the videos on disk.
    """
    if dataset not in DATASETS:
        raise ScaleError(f"unknown dataset {dataset!r}: choose one of {', '.join(DATASETS)}")
    root = Path(root).expanduser()
    splits_dir = Path(splits_dir).expanduser() if splits_dir is not None else None
    csv_path = Path(csv_path).expanduser() if csv_path is not None else None
    if dataset == "csv":
        return _load_csv(root, splits_dir, csv_path)
    if not root.is_dir():
        raise ScaleError(f"video root {root} is not a directory: pass --root pointing at the {dataset} videos")
    if dataset == "ucf101":
        return _load_ucf101(root, splits_dir)
    if dataset == "hmdb51":
        return _load_hmdb51(root, splits_dir)
    return _load_folder(root)


# --------------------------------------------------------------------------- walking


def _walk_videos(root: Path) -> list[str]:
    """Posix paths (relative to root) of video files, and of directories named like videos.

    Directory symlinks are never followed (no loops); unreadable folders are skipped.
    """
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = Path(dirpath).relative_to(root)
        keep = []
        for d in dirnames:
            if is_video_name(d):
                found.append((rel_dir / d).as_posix())
            else:
                keep.append(d)
        dirnames[:] = sorted(keep)
        found.extend((rel_dir / f).as_posix() for f in filenames if is_video_name(f))
    return sorted(found)


def _absolute(root: Path) -> Path:
    return Path(os.path.abspath(root))


def _read_lines(path: Path) -> list[str]:
    """Non-empty stripped lines; CRLF and LF both work."""
    try:
        # surrogateescape: a non-UTF-8 name in a split file still matches the same bytes on disk
        text = path.read_text(encoding="utf-8-sig", errors="surrogateescape")
    except OSError as exc:
        raise ScaleError(f"cannot read split file {path}: {exc.strerror or exc}") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _default_splits_dir(root: Path, names: tuple[str, ...], what: str) -> Path:
    for base in (root, root.parent):
        for name in names:
            if (base / name).is_dir():
                return base / name
    raise ScaleError(f"no {what} split files found next to {root}: pass --splits DIR")


# --------------------------------------------------------------------------- UCF101


def _load_ucf101(root: Path, splits_dir: Path | None) -> Manifest:
    if (root / "UCF-101").is_dir():
        root = root / "UCF-101"
    if splits_dir is None:
        splits_dir = _default_splits_dir(root, ("ucfTrainTestlist",), "UCF101")
    if not splits_dir.is_dir():
        raise ScaleError(f"UCF101 split directory {splits_dir} does not exist: pass --splits DIR holding classInd.txt")
    needed = ["classInd.txt"] + [f"{kind}list0{k}.txt" for k in (1, 2, 3) for kind in ("train", "test")]
    absent = [n for n in needed if not (splits_dir / n).is_file()]
    if absent:
        raise ScaleError(f"UCF101 split files missing from {splits_dir}: {', '.join(absent)}")

    class_names: list[str] = []
    for number, line in enumerate(_read_lines(splits_dir / "classInd.txt"), start=1):
        parts = line.split()
        if len(parts) != 2 or parts[0] != str(number):
            raise ScaleError(f"{splits_dir / 'classInd.txt'} line {number} should read '{number} <ClassName>', got {line!r}")
        class_names.append(parts[1])
    label_of = {name.lower(): i for i, name in enumerate(class_names)}

    # entry key (lower-case file name) -> [listed path, label, (s1, s2, s3)]
    entries: dict[str, list] = {}
    for k in (1, 2, 3):
        for kind, membership in (("train", TRAIN), ("test", TEST)):
            list_file = splits_dir / f"{kind}list0{k}.txt"
            for line_no, line in enumerate(_read_lines(list_file), start=1):
                parts = line.split()
                listed = parts[0].replace("\\", "/")
                class_dir = listed.split("/")[0].lower() if "/" in listed else ""
                if class_dir not in label_of:
                    raise ScaleError(f"{list_file} line {line_no}: class folder of {listed!r} is not in classInd.txt")
                label = label_of[class_dir]
                if len(parts) > 1 and parts[1] != str(label + 1):
                    raise ScaleError(f"{list_file} line {line_no}: label {parts[1]} disagrees with classInd.txt ({label + 1})")
                key = listed.rsplit("/", 1)[-1].lower()
                entry = entries.setdefault(key, [listed, label, [UNUSED] * NUM_SPLITS])
                if entry[2][k - 1] not in (UNUSED, membership):
                    raise ScaleError(f"{listed} is in both trainlist0{k}.txt and testlist0{k}.txt")
                entry[2][k - 1] = membership

    by_name = _index_by_file_name(_walk_videos(root))
    videos, missing = [], []
    matched: set[str] = set()
    for key, (listed, label, splits) in entries.items():
        rel = _pick(by_name.get(key, []), listed.split("/")[0])
        if rel is None:
            missing.append(listed)
            continue
        matched.add(rel)
        videos.append(VideoRecord(rel, _absolute(root) / rel, label, class_names[label], tuple(splits)))
    return _finish("ucf101", root, class_names, videos, missing, by_name, matched, splits_dir)


def _index_by_file_name(rel_paths: list[str]) -> dict[str, list[str]]:
    index: dict[str, list[str]] = defaultdict(list)
    for rel in rel_paths:
        index[rel.rsplit("/", 1)[-1].lower()].append(rel)
    return index


def _pick(candidates: list[str], class_dir: str) -> str | None:
    """The candidate in the listed class folder (case-insensitive), else the only candidate."""
    for rel in candidates:
        if "/" in rel and rel.split("/")[-2].lower() == class_dir.lower():
            return rel
    return candidates[0] if len(candidates) == 1 else None


def _finish(dataset, root, class_names, videos, missing, by_name, matched, splits_dir) -> Manifest:
    if not videos:
        raise ScaleError(
            f"the {dataset} split files in {splits_dir} name none of the videos under {root}: "
            "check --root and --splits"
        )
    unlisted = sorted(rel for rels in by_name.values() for rel in rels if rel not in matched)
    videos.sort(key=lambda v: v.video_id)
    return Manifest(dataset, _absolute(root), class_names, videos, sorted(missing), unlisted)


# --------------------------------------------------------------------------- HMDB51

_HMDB_SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<k>[123])\.txt$")


def _load_hmdb51(root: Path, splits_dir: Path | None) -> Manifest:
    if splits_dir is None:
        splits_dir = _default_splits_dir(
            root, ("testTrainMulti_7030_splits", "hmdb51_splits", "splits"), "HMDB51"
        )
    if not splits_dir.is_dir():
        raise ScaleError(f"HMDB51 split directory {splits_dir} does not exist: pass --splits DIR")
    split_files: dict[str, dict[int, Path]] = defaultdict(dict)
    for path in splits_dir.iterdir():
        match = _HMDB_SPLIT_FILE.match(path.name)
        if match and path.is_file():
            split_files[match["cls"]][int(match["k"])] = path
    if not split_files:
        raise ScaleError(f"no HMDB51 split files (<class>_test_split1.txt ...) in {splits_dir}")
    for cls, files in sorted(split_files.items()):
        absent = [f"{cls}_test_split{k}.txt" for k in (1, 2, 3) if k not in files]
        if absent:
            raise ScaleError(f"HMDB51 split files missing from {splits_dir}: {', '.join(absent)}")

    class_names = sorted(split_files)  # sorted class names: sword < sword_exercise
    entries: dict[tuple[str, str], list[int]] = {}
    for cls in class_names:
        for k in (1, 2, 3):
            path = split_files[cls][k]
            for line_no, line in enumerate(_read_lines(path), start=1):
                parts = line.split()
                if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                    raise ScaleError(f"{path} line {line_no} should read '<name>.avi <0|1|2>', got {line!r}")
                entries.setdefault((cls, parts[0]), [UNUSED] * NUM_SPLITS)[k - 1] = int(parts[1])

    label_of = {cls: i for i, cls in enumerate(class_names)}
    by_name = _index_by_file_name(_walk_videos(root))
    videos, missing = [], []
    matched: set[str] = set()
    for (cls, name), splits in entries.items():
        rel = _pick(by_name.get(name.lower(), []), cls)
        if rel is None:
            missing.append(f"{cls}/{name}")
            continue
        matched.add(rel)
        videos.append(VideoRecord(rel, _absolute(root) / rel, label_of[cls], cls, tuple(splits)))
    return _finish("hmdb51", root, class_names, videos, missing, by_name, matched, splits_dir)


# --------------------------------------------------------------------------- folder


def _load_folder(root: Path) -> Manifest:
    rel_paths = _walk_videos(root)
    if not rel_paths:
        raise ScaleError(f"no video files ({' '.join(VIDEO_EXTENSIONS)}) under {root}")
    class_names = sorted({rel.split("/")[0] for rel in rel_paths if "/" in rel})
    label_of = {cls: i for i, cls in enumerate(class_names)}
    videos = []
    for rel in rel_paths:
        cls = rel.split("/")[0] if "/" in rel else ""
        videos.append(VideoRecord(rel, _absolute(root) / rel, label_of.get(cls, -1), cls, (0, 0, 0)))
    return Manifest("folder", _absolute(root), class_names, videos, [], [])


# --------------------------------------------------------------------------- CSV

_CSV_SPLIT_VALUES = {"train": TRAIN, "1": TRAIN, "test": TEST, "2": TEST, "": UNUSED, "0": UNUSED, "unused": UNUSED}


def _load_csv(root: Path, splits_dir: Path | None, csv_path: Path | None) -> Manifest:
    """CSV with header ``path,label[,split]``: label is a class name (empty = unknown),
    path is relative to root or absolute, split ("train"/"test"/1/2, empty = unused)
    sets the membership in split 1 only. Without csv_path, a .csv given as splits or
    root is used (root then becomes its folder)."""
    csv_path, root = _csv_file_and_root(root, splits_dir, csv_path)
    entries = _csv_entries(csv_path)
    class_names, label_of = _csv_classes({label for _, label, _ in entries if label})
    abs_root = _absolute(root)
    videos, missing, seen = [], [], set()
    for raw_path, label_name, membership in entries:
        path = Path(raw_path).expanduser()
        path = _absolute(path if path.is_absolute() else root / path)
        try:
            video_id = path.relative_to(abs_root).as_posix()
        except ValueError:
            video_id = path.as_posix()
        if video_id in seen:
            raise ScaleError(f"{csv_path} lists {raw_path} twice")
        seen.add(video_id)
        if not os.path.lexists(path):
            missing.append(video_id)
            continue
        videos.append(VideoRecord(video_id, path, label_of.get(label_name, -1), label_name, (membership, 0, 0)))
    if not videos:
        raise ScaleError(f"{csv_path} names none of the videos under {root}: check --root")
    videos.sort(key=lambda v: v.video_id)
    return Manifest("csv", abs_root, class_names, videos, sorted(missing), [])


def _csv_file_and_root(root: Path, splits_dir: Path | None, csv_path: Path | None) -> tuple[Path, Path]:
    """The CSV file (--csv, else a .csv given as --splits or --root) and the folder its paths are relative to."""
    if csv_path is None:
        for candidate in (splits_dir, root):
            if candidate is not None and candidate.suffix.lower() == ".csv":
                csv_path = candidate
                break
    if csv_path is None:
        raise ScaleError("dataset csv needs the CSV file: pass --csv FILE.csv (columns path,label[,split])")
    if not csv_path.is_file():
        raise ScaleError(f"CSV file {csv_path} does not exist")
    if root == csv_path or root.is_file():
        root = csv_path.parent
    if not root.is_dir():
        raise ScaleError(f"video root {root} is not a directory: pass --root for the paths in {csv_path.name}")
    return csv_path, root


def _csv_entries(csv_path: Path) -> list[tuple[str, str, int]]:
    """(path as written, label, membership in split 1) of each non-blank row after the header."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except UnicodeDecodeError as exc:
        line = csv_path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ScaleError(f"{csv_path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} on line {line}); "
                         f"save it as UTF-8, e.g. iconv -f latin1 -t utf-8 {csv_path.name}") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise ScaleError(f"CSV file {csv_path} is empty: it needs a header row path,label[,split]")
    header = [cell.strip().lower() for cell in rows[0]]
    if "path" not in header or "label" not in header:
        raise ScaleError(f"CSV file {csv_path} needs a header row with columns path,label[,split], got {rows[0]}")
    col_path, col_label = header.index("path"), header.index("label")
    col_split = header.index("split") if "split" in header else None
    entries = []
    for line_no, row in enumerate(rows[1:], start=2):
        cells = row + [""] * (len(header) - len(row))
        raw_path, label_name = cells[col_path].strip(), cells[col_label].strip()
        if not raw_path:
            raise ScaleError(f"{csv_path} line {line_no}: empty path")
        split_value = cells[col_split].strip().lower() if col_split is not None else ""
        if split_value not in _CSV_SPLIT_VALUES:
            raise ScaleError(f"{csv_path} line {line_no}: split must be train/test/1/2 or empty, got {split_value!r}")
        entries.append((raw_path, label_name, _CSV_SPLIT_VALUES[split_value]))
    return entries


# integer labels above this are taken as names: a class list of a million empty classes helps no one
_MAX_NUMERIC_LABEL = 100_000


def _csv_classes(labels: set[str]) -> tuple[list[str], dict[str, int]]:
    """Class names (index -> name) and each CSV label's index. Labels that are all non-negative
    integers keep their value as the index ("10" is class 10, not the first of the string order
    "10" < "2" < "9"); other labels are names in sorted string order.

    >>> names, index = _csv_classes({"10", "2", "09"})
    >>> len(names), names[9], index["09"], index["10"]
    (11, '9', 9, 10)
    >>> _csv_classes({"walk", "run"})
    (['run', 'walk'], {'run': 0, 'walk': 1})
    """
    if labels and all(label.isdigit() for label in labels):
        top = max(int(label) for label in labels)
        if top <= _MAX_NUMERIC_LABEL:
            return [str(i) for i in range(top + 1)], {label: int(label) for label in labels}
    names = sorted(labels)
    return names, {name: i for i, name in enumerate(names)}

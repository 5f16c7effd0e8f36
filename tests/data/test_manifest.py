"""Manifests against the official UCF101/HMDB51 split files, fake roots and the real mini dirs."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from scale_toolkit.data.manifest import load_manifest
from scale_toolkit.errors import ScaleError


def _ucf_entries(splits: Path) -> list[str]:
    names = set()
    for name in ("trainlist01.txt", "testlist01.txt"):
        for line in (splits / name).read_text().splitlines():
            if line.strip():
                names.add(line.split()[0])
    return sorted(names)


def _hmdb_entries(splits: Path) -> list[tuple[str, str]]:
    entries = set()
    for path in splits.glob("*_test_split1.txt"):
        cls = path.name[: -len("_test_split1.txt")]
        for line in path.read_text().splitlines():
            if line.strip():
                entries.add((cls, line.split()[0]))
    return sorted(entries)


def _touch_all(root: Path, rel_paths) -> None:
    for rel in rel_paths:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


@pytest.fixture
def ucf_splits(shared_data) -> Path:
    return shared_data / "splits" / "ucf101"


@pytest.fixture
def hmdb_splits(shared_data) -> Path:
    return shared_data / "splits" / "hmdb51"


@pytest.fixture(scope="module")
def full_ucf(tmp_path_factory) -> Path:
    """Empty files named after every video of the official UCF101 split files (read-only use)."""
    from tests.conftest import SHARED_DATA

    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    root = tmp_path_factory.mktemp("full_ucf") / "UCF-101"
    _touch_all(root, _ucf_entries(SHARED_DATA / "splits" / "ucf101"))
    return root


@pytest.fixture
def fake_ucf(tmp_path, ucf_splits) -> Path:
    """A few classes of UCF101 as empty files; every other listed video is missing."""
    root = tmp_path / "UCF-101"
    keep = ("HandstandPushups/", "YoYo/", "ApplyEyeMakeup/")
    _touch_all(root, [rel for rel in _ucf_entries(ucf_splits) if rel.startswith(keep)])
    return root


@pytest.fixture(scope="module")
def full_hmdb(tmp_path_factory) -> Path:
    """Empty files named after every video of the official HMDB51 split files (read-only use)."""
    from tests.conftest import SHARED_DATA

    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    root = tmp_path_factory.mktemp("full_hmdb") / "hmdb51"
    _touch_all(root, [f"{cls}/{name}" for cls, name in _hmdb_entries(SHARED_DATA / "splits" / "hmdb51")])
    return root


def _counts(manifest, split: int) -> tuple[int, int, int]:
    values = [v.splits[split - 1] for v in manifest.videos]
    return values.count(1), values.count(2), values.count(0)


# --------------------------------------------------------------------------- UCF101


def test_ucf101_official_split_counts(full_ucf, ucf_splits):
    fake_ucf = full_ucf
    manifest = load_manifest("ucf101", fake_ucf, ucf_splits)
    assert len(manifest.class_names) == 101
    assert manifest.class_names[0] == "ApplyEyeMakeup" and manifest.class_names[-1] == "YoYo"
    assert len(manifest.videos) == 13320
    assert manifest.missing == [] and manifest.unlisted == []
    assert _counts(manifest, 1) == (9537, 3783, 0)
    assert _counts(manifest, 2) == (9586, 3734, 0)
    assert _counts(manifest, 3) == (9624, 3696, 0)
    ids = [v.video_id for v in manifest.videos]
    assert ids == sorted(ids)
    for video in manifest.videos[::997]:
        assert video.class_name == manifest.class_names[video.label]
        assert video.video_id.split("/")[0] == video.class_name
        assert video.path == fake_ucf.absolute() / video.video_id


def test_ucf101_handstand_pushups_trap_and_case_insensitive_match(fake_ucf, ucf_splits):
    folder = fake_ucf / "HandstandPushups"
    odd = sorted(folder.iterdir())[0]
    renamed = odd.with_name(odd.name.lower())  # a copy in the wild with another case
    odd.rename(renamed)
    manifest = load_manifest("ucf101", fake_ucf, ucf_splits)
    assert not any(m.startswith("HandstandPushups/") for m in manifest.missing) and manifest.unlisted == []
    handstand = [v for v in manifest.videos if v.class_name == "HandstandPushups"]
    assert handstand and all(v.label == 36 for v in handstand)
    assert any(v.video_id.startswith("HandstandPushups/v_HandStandPushups_") for v in handstand)
    assert f"HandstandPushups/{renamed.name}" in {v.video_id for v in handstand}


def test_ucf101_root_may_be_the_parent_and_lf_split_files_work(fake_ucf, ucf_splits, tmp_path):
    lf = tmp_path / "lf_splits"
    lf.mkdir()
    for path in ucf_splits.iterdir():
        (lf / path.name).write_bytes(path.read_bytes().replace(b"\r\n", b"\n"))
    assert b"\r\n" in (ucf_splits / "classInd.txt").read_bytes()
    from_parent = load_manifest("ucf101", fake_ucf.parent, lf)
    direct = load_manifest("ucf101", fake_ucf, ucf_splits)
    assert from_parent.root == direct.root == fake_ucf.absolute()
    assert from_parent.videos == direct.videos and len(direct.videos) > 200
    assert from_parent.missing == direct.missing


def test_ucf101_missing_and_unlisted_are_reported(fake_ucf, ucf_splits):
    present = len(load_manifest("ucf101", fake_ucf, ucf_splits).videos)
    (fake_ucf / "YoYo" / "v_YoYo_g25_c05.avi").unlink()
    (fake_ucf / "YoYo" / "v_YoYo_g99_c01.mp4").touch()
    (fake_ucf / "YoYo" / "notes.txt").touch()
    manifest = load_manifest("ucf101", fake_ucf, ucf_splits)
    assert [m for m in manifest.missing if m.startswith("YoYo/")] == ["YoYo/v_YoYo_g25_c05.avi"]
    assert len(manifest.missing) == 13320 - present + 1
    assert manifest.unlisted == ["YoYo/v_YoYo_g99_c01.mp4"]
    assert len(manifest.videos) == present - 1
    assert "YoYo/v_YoYo_g99_c01.mp4" not in {v.video_id for v in manifest.videos}


def test_ucf101_real_mini(shared_data, ucf_splits):
    root = shared_data / "videos" / "ucf101-mini"
    manifest = load_manifest("ucf101", root, ucf_splits)
    assert manifest.root == (root / "UCF-101").absolute()
    assert [(v.video_id, v.label) for v in manifest.videos] == [
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", 0),
        ("BaseballPitch/v_BaseballPitch_g01_c01.avi", 6),
        ("HeadMassage/v_HeadMassage_g02_c05.avi", 38),
        ("Shotput/v_Shotput_g05_c02.avi", 78),
    ]
    assert all(v.splits[0] == 2 for v in manifest.videos)  # all in the split-1 test set
    assert all(v.path.is_file() for v in manifest.videos)
    assert len(manifest.missing) == 13320 - 4 and manifest.unlisted == []


def test_ucf101_user_mistakes_are_one_line_errors(tmp_path, fake_ucf, ucf_splits, hmdb_splits):
    with pytest.raises(ScaleError, match="not a directory"):
        load_manifest("ucf101", tmp_path / "nowhere", ucf_splits)
    with pytest.raises(ScaleError, match="--splits"):
        load_manifest("ucf101", fake_ucf)
    with pytest.raises(ScaleError, match="classInd.txt"):
        load_manifest("ucf101", fake_ucf, hmdb_splits)
    partial = tmp_path / "partial"
    partial.mkdir()
    for path in ucf_splits.iterdir():
        if path.name != "testlist02.txt":
            (partial / path.name).write_bytes(path.read_bytes())
    with pytest.raises(ScaleError, match="testlist02.txt") as info:
        load_manifest("ucf101", fake_ucf, partial)
    assert "\n" not in str(info.value)
    other = tmp_path / "other"
    (other / "Cats").mkdir(parents=True)
    (other / "Cats" / "cat.mp4").touch()
    with pytest.raises(ScaleError, match="name none of the videos"):
        load_manifest("ucf101", other, ucf_splits)
    with pytest.raises(ScaleError, match="unknown dataset"):
        load_manifest("kinetics", fake_ucf, ucf_splits)


# --------------------------------------------------------------------------- HMDB51


def test_hmdb51_official_split_counts_and_class_order(full_hmdb, hmdb_splits):
    manifest = load_manifest("hmdb51", full_hmdb, hmdb_splits)
    assert len(manifest.class_names) == 51
    assert manifest.missing == [] and manifest.unlisted == []
    assert len(manifest.videos) == 3570 + 1530 + 1666
    for split in (1, 2, 3):
        assert _counts(manifest, split) == (3570, 1530, 1666)
        for label in range(51):
            values = [v.splits[split - 1] for v in manifest.videos if v.label == label]
            assert (values.count(1), values.count(2)) == (70, 30)
    # sorted class names, not sorted split-file names
    names = manifest.class_names
    assert names == sorted(names)
    assert names.index("sword") + 1 == names.index("sword_exercise")
    by_file_name = [re.sub(r"_test_split1\.txt$", "", p.name) for p in sorted(hmdb_splits.glob("*_test_split1.txt"))]
    assert by_file_name.index("sword_exercise") < by_file_name.index("sword")
    for video in manifest.videos[::301]:
        assert video.class_name == names[video.label] == video.video_id.split("/")[0]


def test_hmdb51_real_mini(shared_data, hmdb_splits):
    root = shared_data / "videos" / "hmdb51-mini"
    manifest = load_manifest("hmdb51", root, hmdb_splits)
    got = {v.class_name: (v.label, v.splits) for v in manifest.videos}
    assert set(got) == {"brush_hair", "punch", "shoot_bow", "swing_baseball"}
    for video in manifest.videos:
        name = video.video_id.split("/")[1]
        expected = []
        for k in (1, 2, 3):
            lines = (hmdb_splits / f"{video.class_name}_test_split{k}.txt").read_text().splitlines()
            expected.append(next(int(line.split()[1]) for line in lines if line.split()[0] == name))
        assert video.splits == tuple(expected)
    assert got["brush_hair"][0] == 0 and got["swing_baseball"][0] == 43
    assert len(manifest.missing) == 6766 - 4


def test_hmdb51_missing_split_file(tmp_path, hmdb_splits):
    fake_hmdb = tmp_path / "hmdb51"
    _touch_all(fake_hmdb, ["wave/a.avi"])
    partial = tmp_path / "partial"
    partial.mkdir()
    for path in hmdb_splits.iterdir():
        if path.name != "wave_test_split3.txt":
            (partial / path.name).write_bytes(path.read_bytes())
    with pytest.raises(ScaleError, match="wave_test_split3.txt"):
        load_manifest("hmdb51", fake_hmdb, partial)
    with pytest.raises(ScaleError, match="no HMDB51 split files"):
        load_manifest("hmdb51", fake_hmdb, fake_hmdb)  # a folder without split files


# --------------------------------------------------------------------------- folder and CSV


def test_folder_layout_walks_safely(tmp_path):
    root = tmp_path / "videos"
    _touch_all(root, ["b_class/x.MP4", "a_class/one.avi", "a_class/deeper/two.webm", "a_class/readme.txt", "loose.mkv"])
    (root / "b_class" / "looks_like.avi").mkdir()  # a directory named like a video
    os.symlink("..", root / "a_class" / "loop")  # a symlink loop must not hang the walk
    manifest = load_manifest("folder", root)
    assert manifest.class_names == ["a_class", "b_class"]
    assert [(v.video_id, v.label, v.class_name) for v in manifest.videos] == [
        ("a_class/deeper/two.webm", 0, "a_class"),
        ("a_class/one.avi", 0, "a_class"),
        ("b_class/looks_like.avi", 1, "b_class"),
        ("b_class/x.MP4", 1, "b_class"),
        ("loose.mkv", -1, ""),
    ]
    assert all(v.splits == (0, 0, 0) for v in manifest.videos)
    with pytest.raises(ScaleError, match="not a directory"):
        load_manifest("folder", tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScaleError, match="no video files"):
        load_manifest("folder", tmp_path / "empty")


def test_csv_layout(tmp_path):
    root = tmp_path / "data"
    _touch_all(root, ["clips/a one.mp4", "clips/b.avi", "clips/c.mkv"])
    outside = tmp_path / "elsewhere" / "d.mp4"
    _touch_all(tmp_path, ["elsewhere/d.mp4"])
    table = tmp_path / "list.csv"
    table.write_text(
        "path,label,split\n"
        "clips/b.avi,walk,train\n"
        "clips/a one.mp4,run,2\n"
        f"{outside},run,\n"
        "clips/gone.mp4,walk,test\n"
        "clips/c.mkv,,1\n"
    )
    manifest = load_manifest("csv", root, csv_path=table)
    assert manifest.class_names == ["run", "walk"]
    assert [(v.video_id, v.label, v.splits) for v in manifest.videos] == [
        (outside.as_posix(), 0, (0, 0, 0)),
        ("clips/a one.mp4", 0, (2, 0, 0)),
        ("clips/b.avi", 1, (1, 0, 0)),
        ("clips/c.mkv", -1, (1, 0, 0)),
    ]
    assert manifest.missing == ["clips/gone.mp4"]
    same = load_manifest("csv", table)  # the CSV as root: its folder is the root
    assert same.root == tmp_path.absolute()
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label,split\nclips/b.avi,walk,val\n")
    with pytest.raises(ScaleError, match="line 2"):
        load_manifest("csv", root, csv_path=bad)
    headerless = tmp_path / "headerless.csv"
    headerless.write_text("clips/b.avi,walk\n")
    with pytest.raises(ScaleError, match="header"):
        load_manifest("csv", root, csv_path=headerless)
    with pytest.raises(ScaleError, match="--csv"):
        load_manifest("csv", root)


def test_csv_integer_labels_keep_their_numeric_meaning(tmp_path):
    root = tmp_path / "data"
    _touch_all(root, ["a.mp4", "b.mp4", "c.mp4", "d.mp4"])
    table = tmp_path / "list.csv"
    table.write_text("path,label,split\na.mp4,10,train\nb.mp4,2,train\nc.mp4,9,test\nd.mp4,02,test\n")
    manifest = load_manifest("csv", root, csv_path=table)
    assert [v.label for v in manifest.videos] == [10, 2, 9, 2]  # not 0, 1, 2 of the string order
    assert manifest.class_names == [str(i) for i in range(11)]
    assert [manifest.class_names[v.label] for v in manifest.videos] == ["10", "2", "9", "2"]
    # one label that is not a number: every label is a name, in sorted string order
    table.write_text("path,label\na.mp4,10\nb.mp4,2\nc.mp4,nine\n")
    names = load_manifest("csv", root, csv_path=table)
    assert names.class_names == ["10", "2", "nine"] and [v.label for v in names.videos[:3]] == [0, 1, 2]

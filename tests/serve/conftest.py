"""Indexes for the serve tests: descriptors only (fast), synthetic videos with media, real clips."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from ..retrieval.helpers import make_model_dir, make_store

# as tests/conftest.py: ../shared/data beside the repository unless SCALE_SHARED_DATA says otherwise
SHARED_DATA = Path(os.environ.get("SCALE_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))
UCF_MINI = SHARED_DATA / "videos" / "ucf101-mini" / "UCF-101"


@pytest.fixture(scope="session")
def model_index(tmp_path_factory) -> dict:
    """A 40-video random store, a SCALE run and a flat index of SET tokens (no videos, no media)."""
    from scale_toolkit.retrieval.models import load_retrieval_model
    from scale_toolkit.retrieval.query import build_gallery_index

    root = tmp_path_factory.mktemp("model_index")
    fs, arrays = make_store(root / "s.zarr", n=40, d=16, classes=4, seed=3, class_spread=0.6)
    run = make_model_dir(root / "run", input_dim=16)
    model, info = load_retrieval_model(run)
    build_gallery_index(fs, root / "g.faiss", model=model, model_info=info, thumbs=False)
    return {"index": root / "g.faiss", "store": root / "s.zarr", **arrays}


def _extract(root: Path, out: Path, **kw) -> None:
    from scale_toolkit.extract import ExtractConfig, run_extraction

    run_extraction(ExtractConfig(backbone="tiny", root=root, view="eval15", out=out, workers=0, **kw))


@pytest.fixture(scope="session")
def video_index(tmp_path_factory) -> dict:
    """12 synthetic videos (6 classes), extracted with the tiny backbone, indexed with media."""
    from scale_toolkit.demo.synthetic import SyntheticSpec, make_synthetic_dataset
    from scale_toolkit.retrieval.query import build_gallery_index
    from scale_toolkit.store import FeatureStore

    root = tmp_path_factory.mktemp("video_index")
    videos = root / "videos"
    csv = make_synthetic_dataset(videos, SyntheticSpec(videos_per_class=2, frames=36, seed=1))
    _extract(videos, root / "e.zarr", dataset="csv", csv=csv)
    fs = FeatureStore.open(root / "e.zarr")
    info = build_gallery_index(fs, root / "v.faiss", thumbs=True)
    return {"index": root / "v.faiss", "store": root / "e.zarr", "videos": videos, "ids": info["video_ids"],
            "labels": info["labels"], "class_names": info["class_names"]}


@pytest.fixture(scope="session")
def real_index(tmp_path_factory) -> dict:
    """The four real UCF101 clips of ../shared/data, extracted with the tiny backbone, with media."""
    if not UCF_MINI.is_dir():
        pytest.skip("../shared/data (real UCF101 clips) is absent")
    from scale_toolkit.retrieval.query import build_gallery_index
    from scale_toolkit.store import FeatureStore

    root = tmp_path_factory.mktemp("real_index")
    _extract(UCF_MINI, root / "ucf.zarr", dataset="folder")
    info = build_gallery_index(FeatureStore.open(root / "ucf.zarr"), root / "ucf.faiss")
    return {"index": root / "ucf.faiss", "ids": info["video_ids"], "root": UCF_MINI, "media": info["media"]}


def local_client(app, *, token: bool = True):
    """A TestClient addressing the app as a loopback script does: Host 127.0.0.1, with the server's token."""
    from fastapi.testclient import TestClient

    headers = {"X-Scale-Token": app.state.token} if token else {}
    return TestClient(app, base_url="http://127.0.0.1:8000", headers=headers)

import pytest

from scale_toolkit.demo.synthetic import SyntheticSpec, make_synthetic_dataset


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """12 small synthetic videos (6 classes x 2) with a csv manifest: (root, csv)."""
    root = tmp_path_factory.mktemp("videos")
    csv = make_synthetic_dataset(root, SyntheticSpec(videos_per_class=2, frames=24, height=64, width=80, test_fraction=0.5))
    return root, csv

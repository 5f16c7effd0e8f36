"""The k-NN median row (--knn-median): one outlier clip per video moves the clip mean, not the median."""
import json

import numpy as np

from .conftest import build_store


def _with_outlier_clips(fs, scale: float, seed: int = 3):
    """Replace one clip of every video with a large random vector (a cut, a blank frame, a logo)."""
    rng = np.random.default_rng(seed)
    features = fs.read(None)["features"].astype(np.float32)
    n, v, d = features.shape
    features[np.arange(n), rng.integers(0, v, n)] = scale * rng.normal(size=(n, d))
    fs.write_rows(np.arange(n), features=features.astype(np.float16), coords=fs.read(None)["coords"])
    return fs


def _probe(run_cli, fs, out, *flags):
    code, stdout, stderr = run_cli("probe", "--store", fs.path, "--split", "1", "--knn", "5", "--knn-median",
                                   *flags, "--json", out)
    assert code == 0, stderr
    return json.loads(out.read_text()), stdout


def test_median_row_resists_an_outlier_clip_the_mean_row_does_not(tmp_path, run_cli):
    clean = build_store(tmp_path / "clean.zarr", "separable", n_classes=3, per_class=12, dim=8, seed=1)
    doc, stdout = _probe(run_cli, clean, tmp_path / "clean.json")
    assert doc["rows"] == ["knn", "knn_median"] and "k-NN median" in stdout
    assert "element-wise median of the 15 clip features" in doc["protocol"]
    clean_mean, clean_median = doc["results"]["knn"]["top1"], doc["results"]["knn_median"]["top1"]
    assert clean_mean >= 90 and clean_median >= 90  # without outliers both descriptors find the classes

    noisy = _with_outlier_clips(build_store(tmp_path / "noisy.zarr", "separable", n_classes=3, per_class=12,
                                            dim=8, seed=1), scale=200.0)
    doc, _ = _probe(run_cli, noisy, tmp_path / "noisy.json")
    mean, median = doc["results"]["knn"]["top1"], doc["results"]["knn_median"]["top1"]
    assert median >= 90 and median - mean >= 30, (mean, median)


def test_median_row_alone_and_not_in_the_official_protocol(tmp_path, run_cli):
    fs = build_store(tmp_path / "s.zarr", "separable", n_classes=3, per_class=12, dim=8, seed=1)
    code, stdout, stderr = run_cli("probe", "--store", fs.path, "--knn-median", "--json", tmp_path / "m.json")
    assert code == 0, stderr
    assert json.loads((tmp_path / "m.json").read_text())["rows"] == ["knn_median"]
    code, _, stderr = run_cli("probe", "--store", fs.path, "--knn-median", "--protocol", "official")
    assert code == 2 and "k-NN median (--knn-median) has no --protocol official version" in stderr
    assert len(stderr.strip().splitlines()) == 1

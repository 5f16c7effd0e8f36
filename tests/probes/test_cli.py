"""`scale probe` end to end: table, JSON layout, flags, --config, and one-line errors."""
import json

from .conftest import save_tiny_model


def test_probe_default_rows_table_and_json(make_store, run_cli, tmp_path):
    fs = make_store("separable", n_classes=3, per_class=12, dim=8)
    out = tmp_path / "res" / "probe.json"
    code, stdout, stderr = run_cli("probe", "--store", fs.path, "--split", "1", "--epochs", "3", "--json", out)
    assert code == 0, stderr
    assert "k-NN" in stdout and "Linear" in stdout and "validation hold-out" in stdout.replace("\n", " ")
    doc = json.loads(out.read_text())
    assert set(doc["results"]) == {"knn", "linear"}
    for row in doc["results"].values():
        assert isinstance(row["top1"], float) and isinstance(row["top5"], float)
    assert doc["store"]["fingerprint"] == fs.fingerprint() and doc["seeds"] == [0]
    assert doc["config"]["knn_k"] == [20] and doc["model"] is None
    assert not list(out.parent.glob(".*tmp"))  # atomic write leaves no temp file
    # predictions keyed by video id, and the best row's confusion matrix / per-class top-1 beside the JSON
    ids, names = fs.video_ids, fs.class_names
    linear = doc["results"]["linear"]
    assert linear["by_video"] == {ids[r]: names[p] for r, p in zip(linear["test_rows"], linear["predictions"])}
    assert set(linear["by_video"]) == {ids[r] for r in fs.split_indices(1, "test")}
    png = out.with_suffix(".confusion.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and str(png) in stdout


def test_probe_split_all_with_model_and_extra_rows(make_store, run_cli, tmp_path):
    fs = make_store("separable", n_classes=3, per_class=12, dim=8)
    run = save_tiny_model(tmp_path / "run", input_dim=8)
    out = tmp_path / "all.json"
    code, stdout, stderr = run_cli("probe", "--store", fs.path, "--split", "all", "--model", run, "--knn", "5,20",
                                   "--linear", "--mlp", "--epochs", "2", "--scale-clip-feature", "refined", "--json", out)
    assert code == 0, stderr
    doc = json.loads(out.read_text())
    assert list(doc["results"]) == ["knn", "scale_knn", "linear", "scale_linear", "mlp"]
    for row in doc["results"].values():
        assert set(row["per_split"]) == {"1", "2", "3"}
        tops = [row["per_split"][s]["top1"] for s in "123"]
        assert abs(row["top1"] - sum(tops) / 3) < 1e-9 and "top1_std" in row
    assert set(doc["results"]["knn"]["by_k"]) == {"5", "20"} and doc["results"]["knn"]["k"] == 5
    assert doc["model"]["fingerprint"]
    assert "SCALE_kNN" in stdout and "MLP" in stdout
    assert "[refined_i || SET]" in " ".join(stdout.split())  # the protocol's brackets are printed, not eaten as markup


def test_probe_config_file_and_grid_file(make_store, run_cli, tmp_path):
    fs = make_store("separable", n_classes=3, per_class=10, dim=8)
    grid = tmp_path / "grid.toml"
    grid.write_text("[linear]\nlr = [0.01]\nweight_decay = 0.0\nepochs = 4\n"
                    "[transformer]\nlr = 0.001\nbatch_size = 8\nepochs = 2\n"
                    "[transformer_model]\nhidden = 16\nheads = 2\nlayers = 1\npos_hidden = 16\n")
    cfg = tmp_path / "probe.toml"
    cfg.write_text(f'store = "{fs.path}"\nlinear = true\ntransformer = true\ngrid = "{grid}"\nseeds = [3]\n')
    out = tmp_path / "c.json"
    code, _, stderr = run_cli("probe", "--config", cfg, "--json", out)
    assert code == 0, stderr
    doc = json.loads(out.read_text())
    assert list(doc["results"]) == ["linear", "transformer"] and doc["seeds"] == [3]
    assert doc["config"]["transformer_model"]["hidden"] == 16
    assert [(g["lr"], g["batch_size"], g["epochs"]) for g in doc["results"]["transformer"]["grid"]] == [(0.001, 8, 2)]
    assert [(g["lr"], g["weight_decay"], g["epochs"]) for g in doc["results"]["linear"]["grid"]] == [(0.01, 0.0, 4)]


def test_probe_errors_are_one_line(make_store, run_cli, tmp_path):
    fs = make_store("separable", n_classes=3, per_class=10, dim=8)
    code, _, err = run_cli("probe", "--store", fs.path, "--ft")
    assert code == 2 and "--model" in err and "Traceback" not in err
    run = save_tiny_model(tmp_path / "run", input_dim=16)
    code, _, err = run_cli("probe", "--store", fs.path, "--model", run)
    assert code == 2 and "expects 16-d clip features" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("probe", "--store", fs.path, "--split", "4")
    assert code == 2 and "--split" in err
    code, _, err = run_cli("probe", "--store", tmp_path / "missing.zarr")
    assert code == 2 and "not found" in err


def test_probe_picture_is_drawn_from_the_best_row(tmp_path):
    """The picture's numbers: the best row is the highest top-1 with per-video predictions, and the
    per-class top-1 is each class's hits over its test videos."""
    import numpy as np

    from scale_toolkit.probes.pictures import best_row, per_class_top1, probe_picture

    results = {"knn": {"top1": 40.0, "test_rows": [0, 1, 2], "predictions": [0, 0, 1]},
               "linear": {"top1": 90.0, "per_split": {"1": {"top1": 90.0, "test_rows": [0, 1, 2], "predictions": [0, 1, 1]}}},
               "mlp": {"top1": 95.0}}  # no per-video predictions kept: never drawn
    assert best_row(results) == "linear"
    labels = np.array([0, 1, 1])
    assert per_class_top1(labels, np.array([0, 0, 1]), 2).tolist() == [100.0, 50.0]
    path = probe_picture({"results": results}, labels, ["a", "b"], tmp_path / "p.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert probe_picture({"results": {"mlp": {"top1": 1.0}}}, labels, ["a", "b"], tmp_path / "q.png") is None
    many = probe_picture({"results": {"knn": {"top1": 1.0, "test_rows": list(range(101)), "predictions": [0] * 101}}},
                         np.arange(101), [f"c{i}" for i in range(101)], tmp_path / "ucf.png")
    assert many.stat().st_size > 1000  # 101 classes: drawn without per-cell text

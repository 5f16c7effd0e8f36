"""The demo is an end-to-end test: every stage runs for real on a (smaller) synthetic dataset."""
import json

import pytest

from scale_toolkit.demo.run import DemoConfig, run_demo
from scale_toolkit.probes import ROWS
from scale_toolkit.store import FeatureStore


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    stages = []
    report = run_demo(DemoConfig(out=tmp_path, videos_per_class=6, epochs=4, probe_epochs=20), lambda s, m: stages.append(s))
    assert stages == ["synthesise", "extract train16", "extract eval15", "train", "probe", "retrieve", "pictures", "index"]
    assert set(report.probes["results"]) == set(ROWS)
    for res in report.probes["results"].values():
        assert 0 <= res["top1"] <= res["top5"] <= 100
    assert set(report.retrieval["recall"]) == {"1", "5", "10"} and "scale_recall" in report.retrieval
    for key in ("training curves", "confusion matrices", "retrieval strip"):
        png = report.paths[key]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    train16, eval15 = FeatureStore.open(report.paths["train16 store"]), FeatureStore.open(report.paths["eval15 store"])
    assert train16.n_clips == 16 and eval15.n_clips == 15 and train16.n_videos == eval15.n_videos == 36
    assert (eval15.status == 1).all()
    side = json.loads(report.paths["index"].with_name("index.faiss.json").read_text())
    assert side["descriptor"] == "set" and side["n_videos"] == 36 and side["model"]["fingerprint"]
    assert side["media"] and not side["media"]["failed"] and all(side["media"]["items"])
    metrics = [json.loads(line) for line in (report.paths["run"] / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert metrics and all(m["loss"] > 0 for m in metrics)


def test_demo_cli_rejects_a_file_as_output(tmp_path, run_cli):
    (tmp_path / "f").write_text("x")
    code, _, err = run_cli("demo", "--out", tmp_path / "f")
    assert code == 2 and "is a file" in err

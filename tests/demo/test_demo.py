"""The demo is an end-to-end test: every stage runs for real on a (smaller) synthetic dataset."""
import json

import numpy as np
import pytest
import torch

from scale_toolkit.demo.run import DemoConfig, run_demo, top1_on_order_classes
from scale_toolkit.demo.synthetic import CLASSES, ORDER_CLASSES, order_class_top1
from scale_toolkit.probes import PAPER_ROWS
from scale_toolkit.store import FeatureStore


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    lines = []
    report = run_demo(DemoConfig(out=tmp_path, videos_per_class=6, epochs=4, probe_epochs=20), lambda s, m: lines.append((s, m)))
    stages = list(dict.fromkeys(s for s, _ in lines))
    assert stages == ["synthesise", "extract train16", "extract eval15", "train", "probe", "retrieve", "pictures", "index"]
    # every stage ran with the threads the CPU had free, at least one, never more than torch's default
    assert set(report.threads) == set(stages) and all(1 <= t <= torch.get_num_threads() for t in report.threads.values())
    # the long stages show life inside: an epoch line at most every 10 s and the last one, and every finished probe
    epochs = [m.split(":")[0] for s, m in lines if s == "train" and m.startswith("epoch")]
    assert epochs and epochs[-1] == "epoch 4/4" and set(epochs) <= {f"epoch {e}/4" for e in range(1, 5)}
    assert [m for s, m in lines if s == "probe"][-1] == f"{len(PAPER_ROWS)}/{len(PAPER_ROWS)} probes done"
    assert set(report.probes["results"]) == set(PAPER_ROWS) == set(report.order_top1)
    assert all(0 <= v <= 100 for v in report.order_top1.values())
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


def test_order_classes_are_found_by_name_in_a_store(tmp_path):
    """A store sorts its class names: the order classes are the ones named *_then_*, not CLASSES[:4]."""
    names = sorted(c[0] for c in CLASSES)
    assert sorted(ORDER_CLASSES) == [n for n in names if "_then_" in n]
    labels = np.arange(6)
    predictions = np.array([i if "_then_" in n else (i + 1) % 6 for i, n in enumerate(names)])  # only order classes right
    assert order_class_top1(names, labels, predictions) == 100.0


@pytest.mark.slow
def test_demo_frozen_scale_features_beat_clip_averages_on_the_order_classes(tmp_path):
    """The paper's claim at the demo's default size: frozen SCALE rows well above their clip-averaged
    baselines on the order classes, also above k-NN on centred features (the official code's protocol),
    which removes the features' common vector that holds raw k-NN down. One seed (0) here: the README
    shows seeds 0-2, measured by hand (each run is the whole demo, about two CPU minutes)."""
    from scale_toolkit.probes import ProbeOptions, run_probes

    written_before = _bytes_written()
    report = run_demo(DemoConfig(out=tmp_path), None)
    # a sub-million-parameter model whose checkpoint is rewritten every tenth of the run: the whole
    # demo writes well under 1 GB (issue #30; the paper-size model rewritten every epoch wrote 42 GB)
    if written_before is not None:
        assert _bytes_written() - written_before < 1e9
    on_disk = sum(f.stat().st_size for f in tmp_path.rglob("*") if f.is_file())
    assert on_disk < 100e6, on_disk
    assert (report.paths["run"] / "checkpoint_last.pt").stat().st_size < 10e6
    acc = report.order_top1
    eval15 = FeatureStore.open(report.paths["eval15 store"])
    centred = run_probes(eval15.path, rows=["knn"], options=ProbeOptions(split="1", device="cpu", knn_center="train"))
    acc["knn_centred"] = top1_on_order_classes(eval15, centred["results"])["knn"]
    assert max(acc["knn"], acc["knn_centred"], acc["linear"]) <= 65, acc  # clip averages near the pair ceiling (50)
    assert acc["scale_knn"] >= max(acc["knn"], acc["knn_centred"]) + 20 and acc["scale_linear"] >= acc["linear"] + 20, acc
    metrics = [json.loads(line) for line in (report.paths["run"] / "metrics.jsonl").read_text().splitlines() if line.strip()]
    held = [m for m in metrics if "val_set_acc" in m]
    # held-out SET rises; held-out MCM does not on 86 training videos (6 % to 7 %, seed 0: it overfits)
    assert held[-1]["val_set_acc"] > held[0]["val_set_acc"] and held[-1]["val_set_loss"] < held[0]["val_set_loss"]


def _bytes_written() -> int | None:
    """Bytes this process has sent to storage so far (Linux /proc/self/io "write_bytes", counted as
    pages are dirtied; not "wchar", which also counts pipes: the decode pool's traffic is ~1.8 GB
    there). None elsewhere; 0 on a tmpfs, where nothing reaches a disk."""
    try:
        with open("/proc/self/io") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("write_bytes:"))
    except (OSError, StopIteration):
        return None

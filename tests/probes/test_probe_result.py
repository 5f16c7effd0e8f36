"""Both protocols return one type, ProbeResult (contracts/probe_result.py), which is the --json file's body."""
import json

import pytest

from scale_toolkit.atomic import write_result
from scale_toolkit.contracts.probe_result import ProbeResult
from scale_toolkit.contracts.result import ResultDocument
from scale_toolkit.probes.protocol import ProbeOptions, run_probes


@pytest.mark.parametrize("protocol", ["standard", "official"])
def test_both_protocols_return_a_probe_result_that_reads_back_from_its_file(make_store, tmp_path, protocol):
    fs = make_store("separable", n_classes=3, per_class=8, dim=8)
    doc = run_probes(fs.path, rows=["knn", "linear"], options=ProbeOptions(protocol=protocol, epochs=1))
    assert type(doc) is ProbeResult and doc.protocol_name == protocol
    assert doc["results"] is doc.results and set(doc) == set(doc.to_json()) and "rows" in doc
    assert list(doc.to_json())[:4] == ["results", "rows", "splits", "seeds"]  # the file's key order
    path = write_result(tmp_path / "r.json", "probe", doc.to_json())
    parsed = json.loads(path.read_text())
    back = ProbeResult.from_json(ResultDocument.from_json(parsed).body)
    assert back.to_json() == json.loads(json.dumps(doc.to_json())) and back.rows == ["knn", "linear"]


def test_a_document_that_is_not_a_probe_result_is_refused():
    with pytest.raises(ValueError, match="no device, model"):
        ProbeResult.from_json({"results": {}, "rows": [], "splits": [1], "seeds": [0], "config": {}, "store": {},
                               "train_store": None, "protocol_name": "standard", "select_on_test": False,
                               "protocol": "", "notes": [], "seconds": 1.0})
    with pytest.raises(ValueError, match="not a probe result"):
        ProbeResult.from_json(["results"])

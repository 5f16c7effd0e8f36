"""`scale_toolkit.precision`: `--precision auto` as a function of what the machine reports."""
import json
import os
import subprocess
import sys

import pytest

from scale_toolkit.errors import ScaleError
from scale_toolkit.model import ScaleConfig
from scale_toolkit.precision import CpuReport, choose_precision, resolve_precision
from scale_toolkit.train import TrainConfig, train
from tests.train.helpers import TINY_MODEL, make_train_store

AVX2 = CpuReport("AVX2", avx512_bf16=False, amx=False)
AVX512_NO_BF16 = CpuReport("AVX512", avx512_bf16=False, amx=False)
ZEN4 = CpuReport("AVX512", avx512_bf16=True, amx=False)
SAPPHIRE_RAPIDS = CpuReport("AVX512", avx512_bf16=True, amx=True)
ARM = CpuReport("DEFAULT", avx512_bf16=False, amx=False)


@pytest.mark.parametrize("cpu, expected", [
    (AVX2, "fp32"), (AVX512_NO_BF16, "fp32"), (ZEN4, "bf16"), (SAPPHIRE_RAPIDS, "bf16"),
    (CpuReport("NO AVX", False, False), "fp32"),
    # capped by ATEN_CPU_CAPABILITY=avx2: the units exist but torch dispatches without them
    (CpuReport("AVX2", avx512_bf16=True, amx=True), "fp32"),
])
def test_auto_on_cpu_follows_the_reported_capability(cpu, expected):
    choice = choose_precision("auto", "cpu", cpu)
    assert choice.value == expected
    assert cpu.capability in choice.reason
    assert ("no native bf16" in choice.reason) == (expected == "fp32")


def test_auto_on_cuda_follows_bf16_support():
    assert choose_precision("auto", "cuda", cuda_bf16=True).value == "bf16"
    assert choose_precision("auto", "cuda", cuda_bf16=False).value == "fp32"
    assert choose_precision("auto", "mps").value == "fp32"


def test_an_ambiguous_cpu_is_decided_by_the_measurement():
    assert choose_precision("auto", "cpu", ARM, measured_gain=2.5).value == "bf16"
    assert choose_precision("auto", "cpu", ARM, measured_gain=1.05).value == "fp32"
    unmeasured = choose_precision("auto", "cpu", ARM)
    assert unmeasured.value == "fp32" and "not measured" in unmeasured.reason
    # a known capability is never overruled by a measurement
    assert choose_precision("auto", "cpu", AVX2, measured_gain=9.0).value == "fp32"


@pytest.mark.parametrize("asked", ["bf16", "fp32"])
def test_an_explicit_flag_wins(asked):
    for cpu in (AVX2, SAPPHIRE_RAPIDS, ARM):
        choice = choose_precision(asked, "cpu", cpu)
        assert choice.value == asked and choice.reason == f"asked for with --precision {asked}"
    assert choose_precision(asked, "cuda", cuda_bf16=not (asked == "bf16")).value == asked


def test_unknown_value_is_one_line_error():
    with pytest.raises(ScaleError, match="--precision must be one of auto, bf16, fp32"):
        choose_precision("fp16", "cpu", AVX2)
    with pytest.raises(ScaleError, match="--precision"):
        resolve_precision("half", "cpu")


def test_this_machine_capped_at_avx2_resolves_to_fp32():
    """The real report of this machine with torch's dispatch capped at AVX2, in a fresh process."""
    code = ("import json; from scale_toolkit.precision import resolve_precision as r; "
            "p = r('auto', 'cpu'); print(json.dumps(p.to_dict()))")
    env = dict(os.environ, ATEN_CPU_CAPABILITY="avx2")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    got = json.loads(out)
    assert got["precision"] == "fp32" and "CPU capability AVX2" in got["precision_reason"]


def test_resolved_precision_reaches_config_json_events_and_summary(tmp_path):
    make_train_store(tmp_path / "train.zarr")
    events = []
    cfg = TrainConfig(store=str(tmp_path / "train.zarr"), out=str(tmp_path / "run"), epochs=1, batch_size=12,
                      warmup=0.0, save_every=0, threads=1, model=ScaleConfig(**TINY_MODEL))
    summary = train(cfg, progress=events.append)
    expected = resolve_precision("auto", "cpu")
    conf = json.loads((tmp_path / "run" / "config.json").read_text())
    assert conf["train"]["precision"] == "auto"
    assert conf["effective"]["precision"] == expected.value
    assert conf["effective"]["precision_reason"] == expected.reason
    assert events[0]["precision"] == expected.describe() and summary["precision"] == expected.value

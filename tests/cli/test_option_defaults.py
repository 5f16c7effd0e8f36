"""Every option that sets a config field has that field's default, so the CLI and the library cannot drift.

An option maps to a field by its parameter name (or the rename listed below). Its default must be
the dataclass's, or None with the dataclass's default stated in its help (flags the library must
see as "not given", e.g. those `scale train --official` fills with its own values).
"""
from __future__ import annotations

import pytest
import typer

from cli.app import app
from cli.commands import register
from cli.options import config_default, shown_default
from scale_toolkit.demo.run import DemoConfig
from scale_toolkit.extract import ExtractConfig
from scale_toolkit.model.config import ScaleConfig
from scale_toolkit.probes.options import ProbeOptions
from scale_toolkit.retrieval.index import IndexParams
from scale_toolkit.retrieval.modes import RetrieveOptions
from scale_toolkit.serve.options import ServeOptions
from scale_toolkit.train.config import OFFICIAL_TRAIN, TrainConfig

register()  # every command
COMMANDS = typer.main.get_command(app).commands

# command -> (the dataclasses its options set, {parameter name: field name (None: no field)} where they differ)
CONFIGS = {
    "extract": ((ExtractConfig,), {"csv_path": "csv", "out_store": "out", "timeout": "timeout_s"}),
    "train": ((TrainConfig, ScaleConfig), {"out_dir": "out", "compile_step": "compile"}),
    "probe": ((ProbeOptions,), {"bn": "batchnorm", "knn": "knn_k", "grid": None}),  # --grid: a file, not the dict
    "retrieve": ((RetrieveOptions, IndexParams), {"k": "ks"}),
    "serve": ((ServeOptions,), {"embed_timeout": "embed_timeout_s"}),
    "demo": ((DemoConfig,), {"out_dir": "out"}),
}
WITHOUT_CONFIG = {"import", "export", "info", "backbones"}  # flags of their own only
# 0 on the command line stands for the field's None ("not set"); the command passes `value or None`
ZERO_FOR_NONE = {("train", "steps"), ("train", "threads")}


def _field(configs: tuple[type, ...], name: str | None) -> tuple[type, str] | None:
    for config in configs if name else ():
        if name in config.__dataclass_fields__:
            return config, name
    return None


def test_every_command_is_classified():
    assert set(COMMANDS) == set(CONFIGS) | WITHOUT_CONFIG


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_option_defaults_are_the_config_defaults(name):
    configs, renames = CONFIGS[name]
    checked = 0
    for param in COMMANDS[name].params:
        found = _field(configs, renames.get(param.name, param.name))
        if found is None or param.required:
            continue
        expected = config_default(*found)
        if (name, param.name) in ZERO_FOR_NONE:
            assert expected is None and param.default == 0, param.name
        elif param.default is None and expected is not None:
            assert f"default: {shown_default(expected)}" in param.help, f"{name} --{param.name}: help does not state {expected!r}"
        else:
            assert param.default == expected, f"{name} --{param.name}: {param.default!r} != {found[0].__name__}'s {expected!r}"
        checked += 1
    assert checked >= 5, f"{name}: only {checked} options map to a config field; check CONFIGS"


def test_train_options_that_official_presets_stay_unset():
    """`--official` fills a flag that was not given (None) with the official code's value."""
    params = {p.name: p for p in COMMANDS["train"].params}
    official_model = ScaleConfig.official()
    differs = [f for f in ScaleConfig.__dataclass_fields__ if getattr(official_model, f) != config_default(ScaleConfig, f)]
    for name in [*OFFICIAL_TRAIN, "warmup", "epochs", *(f for f in differs if f in params)]:
        assert params[name].default is None, name
    assert "--official: 3e-4" in params["lr"].help and "--official: bernoulli" in params["mask_mode"].help

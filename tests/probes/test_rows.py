"""The row registry (probes/rows.py) is the one list of probe rows: functions, grids and flags follow it."""
import typer

from cli.app import app
from cli.commands import register
from scale_toolkit.probes.grid import PRESETS
from scale_toolkit.probes.row_functions import CLIP_INPUTS, SET_CLASSIFIERS, VIDEO_VECTORS, missing_functions
from scale_toolkit.probes.rows import REGISTRY, ROW, flag_parameter, row_flags


def test_every_declared_row_has_its_function_and_every_function_a_row():
    assert missing_functions() == []
    tables = {"knn": VIDEO_VECTORS, "clip_head": CLIP_INPUTS, "set_classifier": SET_CLASSIFIERS}
    for method, table in tables.items():
        assert set(table) == {row.name for row in REGISTRY if row.method == method}, method


def test_every_trained_row_has_a_grid_in_every_preset():
    trained = {row.name for row in REGISTRY if row.trained}
    for preset, grids in PRESETS.items():
        assert set(grids) == trained, preset


def test_declarations_are_consistent():
    assert len(ROW) == len(REGISTRY)  # names are unique
    for row in REGISTRY:
        assert (row.head != "") == (row.method == "clip_head"), row.name
        assert row.protocols and set(row.protocols) <= {"standard", "official"}, row.name
    for flag, rows in row_flags().items():
        assert rows[0].flag_help, f"{flag}: its first row gives the flag's help"


def test_scale_probe_has_a_flag_for_every_row():
    register()
    params = {p.name: p for p in typer.main.get_command(app).commands["probe"].params}
    for flag, rows in row_flags().items():
        param = params[flag_parameter(flag)]
        assert flag in param.opts
        if flag != "--knn":  # --knn also takes the ks
            assert param.is_flag and param.default is False and param.help == rows[0].flag_help

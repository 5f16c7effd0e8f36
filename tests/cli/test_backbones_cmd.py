"""`scale backbones`: names are never cut, whatever the width; --json has every field."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from scale_toolkit.backbones import list_backbones

NAMES = [e.name if e.name != "timm" else "timm:<model_name>" for e in list_backbones()]


def _scale(*args: str, columns: int) -> str:
    exe = shutil.which("scale", path=os.path.dirname(sys.executable)) or "scale"
    env = dict(os.environ, COLUMNS=str(columns))
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, check=True).stdout


def _first_cells(lines: list[str]) -> list[str]:
    """The name column: a bordered table's first cell, or (narrow, borderless) a row's first word."""
    cells = []
    for ln in lines:
        if ln.startswith("│"):
            cells.append(ln.split("│")[1].strip())
        elif ln.startswith(" ") and not ln.startswith("  "):  # a row; wrapped continuations start further in
            cells.append(ln.split()[0])
    return [c for c in cells if c and c != "name"]


@pytest.mark.parametrize("columns", [60, 80, 200])
def test_names_are_whole_at_any_width_when_piped(columns):
    lines = _scale("backbones", columns=columns).splitlines()
    assert _first_cells(lines) == NAMES
    header = " ".join(ln for ln in lines if ln.startswith("┃") or ln.startswith(" name"))
    assert ("weights" in header) == (columns >= 160)  # the long columns only where they fit
    assert ("scale backbones --json" in lines[-1]) == (columns < 160)


def test_readable_at_80_columns():
    """One line per backbone where its pooling text fits (issue #30: ~50 lines of wrapped cells before)."""
    lines = _scale("backbones", columns=80).splitlines()
    assert all(len(ln) <= 80 for ln in lines)
    assert len(lines) <= len(NAMES) + 4, "\n".join(lines)  # title, header, caption, one wrapped pooling


def test_json_lists_every_backbone_with_its_spec():
    rows = json.loads(_scale("backbones", "--json", columns=80))
    assert [r["name"] for r in rows] == NAMES
    by_name = {r["name"]: r for r in rows}
    assert by_name["rhobyol"]["feature_dim"] == 2048 and by_name["svt"]["frames"] == 8
    assert all(r["checkpoint_formats"] for r in rows if r["name"] != "tiny")

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


@pytest.mark.parametrize("columns", [60, 80, 200])
def test_names_are_whole_at_any_width_when_piped(columns):
    lines = _scale("backbones", columns=columns).splitlines()
    first_cells = [ln.split("│")[1].strip() for ln in lines if ln.startswith("│") and ln.split("│")[1].strip()]
    assert first_cells == NAMES
    header = " ".join(ln for ln in lines if ln.startswith("┃"))
    assert ("weights" in header) == (columns >= 160)  # the long columns only where they fit
    assert ("scale backbones --json" in lines[-1]) == (columns < 160)


def test_json_lists_every_backbone_with_its_spec():
    rows = json.loads(_scale("backbones", "--json", columns=80))
    assert [r["name"] for r in rows] == NAMES
    by_name = {r["name"]: r for r in rows}
    assert by_name["rhobyol"]["feature_dim"] == 2048 and by_name["svt"]["frames"] == 8
    assert all(r["checkpoint_formats"] for r in rows if r["name"] != "tiny")

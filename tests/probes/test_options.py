"""Which rows a probe run asks for: the flags' rows, the default rows, and the rules they follow."""
from __future__ import annotations

import pytest

from scale_toolkit.errors import ScaleError
from scale_toolkit.probes import default_rows, rows_for
from scale_toolkit.probes.options import ROWS, checked_rows
from scale_toolkit.probes.rows import flag_parameter, row_flags


def test_knn_and_linear_bring_their_scale_rows_only_with_a_model():
    assert rows_for(knn=True, linear=True) == ["knn", "linear"]
    assert rows_for(knn=True, linear=True, has_model=True) == ["knn", "scale_knn", "linear", "scale_linear"]
    assert rows_for(mlp=True, transformer=True, has_model=True) == ["mlp", "transformer"]


def test_no_row_flag_means_the_default_rows():
    assert rows_for() == [] and rows_for(has_model=True) == []
    assert checked_rows(rows_for(), has_model=False) == default_rows(False) == ["knn", "linear"]
    assert checked_rows(rows_for(), has_model=True) == default_rows(True)


def test_ft_needs_a_model():
    with pytest.raises(ScaleError, match=r"--ft fine-tunes a trained SCALE model: pass --model RUN_DIR"):
        rows_for(ft=True, linear=True)
    assert rows_for(ft=True, has_model=True) == ["scale_ft"]


def test_checked_rows_orders_rows_as_the_paper_and_rejects_unknown_or_modelless_scale_rows():
    every = rows_for(**{flag_parameter(flag): True for flag in row_flags()}, has_model=True)  # every row flag
    assert checked_rows(list(reversed(every)), has_model=True) == list(ROWS)
    with pytest.raises(ScaleError, match="unknown probe 'svm'"):
        checked_rows(["svm"], has_model=False)
    with pytest.raises(ScaleError, match="SCALE_linear need a trained SCALE model"):
        checked_rows(["linear", "scale_linear"], has_model=False)

"""TF's training kernels as an oracle for the numpy reference's optimizer math."""
from __future__ import annotations

import pytest

pytest.importorskip("tensorflow", reason="tensorflow is not installed (`tf` extra)")

from engines.reference.tf_oracle import (BIT_IDENTICAL, COLUMNS,  # noqa: E402
                                         optimizer_oracle_table)


@pytest.fixture(scope="module")
def table():
    return optimizer_oracle_table(seed=0, rows=64, dim=16, steps=4)


def _row(table, optimizer, variant="default"):
    sel = table[(table.optimizer == optimizer) & (table.variant == variant)]
    assert len(sel) == 1, (optimizer, variant)
    return sel.iloc[0]


def test_columns_and_coverage(table):
    assert list(table.columns) == COLUMNS
    assert {"sgd", "adagrad", "ftrl", "adadelta", "momentum", "rmsprop", "adam",
            "amsgrad"} <= set(table.optimizer)
    assert table.tf_kernel.str.match(r"Resource\w+").all()


@pytest.mark.parametrize("optimizer,variant", [("sgd", "default"), ("momentum", "default"),
                                               ("adam", "default"), ("amsgrad", "default")])
def test_kernels_that_reproduce_monolith_exactly(table, optimizer, variant):
    row = _row(table, optimizer, variant)
    assert (row.max_abs_err, row.max_ulp) == (0, 0)
    assert row.explanation == BIT_IDENTICAL


@pytest.mark.parametrize("optimizer,variant", [("adagrad", "default"), ("ftrl", "default"),
                                               ("adadelta", "default"),
                                               ("momentum", "nesterov")])
def test_rounding_divergences_are_small_and_explained(table, optimizer, variant):
    row = _row(table, optimizer, variant)
    assert 0 < row.max_abs_err < 1e-5 and row.max_ulp > 0
    assert "round" in row.explanation


@pytest.mark.parametrize("optimizer,variant,section", [
    ("ftrl", "l1=0.05, monolith_quirks", "§3.3"),
    ("adam", "restore, monolith_quirks", "§3.5"),
    ("adagrad", "weight_decay=0.1, monolith_quirks", "§3.2")])
def test_monolith_bugs_show_as_large_labelled_differences(table, optimizer, variant, section):
    row = _row(table, optimizer, variant)
    assert row.max_abs_err > 1e-3
    assert row.explanation.startswith("Monolith bug") and section in row.explanation


def test_rmsprop_formula_difference(table):
    row = _row(table, "rmsprop")
    assert row.max_abs_err > 1e-4 and "epsilon" in row.explanation


def test_every_difference_has_an_explanation(table):
    for row in table.itertuples():
        assert row.explanation
        assert (row.max_ulp == 0) == (row.explanation == BIT_IDENTICAL)

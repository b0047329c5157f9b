"""The one markdown-table renderer: what a table in the Dagster UI shows for awkward values."""

from __future__ import annotations

import pytest

from prompt_release.markdown import md_table


def test_cells_are_escaped_folded_cut_and_missing_values_shown() -> None:
    table = md_table(
        ["a", "b", "n"], [("x|y", "two\nlines", 0.123456), (None, "z" * 100, 3)], max_cell=10, align_right=[2]
    )
    assert table.splitlines() == [
        "| a | b | n |",
        "|---|---|---:|",
        "| x\\|y | two lines | 0.123 |",
        "| - | zzzzzzzzz… | 3 |",
    ]


def test_a_row_that_does_not_fit_the_headers_is_an_error_not_a_broken_table() -> None:
    with pytest.raises(ValueError, match="3 cells for 2 headers"):
        md_table(["a", "b"], [(1, 2, 3)])

"""A run's spend: a reservation is replaced by its settlement, on the DuckDB file and on a lake."""

from __future__ import annotations

from pathlib import Path

import pytest

from prompt_release.llm.cache import SpendRow, spent_on, write_rows
from prompt_release.warehouse import read_connection, write_transaction


@pytest.mark.parametrize("backend", ["file", "lake"])
def test_a_settlement_replaces_its_reservation_in_a_later_transaction(tmp_path: Path, backend: str) -> None:
    warehouse = str(tmp_path / ("w.duckdb" if backend == "file" else "w.lake"))
    reserved = [SpendRow(f"a{i}", "run-1", f"k{i}", 1000.0, 0.01, False) for i in range(3)]
    write_rows(warehouse, [], reserved)
    with write_transaction(warehouse) as con:
        assert spent_on(con, "run-1") == (3000.0, pytest.approx(0.03))  # worst case while unsettled
    write_rows(warehouse, [], [SpendRow("a0", "run-1", "k0", 120.0, 0.002, True)])
    with read_connection(warehouse) as con:
        rows = con.execute("SELECT attempt_id, tokens, settled FROM llm_spend ORDER BY 1").fetchall()
        assert con.execute("SELECT sum(tokens) FROM llm_spend WHERE run_key = 'run-1'").fetchone() == (2120.0,)
    assert rows == [("a0", 120.0, True), ("a1", 1000.0, False), ("a2", 1000.0, False)]

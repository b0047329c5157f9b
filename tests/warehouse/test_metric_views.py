"""The metric views come from the one definition, also into warehouses migrated before it existed."""

from __future__ import annotations

import duckdb

from prompt_release.warehouse import SCHEMA_VERSION, read_connection, write_transaction
from prompt_release.warehouse.metrics import version_daily_sql


def _columns(con, view: str) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index", [view]
        ).fetchall()
    ]


def test_an_older_warehouse_gets_the_view_of_the_current_definition(warehouse):
    with write_transaction(warehouse):
        pass
    # as a warehouse migrated by an older prompt-release would be: an outdated view, no migration 12
    con = duckdb.connect(str(warehouse))
    con.execute("CREATE OR REPLACE VIEW v_version_daily AS SELECT 1 AS outdated")
    con.execute("DELETE FROM schema_version WHERE version >= 12")
    con.close()
    with write_transaction(warehouse):
        pass
    with read_connection(warehouse) as con:
        assert con.execute("SELECT max(version) FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        expected = [d[0] for d in con.execute(version_daily_sql(one_day=False) + " LIMIT 0").description]
        assert _columns(con, "v_version_daily") == expected
        assert "outdated" not in expected and "cost_per_success_usd" in expected

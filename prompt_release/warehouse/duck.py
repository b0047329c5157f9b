"""Every DuckDB connection prompt-release opens, with the settings they all need.

DuckDB draws its progress bar on stdout, also into a pipe, for any query past
two seconds: it would land inside `ingest --json` or `sql --format csv|json`
output. prompt-release reports progress on long work itself, on stderr, so
its connections turn DuckDB's bar off (a per-connection setting: a user's own
connection to the same file keeps DuckDB's default).
"""

from __future__ import annotations

import duckdb


def connect(database: str = ":memory:", *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(database, read_only=read_only)
    try:
        con.execute("SET enable_progress_bar = false")
    except duckdb.InvalidInputException:
        # In a Jupyter kernel DuckDB draws the bar as a widget, not on stdout, and refuses to
        # change the setting at all unless ipywidgets is installed: leave it as it is there.
        pass
    except BaseException:
        con.close()
        raise
    return con

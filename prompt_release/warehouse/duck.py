"""Every DuckDB connection prompt-release opens, with the settings they all need.

DuckDB draws its progress bar on stdout, also into a pipe, for any query past
two seconds: it would land inside `ingest --json` or `sql --format csv|json`
output. prompt-release reports progress on long work itself, on stderr, so
its connections turn DuckDB's bar off (a per-connection setting: a user's own
connection to the same file keeps DuckDB's default).
"""

from __future__ import annotations

import re

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


_UNITS = {"": 1, "b": 1, "bytes": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS.update({"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40})
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-z]*)\s*$", re.IGNORECASE)


def _bytes(size: str) -> float:
    match = _SIZE.match(size)
    if match is None or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a memory size: {size!r}")
    return float(match.group(1)) * _UNITS[match.group(2).lower()]


def cap_memory(con: duckdb.DuckDBPyConnection, limit: str) -> None:
    """Lower the connection's memory_limit to `limit`, never raise it.

    A connection whose owner set a tighter budget (the lake's staging database
    spills to its own folder past it) keeps that budget when a caller asks for
    the looser one it wants on a fresh connection.
    """
    [(current,)] = con.execute("SELECT current_setting('memory_limit')").fetchall()
    try:
        lower = _bytes(limit) < _bytes(str(current))
    except ValueError:
        lower = True  # a size DuckDB may still read, or refuse with its own error
    if lower:
        con.execute(f"SET memory_limit = '{limit}'")

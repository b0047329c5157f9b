"""Render a DuckDB query result for a terminal (aligned table), for tools (CSV) or for code (JSON).

Rows are pulled from the cursor in chunks, so CSV and JSON of a large result
stream without holding it in memory; the table shows the first `max_rows`
rows (a terminal cannot usefully show more) and says how many it left out.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import json
import math
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

import duckdb

CHUNK = 10_000
CELL_WIDTH = 60
_NUMERIC = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
)


def _rows(cursor: duckdb.DuckDBPyConnection) -> Iterator[tuple]:
    while chunk := cursor.fetchmany(CHUNK):
        yield from chunk


def _columns(cursor: duckdb.DuckDBPyConnection) -> tuple[list[str], list[str]]:
    description = cursor.description or []
    return [d[0] for d in description], [str(d[1]).upper() for d in description]


def _plain(value: Any) -> Any:
    """A JSON-serialisable version of a DuckDB value (nested lists/structs included)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (dt.timedelta, uuid.UUID)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def _text(value: Any) -> str:
    """One cell as text for CSV and the table: NULL-free, nested values as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e15 or abs(value) < 1e-4):
            return f"{value:.6g}"
        return f"{value:.6f}".rstrip("0").rstrip(".")
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(_plain(value), ensure_ascii=False)
    return str(_plain(value))


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    text = _text(value).replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    return text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 1] + "…"


def write_table(cursor: duckdb.DuckDBPyConnection, out: TextIO, max_rows: int = 100) -> int:
    """Aligned columns, numbers right-aligned, a row count footer; returns the row count."""
    names, types = _columns(cursor)
    if not names:
        out.write("OK\n")
        return 0
    shown: list[list[str]] = []
    total = 0
    for row in _rows(cursor):
        total += 1
        if max_rows <= 0 or len(shown) < max_rows:
            shown.append([_cell(v) for v in row])
    widths = [max([len(n)] + [len(r[i]) for r in shown]) for i, n in enumerate(names)]
    right = [t.startswith(_NUMERIC) for t in types]

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)]
        return "  ".join(parts).rstrip() + "\n"

    out.write(line(names))
    out.write(line(["-" * w for w in widths]))
    for row in shown:
        out.write(line(row))
    noun = "row" if total == 1 else "rows"
    if len(shown) < total:
        out.write(f"({total} {noun}, first {len(shown)} shown; --max-rows 0 or --format csv for all)\n")
    else:
        out.write(f"({total} {noun})\n")
    return total


def write_csv(cursor: duckdb.DuckDBPyConnection, out: TextIO) -> int:
    """RFC 4180 CSV with a header; NULL is an empty field; returns the row count."""
    names, _ = _columns(cursor)
    writer = csv.writer(out, lineterminator="\n")
    if names:
        writer.writerow(names)
    total = 0
    for row in _rows(cursor):
        writer.writerow([_text(v) for v in row])
        total += 1
    return total


def write_json(cursor: duckdb.DuckDBPyConnection, out: TextIO) -> int:
    """A JSON array of row objects; JSON-typed columns are nested, not strings; returns the row count."""
    names, types = _columns(cursor)
    is_json = [t == "JSON" for t in types]
    out.write("[")
    total = 0
    for row in _rows(cursor):
        record = {}
        for name, value, nested in zip(names, row, is_json):
            if nested and isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    pass
            record[name] = _plain(value)
        out.write(("," if total else "") + "\n  " + json.dumps(record, ensure_ascii=False))
        total += 1
    out.write("\n]\n" if total else "]\n")
    return total

"""Create and migrate the warehouse schema from numbered SQL files.

Migrations live in `prompt_release/warehouse/migrations/NNNN_name.sql` and are
applied in order, each in its own transaction together with its row in
`schema_version`. Opening an older warehouse migrates it; opening one whose
version is newer than the newest file here fails with a clear message rather
than writing into a schema we do not understand.

A migration file containing the line `-- @recreate-metric-views` also
(re)creates the views built from the metric definitions
(`metrics.create_metric_views`), in the same transaction; only the newest
marked migration does, since the views are built for the newest tables.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path

import duckdb

from prompt_release.errors import SchemaVersionError
from prompt_release.warehouse.metrics import create_metric_views

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
RECREATE_VIEWS = "-- @recreate-metric-views"


@cache
def migrations() -> tuple[tuple[int, str, str], ...]:
    """(version, name, sql) for every migration file, in version order."""
    found = []
    for entry in resources.files("prompt_release.warehouse.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"migration numbers must be 1..N without gaps, got {versions}")
    return tuple(found)


SCHEMA_VERSION = len(migrations())


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    # fetchall, not fetchone: DuckDB 2 keeps a partly fetched result open on the
    # connection, and the caller's next `con.sql(...)` would then be refused.
    # duckdb_tables() rather than information_schema.tables: the same answer
    # for a base table, without building the information_schema views.
    exists = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_version'").fetchall()[0][0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0]


def refuse_newer(found: int, path: str | Path | None) -> None:
    """The one refusal of a warehouse (file or lake) written by a newer prompt-release."""
    if found > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"warehouse schema version {found} is newer than this prompt-release "
            f"understands ({SCHEMA_VERSION}); upgrade prompt-release to open it",
            file=path,
        )


def check_readable(con: duckdb.DuckDBPyConnection, path: str | Path | None = None) -> None:
    refuse_newer(current_version(con), path)


def migrate(con: duckdb.DuckDBPyConnection, path: str | Path | None = None, *, upto: int = SCHEMA_VERSION) -> int:
    """Bring the schema up to `upto` (default SCHEMA_VERSION); return the number of steps applied.

    `upto` below the newest is for rebuilding an older schema (the lake migration
    stages an old lake's rows in the schema they were written in).
    """
    found = current_version(con)
    refuse_newer(found, path)
    applied = 0
    # The views read the newest tables: an older marker's turn is taken by the newest one
    # (views made at 0013 would refer to tables a later migration adds).
    last_marker = max((v for v, _, sql in migrations() if RECREATE_VIEWS in sql.splitlines()), default=0)
    for version, name, sql in migrations():
        if version <= found or version > upto:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)"
            )
            con.execute(sql)
            if version == last_marker:
                create_metric_views(con)
            con.execute("INSERT INTO schema_version (version, name) VALUES (?, ?)", [version, name])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        applied += 1
    return applied

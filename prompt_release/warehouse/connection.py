"""Open the warehouse for one transaction, waiting out other processes' locks.

DuckDB lets one process hold a file read-write, so writers hold the file only
for the duration of one transaction; opening waits out another process's lock
(`locking.open_with_backoff`). A transaction that fails rolls back: nothing is
half-written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from prompt_release import config
from prompt_release.errors import UserError
from prompt_release.warehouse import lake as lake_backend
from prompt_release.warehouse.locking import open_with_backoff
from prompt_release.warehouse.migrate import check_readable, migrate
from prompt_release.warehouse.snapshot import is_local_file, publish_locked, remove_stale


def existing_warehouse(explicit: str | Path | None = None) -> Path | str:
    """The warehouse a reading command opens. A path that does not exist is an error, not a new
    empty file: a mistyped --warehouse must not print a real-looking report from nothing.
    A lake is returned as its URI (a Path would fold `s3://` into `s3:/`)."""
    lake = lake_backend.lake_for(explicit)
    if lake is not None:
        if not lake_backend.exists(lake):
            raise UserError(
                f"no warehouse in the lake {lake.uri} (from {config.warehouse_source(explicit)}): "
                "run `make demo` or `prompt-release ingest PATH` to create one",
                field=lake.setting,
            )
        return lake.uri
    path = config.warehouse_path(explicit)
    if not is_local_file(path) or path.exists():
        return path
    raise UserError(
        f"no warehouse at {str(path)!r} (from {config.warehouse_source(explicit)}): "
        "run `make demo` or `prompt-release ingest PATH` to create one, or pass --warehouse "
        "with an existing file"
    )


@contextmanager
def write_transaction(
    path: str | Path | None = None,
    *,
    lock_timeout_s: float | None = None,
    publish: bool | None = None,
    scope: lake_backend.Scope | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open read-write, migrate, run the body in one transaction, close.

    The body sees a connection inside BEGIN; it commits on normal exit and
    rolls back on any exception, so a failed write leaves nothing behind.
    After a commit, and before the file is released, the analysts' read-only
    snapshot is republished (see `warehouse.snapshot`). `publish=False` skips
    that for this write only (a bulk loop that calls `publish_snapshot()` once
    at the end); with snapshots turned off in config
    (PROMPT_RELEASE_ANALYST_SNAPSHOT=0) the stale snapshot is removed instead,
    so analysts fall back to the live file rather than read old data.
    On a lake, `scope` stages only part of it (`lake.Scope`: the body may then
    raise `ScopeMiss`); the file backend has everything at hand and ignores it.
    """
    lake = lake_backend.lake_for(path)
    if lake is not None:
        # no file lock and no snapshot to publish: readers see each table's last commit
        with lake_backend.staged_transaction(lake, scope) as staged:
            yield staged
        return
    resolved = config.warehouse_path(path)
    con = open_with_backoff(resolved, lock_timeout_s=lock_timeout_s)
    try:
        migrate(con)
        con.execute("BEGIN TRANSACTION")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        publishing = publish is not False and config.analyst_snapshot_enabled(publish)
        if publishing and is_local_file(resolved):
            # The snapshot checkpoints right after this commit anyway; a zero
            # threshold makes the commit itself checkpoint (when nothing else
            # is open on the file) instead of first writing the same changes
            # to the WAL. Reset at once: other connections keep the default.
            con.execute("SET checkpoint_threshold = '0b'")
            try:
                con.execute("COMMIT")
            finally:
                con.execute("RESET checkpoint_threshold")
        else:
            con.execute("COMMIT")
        if publishing:
            publish_locked(con, resolved)
        elif publish is not False:
            remove_stale(resolved)
    finally:
        con.close()


@contextmanager
def read_connection(
    path: str | Path | None = None, *, lock_timeout_s: float | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open read-only (waiting out a writer), check the schema version, close.

    A warehouse that does not exist yet is created and migrated first so that
    readers of a fresh project see empty tables rather than an error.
    """
    lake = lake_backend.lake_for(path)
    if lake is not None:
        con = lake_backend.open_reader(lake)
        try:
            yield con
        finally:
            con.close()
        return
    resolved = config.warehouse_path(path)
    if not resolved.exists():
        with write_transaction(resolved, lock_timeout_s=lock_timeout_s):
            pass
    con = open_with_backoff(resolved, read_only=True, lock_timeout_s=lock_timeout_s)
    try:
        check_readable(con, resolved)
        yield con
    finally:
        con.close()


def warehouse_exists(path: str | Path | None = None) -> bool:
    """Whether the warehouse was created yet (a DuckDB file, or a lake's tables); never creates it."""
    lake = lake_backend.lake_for(path)
    if lake is None:
        return config.warehouse_path(path).exists()
    return lake_backend.exists(lake)


def query_frame(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None):
    """Run a query and return its whole result as a polars DataFrame (through Arrow, no copy)."""
    # lazy: polars costs start-up time that callers reading rows never need
    import polars as pl

    return pl.from_arrow(con.sql(sql, params=params or None).to_arrow_table())

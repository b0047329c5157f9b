"""The Delta Lake backend: the warehouse's tables as Delta tables under one root URI.

Chosen by the warehouse setting (`config.lake_location`): `s3://bucket/prefix`,
`file:///folder`, or a folder ending in `/` or `.lake`. DuckDB stays the
engine on both paths; see docs/architecture.md ("The lake backend") for why.

Reads (`open_reader`): a fresh in-memory DuckDB where every table is a view
over the committed Delta snapshot of that table, opened as an Arrow dataset
(no DuckDB extension needed), with the column types of the DuckDB schema
(JSON stays JSON). The documented views are then created from the SQL the
migrations left in a scratch database, not from a copy of it.

Writes (`staged_transaction`): the body runs against an in-memory DuckDB
migrated with the same migrations (same tables, keys, views) and loaded with
the committed snapshot, inside one transaction, exactly as on the file
backend. At the end, per table, the rows the body inserted (row ids past the
loaded ones) and the loaded rows it deleted are turned into ONE Delta commit:

- only inserts: a merge on the table's key (insert when not matched, within
  the touched partitions), or an append for a table without a key and
  without partitions (a partitioned table without a key has the touched
  partitions replaced, as below, so a concurrent write to them conflicts);
- deletes in a partitioned table: the touched partitions are replaced by
  their staged content (overwrite with a partition predicate);
- deletes in a keyed table: a merge that deletes, updates and inserts by key;
- deletes in a small table without a key: the whole table is replaced.

Commits are optimistic. A merge that loses a race to another writer is run
again against the new version (a merge reads the table as it is, so the
retry is right); a partition or table replacement that loses a race is not
retried, because its content was computed from the old version: it fails
with ConcurrentWriteError and nothing of it is visible. A body that fails, or
a process killed before the end, commits nothing.
"""

from __future__ import annotations

import atexit
import logging
import random
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prompt_release import config
from prompt_release.errors import SchemaVersionError, UserError
from prompt_release.warehouse import duck
from prompt_release.warehouse.migrate import SCHEMA_VERSION, migrate, refuse_newer

log = logging.getLogger(__name__)
T = TypeVar("T")

# Large tables, partitioned where a write naturally replaces a slice.
PARTITIONS: dict[str, str] = {
    "traces": "day",
    "failures": "day",
    "events": "day",
    "backtest_results": "run_id",
}
# The order in which one transaction commits its tables: every table after the tables it is
# derived from (failures after traces, golden sets after failures, gate reports after backtests),
# and a header after the rows it describes (ingest_files after traces, golden_versions after
# golden_cases, backtest_runs after backtest_results). Readers open the tables in the reverse
# order, so whatever a reader sees of a transaction is a prefix of its commits: rows without
# their header, never a header (or a derived row) without its rows. A crash between two commits
# leaves the same prefix; a rerun completes it (merges on the key make the data idempotent).
# Every table of the schema is listed here (a test checks): a new table needs its place.
COMMIT_ORDER: tuple[str, ...] = (
    "schema_version",
    "prompt_versions",
    "label_events",
    "traces",
    "events",
    "ingest_rejects",
    "ingest_files",
    "failures",
    "golden_cases",
    "golden_versions",
    "llm_cache",
    "llm_spend",
    "backtest_results",
    "backtest_runs",
    "behaviour_diff",
    "gate_reports",
    "version_metrics",
    "canary_decisions",
)
_MERGE_ATTEMPTS = 12
# DuckDB's budget while a transaction is staged (ingest asks for no more: duck.cap_memory), and
# while its changes are streamed into Delta commits; past it staged rows spill to disk.
STAGING_MEMORY_LIMIT = "256MB"
COMMIT_MEMORY_LIMIT = "192MB"


class ConcurrentWriteError(UserError):
    """Another writer changed a partition this transaction replaces; run the step again."""


# A transaction redone by `redo_on_conflict` runs at most this many times in all. Each race it
# loses is another writer's whole transaction done, so this covers 4 such writers at once (the
# Dagster pool `warehouse_day` lets 2 run side by side by default).
_REDO_ATTEMPTS = 5


def redo_on_conflict(run: Callable[[], T], *, attempts: int = _REDO_ATTEMPTS) -> T:
    """Run a write transaction again when it lost a race (ConcurrentWriteError: another writer
    replaced the same partition or table first; nothing of the loser is visible in that table).

    Only for writes whose result does not depend on which writer went first (a day's failures mined
    again, a day folder ingested again): a rerun computes from the new version. A commit is per
    table, so tables the lost run committed before the conflict are rewritten with the same rows.
    The DuckDB file backend never raises it (one writer at a time).
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    for attempt in range(1, attempts):
        try:
            return run()
        except ConcurrentWriteError:
            log.info("lost a race to another writer; running the transaction again (%d)", attempt)
            time.sleep(random.uniform(0.05, 0.2) * attempt)  # out of step with the writers it raced
    return run()  # the last run: a lost race now is the caller's


class ScopeMiss(Exception):
    """A scoped transaction needed partitions it did not load; nothing was committed.

    `partitions` (table -> partition values) are the ones to add to the scope
    for the transaction to run again.
    """

    def __init__(self, message: str, partitions: Mapping[str, set]) -> None:
        super().__init__(message)
        self.partitions = partitions


@dataclass(frozen=True)
class Scope:
    """What a transaction writes, when that is a small part of the lake.

    Only `tables`, the ones the transaction writes, are loaded into the
    staging database, and of a partitioned table in `partitions` only the
    partitions named (the body sees no other rows of it). Every other table is
    a view over its committed snapshot: the body reads it as a reader would,
    and a write to it fails the transaction. Before
    anything is committed, the keys of the rows it inserts are looked up in
    the partitions it did not load (one streaming scan of the key column), and
    a partition it would replace must have been loaded; otherwise it raises
    `ScopeMiss` naming the partitions missed and commits nothing, and the
    caller runs it again with them (see `Scope.widened`). Ingest uses it so
    that a write's memory and cost follow the days written, not everything the
    lake holds.

    `key_window` (days, for a table partitioned by a date) bounds that lookup to
    the partitions within so many days of a partition the rows go to: a key
    stored only farther away is not looked for, and the row is stored again on
    its own day. Without it the lookup covers every partition not loaded (the
    key is unique in the whole table), and its cost grows with the table.
    """

    tables: frozenset[str]
    partitions: Mapping[str, frozenset] = dataclass_field(default_factory=dict)
    key_window: int | None = None

    @classmethod
    def of(
        cls, tables: Iterable[str], partitions: Mapping[str, Iterable] | None = None, *, key_window: int | None = None
    ) -> Scope:
        return cls(frozenset(tables), {t: frozenset(v) for t, v in (partitions or {}).items()}, key_window)

    def widened(self, miss: ScopeMiss) -> Scope:
        more = {t: self.partitions.get(t, frozenset()) | frozenset(v) for t, v in miss.partitions.items()}
        return Scope(self.tables, {**self.partitions, **more}, self.key_window)


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema: pa.Schema
    casts: str  # SELECT list giving the DuckDB column types back (JSON, TIMESTAMPTZ, ...)
    key: tuple[str, ...]
    partition: str | None


@dataclass(frozen=True)
class Template:
    tables: dict[str, TableSpec]
    views: tuple[str, ...]  # CREATE VIEW statements, in creation order
    comments: tuple[str, ...]  # COMMENT ON statements for tables-as-views, views, columns


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"


@cache
def template(version: int = SCHEMA_VERSION) -> Template:
    """The schema every lake mirrors: the migrations applied to a scratch in-memory DuckDB.

    An older `version` gives the schema a lake of that version was written in.
    """
    con = duck.connect()
    try:
        migrate(con, upto=version)
        names = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = 'memory' ORDER BY table_oid"
            ).fetchall()
        ]
        keys: dict[str, tuple[str, ...]] = {}
        for table, _kind, cols in con.execute(
            "SELECT table_name, constraint_type, constraint_column_names FROM duckdb_constraints() "
            "WHERE constraint_type IN ('PRIMARY KEY', 'UNIQUE') ORDER BY constraint_type"
        ).fetchall():
            keys.setdefault(table, tuple(cols))  # 'PRIMARY KEY' sorts before 'UNIQUE'
        tables = {}
        comments = []
        for name in names:
            columns = con.execute(
                "SELECT column_name, data_type, comment FROM duckdb_columns() "
                "WHERE table_name = ? AND database_name = 'memory' ORDER BY column_index",
                [name],
            ).fetchall()
            casts = ", ".join(f"CAST({_quote_ident(c)} AS {t}) AS {_quote_ident(c)}" for c, t, _ in columns)
            schema = con.sql(f"SELECT * FROM {_quote_ident(name)} LIMIT 0").to_arrow_table().schema
            tables[name] = TableSpec(name, schema, casts, keys.get(name, ()), PARTITIONS.get(name))
            comments += [
                f"COMMENT ON COLUMN {_quote_ident(name)}.{_quote_ident(c)} IS {_literal(note)}"
                for c, _, note in columns
                if note
            ]
        for name, note in con.execute(
            "SELECT table_name, comment FROM duckdb_tables() WHERE comment IS NOT NULL AND database_name = 'memory'"
        ).fetchall():
            comments.append(f"COMMENT ON VIEW {_quote_ident(name)} IS {_literal(note)}")
        view_rows = con.execute(
            "SELECT view_name, sql, comment FROM duckdb_views() "
            "WHERE NOT internal AND database_name = 'memory' ORDER BY view_oid"
        ).fetchall()
        views = tuple(sql for _, sql, _ in view_rows)
        for view, _, note in view_rows:
            if note:
                comments.append(f"COMMENT ON VIEW {_quote_ident(view)} IS {_literal(note)}")
            comments += [
                f"COMMENT ON COLUMN {_quote_ident(view)}.{_quote_ident(c)} IS {_literal(n)}"
                for c, n in con.execute(
                    "SELECT column_name, comment FROM duckdb_columns() WHERE table_name = ? "
                    "AND database_name = 'memory' AND comment IS NOT NULL ORDER BY column_index",
                    [view],
                ).fetchall()
            ]
        return Template(tables, views, tuple(comments))
    finally:
        con.close()


def _deltalake():
    # imported on first use: delta-rs costs ~0.3 s to import, and a file-backend
    # process never needs it
    import deltalake
    import deltalake.exceptions

    return deltalake


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _describe(exc: BaseException) -> str:
    # object_store nests its causes with coloured arrows; one plain line is what the user gets
    text = " ".join(_ANSI.sub("", str(exc)).replace("\u21b3", ";").split())
    return text[:300]


def _store_error(lake: config.LakeLocation, exc: BaseException) -> UserError:
    return UserError(
        f"cannot use the lake {lake.uri}: {_describe(exc)} (check the location, that the store is "
        "reachable, and the AWS_* credentials)",
        field=lake.setting,
    )


def _check_credentials(lake: config.LakeLocation) -> None:
    options = lake.storage_options()
    if lake.is_s3 and not (
        ("AWS_ACCESS_KEY_ID" in options and "AWS_SECRET_ACCESS_KEY" in options) or "AWS_PROFILE" in options
    ):
        raise UserError(
            f"no credentials for {lake.uri}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)",
            field=lake.setting,
        )


def exists(lake: config.LakeLocation) -> bool:
    """Whether the lake holds a warehouse (its schema_version table is written last on creation)."""
    _check_credentials(lake)
    try:
        return _deltalake().DeltaTable.is_deltatable(
            lake.table_uri("schema_version"), storage_options=lake.storage_options()
        )
    except Exception as exc:
        raise _store_error(lake, exc) from exc


class Snapshot:
    """The current version of every table of a lake (each table read at its own latest commit)."""

    def __init__(self, lake: config.LakeLocation, tables: dict[str, Any]) -> None:
        self.lake = lake
        self.tables = tables

    @classmethod
    def open(cls, lake: config.LakeLocation, *, create: bool) -> Snapshot:
        dl = _deltalake()
        _check_credentials(lake)
        options = lake.storage_options()
        tpl = template()
        tables: dict[str, Any] = {}
        try:
            exists = dl.DeltaTable.is_deltatable(lake.table_uri("schema_version"), storage_options=options)
        except Exception as exc:  # object_store errors come as several Python types
            raise _store_error(lake, exc) from exc
        if not exists:
            if not create:
                raise UserError(
                    f"no warehouse in the lake {lake.uri} yet (ingest traces or run the demo first)",
                    field=lake.setting,
                )
            _create_tables(lake, tpl)
        try:
            # reverse commit order: a reader never sees a header without its rows (COMMIT_ORDER)
            for name in reversed(_commit_order(tpl.tables)):
                tables[name] = dl.DeltaTable(lake.table_uri(name), storage_options=options)
        except dl.exceptions.TableNotFoundError:
            # an older lake lacks the tables a newer migration adds: it needs migrating, not creating
            schema = dl.DeltaTable(lake.table_uri("schema_version"), storage_options=options)
            cls(lake, {"schema_version": schema}).check_version()
            if not create:
                raise
            _create_tables(lake, tpl)
            return cls.open(lake, create=False)
        except Exception as exc:
            raise _store_error(lake, exc) from exc
        snapshot = cls(lake, tables)
        snapshot.check_version()
        return snapshot

    def check_version(self) -> None:
        found = stored_version(self.tables["schema_version"])
        refuse_newer(found, self.lake.uri)
        if found < SCHEMA_VERSION:
            raise SchemaVersionError(
                f"lake schema version {found} is older than this prompt-release ({SCHEMA_VERSION}); "
                "stop the writers and run `prompt-release warehouse migrate` to bring it up to date",
                file=self.lake.uri,
            )

    def dataset(self, name: str):
        """The table's Arrow dataset at this snapshot's version of it."""
        return _datasets.get(self.tables[name])


class _DatasetCache:
    """Arrow datasets of table versions already opened in this process.

    Building one lists every file of the version (`dataset_partitions`): in a
    demo's canary rounds that was a fifth of all the time, for tables most of
    which had not changed since the last read. A version of a Delta table never
    changes, so its dataset is kept, keyed by the table's URI, its id (a new
    UUID when a table is created again at the same URI) and the version.
    """

    def __init__(self, size: int = 256) -> None:
        self._lock = threading.Lock()
        self._size = size
        self._kept: dict[tuple[str, str, int], Any] = {}

    def get(self, table) -> Any:
        key = (table.table_uri, table.metadata().id, table.version())
        with self._lock:
            kept = self._kept.pop(key, None)
            if kept is not None:
                self._kept[key] = kept  # most recently used last
                return kept
        # Files written by a merge (DataFusion) store strings as string_view, appended ones as
        # string. Read as string everywhere, DuckDB's pushed-down filter on a merged file fails
        # in pyarrow ("no kernel matching input types (string, string_view)"); read as
        # string_view everywhere, both kinds of file filter correctly.
        plain = pa.schema(table.schema().to_arrow())
        dataset = table.to_pyarrow_dataset(schema=pa.schema([pa.field(f.name, _as_view(f.type)) for f in plain]))
        with self._lock:
            self._kept[key] = dataset
            while len(self._kept) > self._size:
                del self._kept[next(iter(self._kept))]
        return dataset


_datasets = _DatasetCache()


def stored_version(schema_version_table) -> int:
    """The schema version a lake's `schema_version` Delta table records."""
    versions = schema_version_table.to_pyarrow_table(columns=["version"])["version"]
    return max(versions.to_pylist(), default=0)


def _as_view(kind: pa.DataType) -> pa.DataType:
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return pa.string_view()
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return pa.list_(_as_view(kind.value_type))
    return kind


def _create_tables(lake: config.LakeLocation, tpl: Template) -> None:
    """Create every missing table; schema_version last, so its presence means a complete lake.

    Several processes may create the same lake at once: Delta's first commit
    is put-if-absent, so exactly one wins per table and the others find it there.
    """
    dl = _deltalake()
    options = lake.storage_options()
    scratch = duck.connect()
    try:
        migrate(scratch)
        versions = scratch.sql("SELECT * FROM schema_version").to_arrow_table()
    finally:
        scratch.close()
    for name, spec in [
        *((n, s) for n, s in tpl.tables.items() if n != "schema_version"),
        ("schema_version", tpl.tables["schema_version"]),
    ]:
        uri = lake.table_uri(name)
        data = versions.cast(spec.schema) if name == "schema_version" else spec.schema.empty_table()
        try:
            if dl.DeltaTable.is_deltatable(uri, storage_options=options):
                continue
            dl.write_deltalake(
                uri,
                data,
                mode="error",
                storage_options=options,
                partition_by=[spec.partition] if spec.partition else None,
            )
        except Exception as exc:
            if dl.DeltaTable.is_deltatable(uri, storage_options=options):
                continue  # another process created it first
            raise _store_error(lake, exc) from exc


def lake_for(warehouse) -> config.LakeLocation | None:
    """The lake the warehouse setting names, None for a DuckDB file; a bad setting is a UserError."""
    try:
        return config.lake_location(warehouse)
    except config.WarehouseSettingError as exc:
        raise UserError(str(exc), field=exc.setting) from None


# --- reads -------------------------------------------------------------------------------


_views_lock = threading.Lock()


@cache
def _views_file() -> Path:
    """A DuckDB file holding only the warehouse's views, built once per process.

    Every table is a view over a name (`__lake_<table>`) that each reader binds
    to the lake's committed Arrow dataset; the documented views are created
    from the migrations' SQL. Readers attach it READ_ONLY as catalog
    `warehouse`, as they attach the file backend's snapshot, so the same SQL
    (qualified or not) runs, and no session can write or drop the views.
    """
    tpl = template()
    folder = Path(tempfile.mkdtemp(prefix="prompt_release_lake_views_"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "views.duckdb"
    con = duck.connect(str(path))
    try:
        con.execute("BEGIN TRANSACTION")  # one commit, not one per statement
        for name, spec in tpl.tables.items():
            source = f"__lake_{name}"
            con.register(source, spec.schema.empty_table())
            con.execute(f"CREATE VIEW {_quote_ident(name)} AS SELECT {spec.casts} FROM {source}")
        for sql in tpl.views:
            con.execute(sql)
        for sql in tpl.comments:
            con.execute(sql)
        con.execute("COMMIT")
    finally:
        con.close()
    return path


def open_reader(lake: config.LakeLocation, *, create: bool = True) -> duckdb.DuckDBPyConnection:
    """A read-only DuckDB session over the lake's committed snapshot (catalog `warehouse`)."""
    snapshot = Snapshot.open(lake, create=create)
    with _views_lock:
        views = _views_file()
    con = duck.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        for name in template().tables:
            con.register(f"__lake_{name}", snapshot.dataset(name))
        con.execute(f"ATTACH '{views}' AS warehouse (READ_ONLY)")
        con.execute("USE warehouse")
    except BaseException:
        con.close()
        raise
    return con


# --- writes ------------------------------------------------------------------------------


@dataclass
class _Loaded:
    spec: TableSpec
    baseline: pa.Table  # the committed rows loaded (all, or the scope's), in row-id order
    partitions: frozenset | None = None  # the partitions loaded, when not all of them
    loaded: bool = True  # False: outside the scope, a view over the committed table (read, never written)
    # Committed rows of the partitions loaded that the staging database cannot hold: their key is
    # already staged from an earlier partition. A table deduplicated within a window of days
    # (`Scope.key_window`) may store a key again on a day beyond it; a transaction staging both
    # days sees the earliest copy, and the others are written back as they are when their
    # partition is replaced. None: there were none (the usual case).
    shadowed: pa.Table | None = None
    key_window: int | None = None


@contextmanager
def staged_transaction(lake: config.LakeLocation, scope: Scope | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the body against the committed snapshot staged in memory, then commit its changes.

    With a `scope`, only that part of the snapshot is staged (see `Scope`).
    """
    snapshot = Snapshot.open(lake, create=True)
    tpl = template()
    spill = tempfile.mkdtemp(prefix="prompt_release_staging_")
    con = duck.connect()
    try:
        # in memory, but past its budget DuckDB moves staged blocks to a folder of this
        # transaction's own (not `.tmp` in the working directory), so a large ingest's
        # memory does not grow with the file
        con.execute(f"SET temp_directory = {_literal(spill)}")
        con.execute(f"SET memory_limit = '{STAGING_MEMORY_LIMIT}'")
        migrate(con)
        con.execute("SET TimeZone = 'UTC'")
        loaded: dict[str, _Loaded] = {}
        for name, spec in tpl.tables.items():
            if name == "schema_version":
                continue
            if scope is not None and name not in scope.tables:
                _read_through(con, snapshot, spec)
                loaded[name] = _Loaded(spec, spec.schema.empty_table(), loaded=False)
                continue
            partitions = scope.partitions.get(name) if scope is not None else None
            loaded[name] = _load(con, snapshot, spec, partitions)
            if scope is not None and partitions is not None:
                loaded[name].key_window = scope.key_window
        con.execute("BEGIN TRANSACTION")
        try:
            yield con
        except BaseException as exc:
            con.execute("ROLLBACK")
            if scope is not None and _wrote_a_view(exc):
                raise RuntimeError(
                    f"a transaction scoped to {', '.join(sorted(scope.tables))} wrote to a table outside its scope "
                    f"(add the table to its lake.Scope): {exc}"
                ) from exc
            raise
        _refuse_unknown_tables(con, lake)
        # committed in the staging database only: the changes are read back from it below
        con.execute("COMMIT")
        # from here DuckDB only streams the changes out and looks keys up: its staged blocks go to
        # the spill folder, and the memory is delta-rs's to write with
        duck.cap_memory(con, COMMIT_MEMORY_LIMIT)
        changes = {name: _changes(con, item) for name, item in loaded.items() if item.loaded}
        for name, (inserted, deleted) in changes.items():
            _check_scope(snapshot, loaded[name], inserted, deleted)
        for name in _commit_order(changes):
            inserted, deleted = changes[name]
            if inserted.num_rows or deleted.num_rows:
                _commit_table(con, snapshot, loaded[name], inserted, deleted)
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def _read_through(con, snapshot: Snapshot, spec: TableSpec) -> None:
    """Make a table outside the transaction's scope a view over its committed snapshot, as readers
    see it: the body reads it (DuckDB pushes its filters down to the Parquet files), never stages
    it, and cannot write it (a view; see `_wrote_a_view`)."""
    source = f"__lake_{spec.name}"
    con.register(source, snapshot.dataset(spec.name))
    con.execute(f"DROP TABLE {_quote_ident(spec.name)}")
    con.execute(f"CREATE VIEW {_quote_ident(spec.name)} AS SELECT {spec.casts} FROM {source}")


def _wrote_a_view(exc: BaseException) -> bool:
    """DuckDB's refusal of an INSERT, DELETE or UPDATE on a view (a table outside a scope)."""
    message = str(exc)
    return isinstance(exc, duckdb.CatalogException | duckdb.BinderException) and (
        "is not an table" in message or "base table" in message
    )


def _load(con, snapshot: Snapshot, spec: TableSpec, partitions: frozenset | None) -> _Loaded:
    """Stage a table's committed rows (of the given partitions only, when given)."""
    dataset = snapshot.dataset(spec.name)
    if partitions is not None:
        assert spec.partition, f"{spec.name} is not partitioned"
        wanted = pa.array(sorted(partitions), spec.schema.field(spec.partition).type)
        rows = dataset.to_table(filter=pc.field(spec.partition).isin(wanted))
    else:
        rows = dataset.to_table()
    # plain strings, in the schema's column order: pyarrow cannot `take` string_view
    baseline = rows.select(spec.schema.names).cast(spec.schema)
    shadowed = None
    if baseline.num_rows:
        try:
            _stage_rows(con, spec, baseline)
        except duckdb.ConstraintException:
            if not (spec.key and spec.partition):
                raise
            # a key stored on two days (beyond the dedup window of each other): rare, so looked for
            # only when the load fails, and the failed statement staged nothing
            baseline, shadowed = _split_copies(con, spec, baseline)
            _stage_rows(con, spec, baseline)
    return _Loaded(spec, baseline, partitions, shadowed=shadowed)


def _stage_rows(con, spec: TableSpec, rows: pa.Table) -> None:
    columns = ", ".join(_quote_ident(c) for c in spec.schema.names)
    con.register("__lake_load", rows)
    try:
        con.execute(f"INSERT INTO {_quote_ident(spec.name)} ({columns}) SELECT {columns} FROM __lake_load")
    finally:
        con.unregister("__lake_load")


def _split_copies(con, spec: TableSpec, rows: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(rows with the earliest partition's copy of each key, in their order; the other copies)."""
    assert spec.partition
    keys = ", ".join(_quote_ident(k) for k in spec.key)
    con.register(
        "__lake_copies",
        rows.select([*spec.key, spec.partition]).append_column("__i", pa.array(np.arange(rows.num_rows))),
    )
    try:
        first = (
            con.sql(
                f"SELECT __i FROM __lake_copies QUALIFY row_number() OVER "
                f"(PARTITION BY {keys} ORDER BY {_quote_ident(spec.partition)} NULLS LAST, __i) = 1"
            )
            .to_arrow_table()["__i"]
            .to_numpy()
        )
    finally:
        con.unregister("__lake_copies")
    keep = np.zeros(rows.num_rows, dtype=bool)
    keep[first] = True
    return rows.filter(pa.array(keep)), rows.filter(pa.array(~keep))


def _check_scope(snapshot: Snapshot, item: _Loaded, inserted: _Inserted, deleted: pa.Table) -> None:
    """Refuse, before anything is committed, a change its scope did not see whole (ScopeMiss)."""
    spec = item.spec
    if item.partitions is None or not inserted.num_rows:
        return
    column = spec.partition
    if not spec.key or deleted.num_rows:
        # an append without a key, or a partition replacement, needs its partitions loaded whole
        unseen = set(inserted.distinct(column)) - set(item.partitions)
        if unseen:
            raise ScopeMiss(f"{spec.name}: rows for partitions not loaded", {spec.name: unseen})
        return
    kind = spec.schema.field(column).type
    if item.key_window is None:
        where = ~pc.field(column).isin(pa.array(sorted(item.partitions), kind))
    else:
        # only the partitions within the window of the rows' own: the lookup's cost follows the
        # days written, not the days stored
        days = inserted.distinct(column)
        near = {
            day + timedelta(days=shift)
            for day in days
            if day is not None
            for shift in range(-item.key_window, item.key_window + 1)
        } - set(item.partitions)
        if not near and (None not in days or None in item.partitions):
            return
        where = pc.field(column).isin(pa.array(sorted(near), kind))
        if None in days and None not in item.partitions:
            where = where | pc.field(column).is_null()
    # One streaming scan of the key and partition columns of the partitions not staged (pruned by
    # pyarrow, read one batch ahead), semi-joined in the staging database against the inserted
    # rows where they are: its hash table on the inserted keys spills within the staging budget,
    # so the lookup's memory follows neither the lake's size nor the day's.
    stored = snapshot.dataset(spec.name).scanner(
        columns=[*spec.key, column],
        filter=where,
        batch_size=_STREAM_ROWS,
        batch_readahead=1,
        fragment_readahead=1,
    )
    on = " AND ".join(f"s.{_quote_ident(k)} = i.{_quote_ident(k)}" for k in spec.key)
    lookup = inserted.con.cursor()
    try:
        lookup.register("__stored", stored.to_reader())
        found = {
            value
            for (value,) in lookup.execute(
                f"SELECT DISTINCT s.{_quote_ident(column)} FROM __stored AS s "
                f"SEMI JOIN ({inserted.select(spec.key)}) AS i ON {on}"
            ).fetchall()
        }
    finally:
        lookup.close()
    if found:
        raise ScopeMiss(f"{spec.name}: keys already stored in partitions not loaded", {spec.name: found})


def _commit_order(names) -> list[str]:
    unplaced = set(names) - set(COMMIT_ORDER)
    if unplaced:
        raise RuntimeError(f"tables without a place in lake.COMMIT_ORDER: {sorted(unplaced)}")
    return [name for name in COMMIT_ORDER if name in names]


def _refuse_unknown_tables(con: duckdb.DuckDBPyConnection, lake: config.LakeLocation) -> None:
    # a table the body made up would vanish at the end of the transaction; say so instead
    extra = [
        name
        for (name,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'memory' AND NOT temporary"
        ).fetchall()
        if name not in template().tables
    ]
    if extra:
        con.execute("ROLLBACK")
        raise UserError(
            f"the lake stores the warehouse schema's tables only; {', '.join(sorted(extra))} would be lost "
            "(add a migration for a new table)",
            file=lake.uri,
        )


@dataclass(frozen=True)
class _Inserted:
    """The rows a transaction inserted into one table, read back from the staging database
    when needed: a large ingest is streamed into Delta, never held in Arrow whole."""

    con: duckdb.DuckDBPyConnection
    spec: TableSpec
    after: int  # rows from this row id on were inserted
    num_rows: int

    def select(self, columns: Iterable[str]) -> str:
        """SQL selecting `columns` of the inserted rows, in the staging database."""
        names = ", ".join(_quote_ident(c) for c in columns)
        return f"SELECT {names} FROM {_quote_ident(self.spec.name)} WHERE rowid >= {self.after}"

    def reader(self) -> pa.RecordBatchReader:
        """Every column, in the table's Delta schema, batch by batch."""

        def batches() -> Iterator[pa.RecordBatch]:
            # its own cursor: the staging connection stays free while a Delta write pulls batches
            cursor = self.con.cursor()
            try:
                for batch in cursor.sql(self.select(self.spec.schema.names)).to_arrow_reader(_STREAM_ROWS):
                    yield batch.cast(self.spec.schema)
            finally:
                cursor.close()

        return pa.RecordBatchReader.from_batches(self.spec.schema, batches())

    def table(self, columns: Iterable[str] | None = None) -> pa.Table:
        names = list(columns or self.spec.schema.names)
        rows = self.con.sql(self.select(names)).to_arrow_table()
        return rows.cast(pa.schema([self.spec.schema.field(c) for c in names]))

    def distinct(self, column: str) -> list:
        return [v for (v,) in self.con.execute(f"SELECT DISTINCT * FROM ({self.select([column])})").fetchall()]


# Rows per batch streamed from the staging database into a Delta write: delta-rs holds several
# batches in flight per partition, so its memory follows this size (64k rows took ~300 MB more
# than 8k for a 1M-row day).
_STREAM_ROWS = 8 * 1024


def _changes(con: duckdb.DuckDBPyConnection, item: _Loaded) -> tuple[_Inserted, pa.Table]:
    """(rows the body inserted, loaded rows it deleted). The code base only inserts and
    deletes: an update, an insert-or-replace or an on-conflict update changes a row in place,
    keeping its id, and would never be committed (tests/warehouse/test_lake.py looks for them)."""
    spec, n = item.spec, item.baseline.num_rows
    name = _quote_ident(spec.name)
    [(count,)] = con.execute(f"SELECT count(*) FROM {name} WHERE rowid >= {n}").fetchall()
    inserted = _Inserted(con, spec, n, count)
    if n == 0:
        return inserted, spec.schema.empty_table()
    kept = con.sql(f"SELECT rowid FROM {name} WHERE rowid < {n}").to_arrow_table()["rowid"].to_numpy()
    if len(kept) == n:
        return inserted, spec.schema.empty_table()
    gone = np.ones(n, dtype=bool)
    gone[kept] = False
    deleted = item.baseline.take(pa.array(np.flatnonzero(gone))).cast(spec.schema)
    return inserted, deleted


def _commit_table(con, snapshot: Snapshot, item: _Loaded, inserted: _Inserted, deleted: pa.Table) -> None:
    spec = item.spec
    if deleted.num_rows == 0 and spec.key:
        if not _fill_empty_partitions(snapshot, item, inserted):
            _insert_new(snapshot, spec, inserted)
    elif deleted.num_rows == 0 and not spec.partition:
        _append(snapshot, spec, inserted.reader())
    elif spec.partition:
        # also rows only added to a partitioned table without a key (failures): written as a
        # replacement of their partitions, so that two writers filling the same partition at once
        # conflict (ConcurrentWriteError) instead of both appending the same rows
        _replace_partitions(
            con, snapshot, item, inserted.distinct(spec.partition) + deleted[spec.partition].to_pylist()
        )
    elif spec.key:
        _merge(snapshot, spec, inserted.table(), delete_keys=deleted.select(list(spec.key)))
    else:
        _replace_table(con, snapshot, spec)


def _options(snapshot: Snapshot) -> dict[str, str]:
    return snapshot.lake.storage_options()


def _append(snapshot: Snapshot, spec: TableSpec, rows: pa.Table | pa.RecordBatchReader) -> None:
    dl = _deltalake()
    # appends never conflict with other commits; delta-rs retries the version race itself
    dl.write_deltalake(
        snapshot.lake.table_uri(spec.name),
        rows,
        mode="append",
        storage_options=_options(snapshot),
        writer_properties=writer_properties(),
    )


def writer_properties():
    """How the lake writes Parquet files (ingest, and what bench/scale.py builds as history)."""
    # Row groups of 64k rows rather than delta-rs's 1M: the writer buffers a row group before
    # it encodes it, and a reader (a scoped load, the scope's key lookup) decodes one at a time.
    return _deltalake().WriterProperties(max_row_group_size=_ROW_GROUP_ROWS)


_ROW_GROUP_ROWS = 64 * 1024


def _partition_predicate(column: str, values: list, alias: str = "") -> str:
    col = f"{alias}{column}"
    known = sorted({str(v) for v in values if v is not None})
    parts = []
    if known:
        parts.append(f"{col} IN ({', '.join(_literal(v) for v in known)})")
    if any(v is None for v in values):
        parts.append(f"{col} IS NULL")
    return "(" + " OR ".join(parts) + ")" if parts else "false"


def _fill_empty_partitions(snapshot: Snapshot, item: _Loaded, inserted: _Inserted) -> bool:
    """Commit inserted rows with a streamed write when every partition they go to was staged
    and empty; False (nothing written) when not, or when another writer got there first.

    The usual case of ingest (a new day). The write is an overwrite of those partitions, which
    removes nothing, against the version this transaction staged: a commit since then that
    added files to them makes it fail, and the caller merges on the key instead, as always. A
    merge joins and buffers what it inserts (~250 MB more than this for a 1M-row day).
    """
    spec = item.spec
    column = spec.partition
    if column is None or not inserted.num_rows:
        return False
    values = inserted.distinct(column)
    if item.partitions is not None and not set(values) <= item.partitions:
        return False
    for rows in (item.baseline, item.shadowed):
        staged = rows[column] if rows is not None else None
        if (
            staged is not None
            and staged.length()
            and pc.any(pc.is_in(staged, value_set=pa.array(values, staged.type))).as_py()
        ):
            return False
    dl = _deltalake()
    try:
        dl.write_deltalake(
            snapshot.tables[spec.name],
            inserted.reader(),
            mode="overwrite",
            predicate=_partition_predicate(column, values),
            writer_properties=writer_properties(),
        )
    except dl.exceptions.CommitFailedError:
        log.info("another writer added rows to %s (%s) first; merging on the key instead", spec.name, values)
        return False
    return True


def _insert_new(snapshot: Snapshot, spec: TableSpec, inserted: _Inserted) -> None:
    """One merge commit inserting the rows whose key is not stored yet (within the touched
    partitions), streamed from the staging database; run again on a lost race."""
    on = " AND ".join(f"t.{k} = s.{k}" for k in spec.key)
    if spec.partition:
        values = inserted.distinct(spec.partition)
        on += f" AND t.{spec.partition} = s.{spec.partition} AND " + _partition_predicate(spec.partition, values, "t.")
    _merge_retrying(
        snapshot,
        spec,
        lambda table: table.merge(
            inserted.reader(), on, source_alias="s", target_alias="t", writer_properties=writer_properties()
        ).when_not_matched_insert_all(),
    )


def _merge_retrying(snapshot: Snapshot, spec: TableSpec, build) -> None:
    dl = _deltalake()
    for attempt in range(1, _MERGE_ATTEMPTS + 1):
        table = dl.DeltaTable(snapshot.lake.table_uri(spec.name), storage_options=_options(snapshot))
        try:
            build(table).execute()
            return
        except dl.exceptions.CommitFailedError:
            if attempt == _MERGE_ATTEMPTS:
                raise
            log.info("merge into %s lost a race to another writer; merging again (%d)", spec.name, attempt)
            time.sleep(random.uniform(0.05, 0.2) * attempt)


def _merge(snapshot: Snapshot, spec: TableSpec, upserts: pa.Table, delete_keys: pa.Table | None) -> None:
    """One merge commit on the table's key (within the touched partitions); retried on a lost race.

    Only inserts (`delete_keys` None): rows whose key is already stored are left
    as stored. Otherwise rows matched by `delete_keys` and not upserted are
    deleted, matched upserts replace the stored row, the rest are inserted.
    """
    # delta-rs predicates take plain column names (every name in the schema is one)
    on = " AND ".join(f"t.{k} = s.{k}" for k in spec.key)
    source = upserts.append_column("__op", pa.array(["upsert"] * upserts.num_rows, pa.string()))
    if delete_keys is not None and delete_keys.num_rows:
        upsert_keys = set(zip(*(upserts[k].to_pylist() for k in spec.key), strict=True))
        gone = [
            i
            for i, key in enumerate(zip(*(delete_keys[k].to_pylist() for k in spec.key), strict=True))
            if key not in upsert_keys
        ]
        if gone:
            dead = delete_keys.take(pa.array(gone, pa.int64()))
            filler = {
                c: (dead[c] if c in dead.column_names else pa.nulls(len(gone), spec.schema.field(c).type))
                for c in spec.schema.names
            }
            dead_rows = pa.table(filler, schema=spec.schema).append_column(
                "__op", pa.array(["delete"] * len(gone), pa.string())
            )
            source = pa.concat_tables([source, dead_rows])
    if spec.partition:
        values = source[spec.partition].to_pylist()
        on += f" AND t.{spec.partition} = s.{spec.partition} AND " + _partition_predicate(spec.partition, values, "t.")

    def build(table):
        builder = table.merge(source, on, source_alias="s", target_alias="t")
        if delete_keys is not None:
            builder = builder.when_matched_delete(predicate="s.__op = 'delete'").when_matched_update_all(
                predicate="s.__op = 'upsert'", except_cols=["__op"]
            )
        return builder.when_not_matched_insert_all(predicate="s.__op = 'upsert'", except_cols=["__op"])

    _merge_retrying(snapshot, spec, build)


def _replace_partitions(con, snapshot: Snapshot, item: _Loaded, values: list) -> None:
    """Replace the partitions with `values` by their staged content, and the copies of keys the
    staging database could not hold (`_Loaded.shadowed`) back as they were (one overwrite commit)."""
    dl = _deltalake()
    spec = item.spec
    column = spec.partition
    assert column is not None
    predicate = _partition_predicate(column, values)
    columns = ", ".join(_quote_ident(c) for c in spec.schema.names)
    rows = (
        con.sql(f"SELECT {columns} FROM {_quote_ident(spec.name)} WHERE {predicate}").to_arrow_table().cast(spec.schema)
    )
    if item.shadowed is not None:
        mask = pc.is_in(item.shadowed[column], value_set=pa.array(values, spec.schema.field(column).type))
        rows = pa.concat_tables([rows, item.shadowed.filter(pc.fill_null(mask, False))])
    _overwrite(dl, snapshot, spec, rows, predicate)


def _replace_table(con, snapshot: Snapshot, spec: TableSpec) -> None:
    dl = _deltalake()
    columns = ", ".join(_quote_ident(c) for c in spec.schema.names)
    rows = con.sql(f"SELECT {columns} FROM {_quote_ident(spec.name)}").to_arrow_table().cast(spec.schema)
    # a predicate (even `true`) makes delta-rs check the commit against concurrent
    # ones; a plain overwrite would silently drop another writer's rows
    _overwrite(dl, snapshot, spec, rows, "true")


def _overwrite(dl, snapshot: Snapshot, spec: TableSpec, rows: pa.Table, predicate: str) -> None:
    # against the version this transaction loaded: a commit in between is a conflict
    table = snapshot.tables[spec.name]
    try:
        dl.write_deltalake(table, rows, mode="overwrite", predicate=predicate)
    except dl.exceptions.CommitFailedError as exc:
        raise ConcurrentWriteError(
            f"another writer changed {spec.name} ({predicate}) while this transaction ran; "
            "nothing of this write is visible in that table, run the step again",
            file=snapshot.lake.uri,
        ) from exc


# --- maintenance -------------------------------------------------------------------------

# Files a commit no longer references are deleted only once they are older than this:
# time travel (`DeltaTable(..., version=N)`) and readers still scanning an older version
# need them until then. Delta's own default is 7 days; so is ours.
DEFAULT_RETENTION_HOURS = 7 * 24


def maintain(lake: config.LakeLocation, *, retention_hours: int = DEFAULT_RETENTION_HOURS) -> dict[str, dict]:
    """Compact small files (`optimize`) and delete unreferenced files past the retention (`vacuum`).

    Per table: {"files_added", "files_removed", "vacuumed"}. Compaction is a Delta
    commit like any other, so it runs while writers commit (a lost race is left to
    the next run rather than retried).
    """
    dl = _deltalake()
    Snapshot.open(lake, create=False)  # refuses a missing lake, or one of another schema version
    done: dict[str, dict] = {}
    for name in template().tables:
        table = dl.DeltaTable(lake.table_uri(name), storage_options=lake.storage_options())
        try:
            metrics = table.optimize.compact()
        except dl.exceptions.CommitFailedError:
            log.info("compaction of %s lost a race to a writer; left for the next run", name)
            metrics = {"numFilesAdded": 0, "numFilesRemoved": 0}
        removed = table.vacuum(
            retention_hours=retention_hours,
            dry_run=False,
            enforce_retention_duration=retention_hours >= DEFAULT_RETENTION_HOURS,
        )
        done[name] = {
            "files_added": metrics.get("numFilesAdded", 0),
            "files_removed": metrics.get("numFilesRemoved", 0),
            "vacuumed": len(removed),
        }
    return done

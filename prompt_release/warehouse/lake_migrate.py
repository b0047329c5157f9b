"""Bring a lake written by an older prompt-release up to the current schema.

The file backend migrates on open (`migrate.migrate`). A lake is migrated by
an explicit step, `prompt-release warehouse migrate`, with its writers
stopped: a migration rewrites whole tables, and a process still running the
old code would keep writing the old schema.

The same numbered SQL migrations run, so both backends end in the same
schema with the same data. Per pending migration range:

- tables the migrations create are created empty (as a new lake creates them);
- tables whose columns change, or that a pending `INSERT`/`UPDATE`/`DELETE`
  names, are staged in an in-memory DuckDB migrated to the lake's version,
  loaded with their committed rows, migrated there, and written back as one
  overwrite commit each (in `lake.COMMIT_ORDER`), against the version that
  was loaded: a commit by another writer in between fails the migration and
  leaves that table as it was;
- every other table is untouched (views are not stored in a lake: readers
  build them from the migrations' SQL);
- the new `schema_version` rows are committed last, so until then every
  reader and writer of the current code refuses the lake, and none sees a
  half-migrated one.

Each rewrite is tagged in its Delta commit (`prompt_release.migrated_to`), so a
migration stopped part-way (a crash, a lost race) is run again and rewrites
only the tables not done yet.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import duckdb
from pydantic import BaseModel

from prompt_release import config
from prompt_release.errors import UserError
from prompt_release.warehouse import duck, lake
from prompt_release.warehouse.migrate import SCHEMA_VERSION, migrate, migrations, refuse_newer

_MARK = "prompt_release.migrated_to"
_DML = {duckdb.StatementType.INSERT, duckdb.StatementType.UPDATE, duckdb.StatementType.DELETE}


class LakeMigration(BaseModel):
    """What `migrate_lake` did."""

    uri: str
    from_version: int
    to_version: int
    created: list[str] = []
    rewritten: dict[str, int] = {}  # table -> rows written
    already_done: list[str] = []  # rewritten by an earlier, interrupted run


def _written_by_dml(found: int, tables: set[str]) -> set[str]:
    """Tables a pending migration's INSERT/UPDATE/DELETE names (as target or as source)."""
    named: set[str] = set()
    for version, _name, sql in migrations():
        if version <= found:
            continue
        for statement in duckdb.extract_statements(sql):
            if statement.type in _DML:
                named |= {t for t in tables if re.search(rf"\b{re.escape(t)}\b", statement.query)}
    return named


def _already_migrated(table, version: int) -> bool:
    return any(str(commit.get(_MARK)) == str(version) for commit in table.history(20))


def migrate_lake(location: config.LakeLocation, *, log: Callable[[str], None] = lambda message: None) -> LakeMigration:
    """Migrate the lake to SCHEMA_VERSION; a lake already there is left as it is."""
    dl = lake._deltalake()
    lake._check_credentials(location)
    options = location.storage_options()
    try:
        if not dl.DeltaTable.is_deltatable(location.table_uri("schema_version"), storage_options=options):
            raise UserError(f"no warehouse in the lake {location.uri} to migrate", field=location.setting)
        found = lake.stored_version(dl.DeltaTable(location.table_uri("schema_version"), storage_options=options))
    except UserError:
        raise
    except Exception as exc:
        raise lake._store_error(location, exc) from exc
    done = LakeMigration(uri=location.uri, from_version=found, to_version=SCHEMA_VERSION)
    refuse_newer(found, location.uri)
    if found == SCHEMA_VERSION:
        return done
    old, new = lake.template(found), lake.template()
    kept = set(old.tables) & set(new.tables)
    added = set(new.tables) - set(old.tables)
    changed = {n for n in kept if not old.tables[n].schema.equals(new.tables[n].schema)}
    dml = _written_by_dml(found, set(new.tables))
    done.created = sorted(
        n for n in added if not dl.DeltaTable.is_deltatable(location.table_uri(n), storage_options=options)
    )
    lake._create_tables(location, new)  # the new tables, empty (schema_version exists: left as it is)
    log(f"lake {location.uri}: schema {found} -> {SCHEMA_VERSION}; new tables: {', '.join(done.created) or 'none'}")
    stored = {name: dl.DeltaTable(location.table_uri(name), storage_options=options) for name in new.tables}
    todo = set()
    for name in sorted(changed | dml):
        if _already_migrated(stored[name], SCHEMA_VERSION):
            done.already_done.append(name)
        else:
            todo.add(name)

    snapshot = lake.Snapshot(location, stored)
    con = duck.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        migrate(con, upto=found)
        # the rows of what is rewritten, and of what a DML reads; a table an interrupted run
        # already migrated is in the new schema and cannot be staged in the old one
        for name in sorted(((todo | dml) & kept) - set(done.already_done)):
            lake._load(con, snapshot, old.tables[name], None)
        migrate(con)
        for name in lake._commit_order(todo):
            spec = new.tables[name]
            columns = ", ".join(lake._quote_ident(c) for c in spec.schema.names)
            rows = con.sql(f"SELECT {columns} FROM {lake._quote_ident(name)}").to_arrow_table().cast(spec.schema)
            try:
                # against the version loaded (predicate given): another writer's commit in between fails it
                dl.write_deltalake(
                    stored[name],
                    rows,
                    mode="overwrite",
                    predicate="true",
                    schema_mode="overwrite",
                    partition_by=[spec.partition] if spec.partition else None,
                    commit_properties=dl.CommitProperties(custom_metadata={_MARK: str(SCHEMA_VERSION)}),
                )
            except dl.exceptions.CommitFailedError as exc:
                raise lake.ConcurrentWriteError(
                    f"another writer changed {name} while the lake was being migrated; stop every writer "
                    "and run `prompt-release warehouse migrate` again (tables already migrated are kept)",
                    file=location.uri,
                ) from exc
            done.rewritten[name] = rows.num_rows
            log(f"  {name}: {rows.num_rows} rows rewritten")
        versions = con.sql(f"SELECT * FROM schema_version WHERE version > {found} ORDER BY version").to_arrow_table()
    finally:
        con.close()
    # last: from this commit on, the lake is at the new version for every reader and writer
    dl.write_deltalake(
        location.table_uri("schema_version"),
        versions.cast(new.tables["schema_version"].schema),
        mode="append",
        storage_options=options,
    )
    return done

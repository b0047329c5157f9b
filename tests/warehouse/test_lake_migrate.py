"""A lake written by an older prompt-release is refused, then migrated by `prompt-release warehouse migrate`.

The old lake is built the way the older code built it: its tables created from
the schema of that version (`lake.template(version)`), its rows committed, its
`schema_version` rows last.
"""

from __future__ import annotations

import json
from datetime import date

import deltalake
import duckdb
import pyarrow as pa
import pytest

from prompt_release import config
from prompt_release.errors import SchemaVersionError
from prompt_release.traces import ingest_paths
from prompt_release.warehouse import lake, lake_migrate
from prompt_release.warehouse.connection import read_connection
from prompt_release.warehouse.migrate import SCHEMA_VERSION, migrate
from tests.conftest import run_cli

OLD = 16  # before 0017 added label_events.forced (a new column, filled by an UPDATE) and 0019 the events table

OLD_ROWS = """
INSERT INTO label_events (event_id, prompt_id, ts, action, label, from_version, to_version, actor, reason)
VALUES ('e1', 'support_router', '2026-11-01 10:00:00+00', 'move', 'production', NULL, '1.5.2', 'ana', 'first'),
       ('e2', 'support_router', '2026-11-02 10:00:00+00', 'move', 'production', '1.5.2', '1.6.0', 'bot', 'gate');
INSERT INTO traces (span_id, trace_id, ts, day, ts_source, prompt_id, status, source_format, source_file,
                    record_key, ingested_at)
VALUES ('s1', 't1', '2026-11-01 09:00:00+00', '2026-11-01', 'record', 'support_router', 'ok', 'native', 'a.jsonl',
        'k1', '2026-11-01 12:00:00+00'),
       ('s2', 't2', '2026-11-02 09:00:00+00', '2026-11-02', 'record', 'support_router', 'ok', 'native', 'b.jsonl',
        'k2', '2026-11-02 12:00:00+00');
INSERT INTO ingest_files (source_file, format, lines_read, blank_lines, records, stored, duplicates, rejected,
                          non_call_spans, prompt_version_missing, ingested_at)
VALUES ('a.jsonl', 'native', 1, 0, 1, 1, 0, 0, 0, 0, '2026-11-01 12:00:00+00');
"""


def _old_lake(location: config.LakeLocation) -> None:
    con = duckdb.connect()
    migrate(con, upto=OLD)
    con.execute("SET TimeZone = 'UTC'")
    con.execute(OLD_ROWS)
    options = location.storage_options()
    old = lake.template(OLD)
    for name in [*(n for n in old.tables if n != "schema_version"), "schema_version"]:
        spec = old.tables[name]
        rows = con.sql(f"SELECT * FROM {name}").to_arrow_table().cast(spec.schema)
        deltalake.write_deltalake(
            location.table_uri(name),
            rows,
            storage_options=options,
            partition_by=[spec.partition] if spec.partition else None,
        )
    con.close()


def _contents(warehouse: str) -> dict:
    with read_connection(warehouse) as con:
        return {
            "history": con.sql("SELECT event_id, change, forced FROM v_label_history ORDER BY event_id").fetchall(),
            "traces": con.sql("SELECT span_id, day, record_key FROM traces ORDER BY span_id").fetchall(),
            "files": con.sql("SELECT source_file, stored, events, events_unknown_call FROM ingest_files").fetchall(),
            "events": con.sql("SELECT count(*) FROM events").fetchall(),
        }


def test_an_older_lake_is_refused_naming_the_command_that_migrates_it(lake_warehouse: str) -> None:
    _old_lake(config.lake_location(lake_warehouse))
    with (
        pytest.raises(SchemaVersionError, match=f"version {OLD} is older.*prompt-release warehouse migrate"),
        read_connection(lake_warehouse),
    ):
        pass
    result = run_cli("sql", "SELECT 1", "--warehouse", lake_warehouse)
    assert result.returncode == 2 and "prompt-release warehouse migrate" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_lake_from_a_newer_prompt_release_is_refused_by_readers_and_by_migrate(lake_warehouse: str) -> None:
    location = config.lake_location(lake_warehouse)
    with read_connection(lake_warehouse):
        pass  # a lake at this version
    row = {"version": [SCHEMA_VERSION + 1], "name": ["9999_from_the_future.sql"], "applied_at": [None]}
    newer = pa.table(row).cast(lake.template().tables["schema_version"].schema)
    deltalake.write_deltalake(
        location.table_uri("schema_version"), newer, mode="append", storage_options=location.storage_options()
    )
    newer_than = f"version {SCHEMA_VERSION + 1} is newer than this prompt-release understands"
    with pytest.raises(SchemaVersionError, match=newer_than), read_connection(lake_warehouse):
        pass
    result = run_cli("warehouse", "migrate", "--warehouse", lake_warehouse)
    assert result.returncode == 2 and newer_than in result.stderr and location.uri in result.stderr
    assert "Traceback" not in result.stderr


def test_migrate_brings_an_old_lake_to_this_schema_keeping_every_row(lake_warehouse: str) -> None:
    location = config.lake_location(lake_warehouse)
    _old_lake(location)
    traces_version = deltalake.DeltaTable(location.table_uri("traces"), storage_options=location.storage_options())

    result = run_cli("warehouse", "migrate", "--json", "--warehouse", lake_warehouse)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["from_version"], report["to_version"]) == (OLD, SCHEMA_VERSION)
    assert report["rewritten"] == {"label_events": 2, "ingest_files": 1}  # 0019 adds its event counts
    assert report["created"] == ["events"]
    assert _contents(lake_warehouse) == {
        "history": [
            ("e1", "production: (none) -> 1.5.2", False),
            ("e2", "production: 1.5.2 -> 1.6.0", False),
        ],
        "traces": [("s1", date(2026, 11, 1), "k1"), ("s2", date(2026, 11, 2), "k2")],
        "files": [("a.jsonl", 1, 0, 0)],
        "events": [(0,)],
    }
    # a table the migrations do not change is not rewritten
    traces_after = deltalake.DeltaTable(location.table_uri("traces"), storage_options=location.storage_options())
    assert traces_after.version() == traces_version.version()

    again = run_cli("warehouse", "migrate", "--warehouse", lake_warehouse)
    assert again.returncode == 0 and f"already at version {SCHEMA_VERSION}" in again.stdout


def test_a_migrated_lake_stores_late_events_and_joins_them_to_the_calls_it_kept(tmp_path) -> None:
    location = config.lake_location(f"{tmp_path}/w.lake")
    _old_lake(location)
    lake_migrate.migrate_lake(location)
    day = tmp_path / "landing" / "2026-11-01"
    day.mkdir(parents=True)
    event = {"event": "feedback", "span_id": "s1", "value": "down", "timestamp": "2026-11-01T10:00:00Z"}
    (day / "late.jsonl").write_text(json.dumps(event) + "\n")

    (stored,) = ingest_paths([day / "late.jsonl"], warehouse=location.uri).files

    assert (stored.events, stored.events_unknown_call) == (1, 0)  # s1 was written before the migration
    with read_connection(location.uri) as con:
        assert con.sql("SELECT span_id, kind, value FROM events").fetchall() == [("s1", "feedback", -1.0)]


def test_a_migration_stopped_before_its_last_commit_is_completed_by_a_rerun(tmp_path, monkeypatch) -> None:
    location = config.lake_location(f"{tmp_path}/w.lake")
    _old_lake(location)
    real_write = deltalake.write_deltalake

    def crash_at_schema_version(target, data, *args, **kwargs):
        if str(target).endswith("schema_version"):
            raise KeyboardInterrupt  # the process dies after rewriting its tables
        return real_write(target, data, *args, **kwargs)

    monkeypatch.setattr(deltalake, "write_deltalake", crash_at_schema_version)
    with pytest.raises(KeyboardInterrupt):
        lake_migrate.migrate_lake(location)
    monkeypatch.setattr(deltalake, "write_deltalake", real_write)
    with pytest.raises(SchemaVersionError), read_connection(location.uri):  # still the old version for readers
        pass

    done = lake_migrate.migrate_lake(location)

    assert done.already_done == ["ingest_files", "label_events"] and done.rewritten == {}
    assert [forced for _, _, forced in _contents(location.uri)["history"]] == [False, False]


def test_a_write_during_the_migration_fails_it_and_leaves_the_table_as_that_writer_left_it(
    tmp_path, monkeypatch
) -> None:
    location = config.lake_location(f"{tmp_path}/w.lake")
    _old_lake(location)
    real_load = lake._load

    def load_then_another_writer_commits(con, snapshot, spec, partitions):
        staged = real_load(con, snapshot, spec, partitions)
        if spec.name == "label_events":
            late = staged.baseline.slice(0, 1).set_column(0, "event_id", pa.array(["e3"]))
            deltalake.write_deltalake(location.table_uri("label_events"), late, mode="append")
        return staged

    monkeypatch.setattr(lake, "_load", load_then_another_writer_commits)
    with pytest.raises(lake.ConcurrentWriteError, match="stop every writer"):
        lake_migrate.migrate_lake(location)
    monkeypatch.setattr(lake, "_load", real_load)

    stored = deltalake.DeltaTable(location.table_uri("label_events")).to_pyarrow_table()
    assert stored.num_rows == 3 and "forced" not in stored.column_names  # the writer's rows, the old schema
    assert lake_migrate.migrate_lake(location).rewritten == {"label_events": 3, "ingest_files": 1}


def test_migrate_on_a_duckdb_file_says_what_it_did(tmp_path) -> None:
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    migrate(con, upto=OLD)
    con.execute(OLD_ROWS)
    con.close()

    first = run_cli("warehouse", "migrate", "--warehouse", str(path))
    second = run_cli("warehouse", "migrate", "--warehouse", str(path))

    assert first.returncode == 0, first.stderr
    assert f"migrated from version {OLD} to {SCHEMA_VERSION}" in first.stdout
    assert f"already at version {SCHEMA_VERSION}" in second.stdout
    assert [forced for _, _, forced in _contents(str(path))["history"]] == [False, False]

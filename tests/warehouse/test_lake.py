"""The Delta Lake backend: same tables, views and columns as the file; one commit per write."""

from __future__ import annotations

import re
import tokenize
from pathlib import Path

import pytest

from prompt_release.errors import UserError
from prompt_release.warehouse import analyst_connection, read_connection, write_transaction
from tests.conftest import free_port, run_cli

SCHEMA_SQL = (
    "SELECT table_name, column_name, data_type, comment FROM duckdb_columns() "
    "WHERE database_name = current_database() AND schema_name = 'main' ORDER BY table_name, column_index"
)
VIEWS_SQL = (
    "SELECT view_name, comment FROM duckdb_views() WHERE NOT internal AND view_name LIKE 'v\\_%' ESCAPE '\\' ORDER BY 1"
)


def test_the_lake_has_the_file_backends_tables_views_and_columns(tmp_path: Path) -> None:
    with read_connection(tmp_path / "w.duckdb") as con:
        file_columns = con.sql(SCHEMA_SQL).fetchall()
        file_views = con.sql(VIEWS_SQL).fetchall()
    with read_connection(f"{tmp_path}/w.lake") as con:
        lake_columns = con.sql(SCHEMA_SQL).fetchall()
        lake_views = con.sql(VIEWS_SQL).fetchall()
    assert len(file_views) >= 7 and lake_views == file_views
    assert lake_columns == file_columns  # names, types (JSON, TIMESTAMPTZ, lists) and comments


def test_a_failed_write_leaves_nothing_and_the_analyst_session_is_read_only(any_warehouse: str) -> None:
    with write_transaction(any_warehouse) as con:
        con.execute(
            "INSERT INTO label_events (event_id, prompt_id, ts, action, actor, reason) "
            "VALUES ('e1', 'p', now(), 'move', 'me', 'first')"
        )
    with pytest.raises(RuntimeError), write_transaction(any_warehouse) as con:
        con.execute("DELETE FROM label_events")
        con.execute(
            "INSERT INTO label_events (event_id, prompt_id, ts, action, actor, reason) "
            "VALUES ('e2', 'p', now(), 'move', 'me', 'second')"
        )
        raise RuntimeError("the step failed")
    analyst = analyst_connection(any_warehouse)
    try:
        assert analyst.sql("SELECT event_id, reason FROM label_events").fetchall() == [("e1", "first")]
        with pytest.raises(Exception, match="(?i)read-only|is not an table"):
            analyst.execute(
                "INSERT INTO label_events (event_id, prompt_id, ts, action, actor, reason) "
                "VALUES ('e3', 'p', now(), 'move', 'me', 'analyst')"
            )
    finally:
        analyst.close()


def test_keyed_rows_are_replaced_and_deleted_by_key(tmp_path: Path) -> None:
    lake = f"{tmp_path}/w.lake"
    with write_transaction(lake) as con:
        con.execute(
            "INSERT INTO gate_reports SELECT 'r' || i, 'run', 'wf', 'c', 'h', 'b', 'h', NULL, 'promote', 0, "
            "NULL, '{}', '{}', NULL, now() FROM range(3) t(i)"
        )
    with write_transaction(lake) as con:  # the way gates/evaluate.py rewrites a report
        con.execute("DELETE FROM gate_reports WHERE report_id IN ('r1', 'r2')")
        con.execute(
            "INSERT INTO gate_reports SELECT 'r1', 'run', 'wf', 'c', 'h', 'b', 'h', NULL, 'reject', 1, "
            "NULL, '{}', '{}', NULL, now()"
        )
    with read_connection(lake) as con:
        assert con.sql("SELECT report_id, verdict FROM gate_reports ORDER BY 1").fetchall() == [
            ("r0", "promote"),
            ("r1", "reject"),
        ]


def test_a_lake_created_again_at_the_same_place_is_read_anew(tmp_path: Path) -> None:
    """Readers keep the Arrow dataset of each table version they opened; a lake deleted and created
    again at the same URI has the same version numbers, and must not be read from those."""
    import shutil

    lake = f"{tmp_path}/w.lake"

    def report(report_id: str) -> None:
        with write_transaction(lake) as con:
            con.execute(
                f"INSERT INTO gate_reports SELECT '{report_id}', 'run', 'wf', 'c', 'h', 'b', 'h', NULL, 'promote', "
                "0, NULL, '{}', '{}', NULL, now()"
            )

    def reports() -> list[tuple]:
        with read_connection(lake) as con:
            return con.sql("SELECT report_id FROM gate_reports ORDER BY 1").fetchall()

    report("first")
    assert reports() == [("first",)]
    report("second")
    assert reports() == [("first",), ("second",)]  # a new version of the table is a new dataset
    shutil.rmtree(lake)
    report("again")
    assert reports() == [("again",)]


def test_a_table_outside_the_schema_is_refused_not_silently_dropped(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="scratch_table would be lost"), write_transaction(f"{tmp_path}/w.lake") as con:
        con.execute("CREATE TABLE scratch_table AS SELECT 1 AS x")


def test_sql_on_a_lake_that_does_not_exist_says_so(tmp_path: Path) -> None:
    result = run_cli("sql", "SELECT 1", "--warehouse", f"{tmp_path}/none.lake")
    assert result.returncode == 2
    assert "no warehouse in the lake" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "none.lake").exists()


def test_prompt_release_sql_reads_a_lake(tmp_path: Path) -> None:
    lake = f"{tmp_path}/w.lake"
    with write_transaction(lake) as con:
        con.execute(
            "INSERT INTO label_events (event_id, prompt_id, ts, action, label, to_version, actor, reason) "
            "VALUES ('e1', 'p', now(), 'move', 'production', 'p:v1.0.0', 'me', 'because')"
        )
    result = run_cli("sql", "SELECT change FROM v_label_history", "--format", "csv", "--warehouse", lake)
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.splitlines() == ["change", "production: (none) -> p:v1.0.0"]
        or result.stdout.splitlines()[0] == "change"
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}, "no credentials"),
        ({"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}, "cannot use the lake"),  # nothing listens
    ],
)
def test_an_unusable_store_is_one_line_naming_the_setting_and_exit_2(env: dict, expected: str, tmp_path: Path) -> None:
    port = free_port()  # closed again: connections are refused
    full = {
        "PROMPT_RELEASE_WAREHOUSE": "s3://bucket/lake",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_REGION": "us-east-1",
        **env,
    }
    result = run_cli("sql", "SELECT 1", cwd=tmp_path, env=full)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "PROMPT_RELEASE_WAREHOUSE" in lines[0], result.stderr
    assert "b" * 1 not in lines[0].split("cannot use the lake")[0][-1:]  # the line carries no key
    assert list(tmp_path.iterdir()) == []


def test_maintenance_compacts_small_files_and_keeps_the_rows(tmp_path: Path) -> None:
    from prompt_release import config
    from prompt_release.warehouse.lake import maintain

    lake = f"{tmp_path}/w.lake"
    for i in range(4):  # four commits, four small files
        with write_transaction(lake) as con:
            con.execute(
                "INSERT INTO ingest_files VALUES (?, 'native', 1, 0, 1, 1, 0, 0, 0, 0, now(), 0, 0, 0)", [f"f{i}"]
            )
    done = maintain(config.lake_location(lake), retention_hours=0)
    assert done["ingest_files"]["files_removed"] == 4 and done["ingest_files"]["files_added"] == 1
    assert done["ingest_files"]["vacuumed"] == 4  # retention 0: the replaced files go at once
    with read_connection(lake) as con:
        assert con.sql("SELECT count(*) FROM ingest_files").fetchall() == [(4,)]


def test_no_writer_changes_a_row_in_place() -> None:
    # A lake commits the rows a transaction inserted and deleted (by row id): a row changed in place
    # keeps its id and never reaches the lake (a spend's settlement and a forced flag were lost so).
    in_place = re.compile(r"\bUPDATE\s+\w+\s+SET\b|\bINSERT\s+OR\s+REPLACE\b|\bDO\s+UPDATE\b")
    package = Path(__file__).resolve().parents[2] / "prompt_release"
    found = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "lake_migrate.py":  # it rewrites whole tables, in-place changes included
            continue
        with path.open("rb") as source:
            for token in tokenize.tokenize(source.readline):
                if token.type == tokenize.STRING and in_place.search(token.string):
                    found.append(f"{path.relative_to(package)}:{token.start[0]}")
    assert found == []

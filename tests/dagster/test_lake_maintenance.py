"""The lake maintenance job compacts the lake's tables; on a DuckDB file it does nothing."""

from __future__ import annotations

from pathlib import Path

from prompt_release.warehouse import read_connection, write_transaction
from prompt_release_dagster.defs.warehouse import lake_maintenance
from prompt_release_dagster.resources import WarehouseResource


def test_the_job_compacts_the_lake_and_keeps_every_row(tmp_path: Path) -> None:
    lake = f"{tmp_path}/w.lake"
    for i in range(3):
        with write_transaction(lake) as con:
            con.execute(
                "INSERT INTO ingest_files VALUES (?, 'native', 1, 0, 1, 1, 0, 0, 0, 0, now(), 0, 0, 0)", [f"f{i}"]
            )
    result = lake_maintenance.execute_in_process(resources={"warehouse": WarehouseResource(path=lake)})
    assert result.success
    done = result.output_for_node("lake_maintenance_op")
    assert done["ingest_files"]["files_removed"] == 3 and done["ingest_files"]["files_added"] == 1
    assert done["ingest_files"]["vacuumed"] == 0  # younger than the 7-day retention: kept for time travel
    with read_connection(lake) as con:
        assert con.sql("SELECT count(*) FROM ingest_files").fetchall() == [(3,)]


def test_the_job_does_nothing_on_a_duckdb_file(tmp_path: Path) -> None:
    result = lake_maintenance.execute_in_process(
        resources={"warehouse": WarehouseResource(path=str(tmp_path / "w.duckdb"))}
    )
    assert result.success and result.output_for_node("lake_maintenance_op") == {}

"""Day writers on a lake: mining stages only its day, and two minings at once never store a day twice.

On a lake, ingest (`traces`) and mining (`failures`) run in the Dagster pool
`warehouse_day`, several days at once (tests/dagster/test_pools.py); these
tests hold the commits to what that needs.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path

import pytest

from prompt_release.mining.detectors import _day_scope, mine_failures
from prompt_release.traces import ingest_day, ingest_paths
from prompt_release.warehouse import lake as lake_backend
from prompt_release.warehouse import read_connection, write_transaction
from tests.warehouse.conftest import all_at_once

DAYS = ("2026-11-02", "2026-11-03", "2026-11-04")
ERRORS_PER_DAY = 7


def errored_calls(landing: Path, day: str, n: int = 40) -> Path:
    """n calls on `day`, the first ERRORS_PER_DAY of them errors (one `error` failure each)."""
    folder = landing / day
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "trace_id": f"tr_{day}_{i}",
            "span_id": f"sp_{day}_{i}",
            "workflow": "wf",
            "prompt_version": "wf:v1.0.0",
            "model": "m",
            "latency_ms": 5,
            "status": "error" if i < ERRORS_PER_DAY else "ok",
            "timestamp": f"{day}T10:00:00Z",
        }
        for i in range(n)
    ]
    path = folder / "calls.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def error_failures_by_day(lake: str) -> dict[str, tuple[int, int]]:
    """day -> (error failures, distinct calls among them)."""
    with read_connection(lake) as con:
        rows = con.execute(
            "SELECT day::VARCHAR, count(*), count(DISTINCT record_key) FROM failures "
            "WHERE failure_class = 'error' GROUP BY 1 ORDER BY 1"
        ).fetchall()
    return {day: (n, distinct) for day, n, distinct in rows}


@pytest.fixture
def lake(tmp_path: Path) -> str:
    lake = str(tmp_path / "w.lake")
    ingest_paths([errored_calls(tmp_path / "landing", day) for day in DAYS], warehouse=lake)
    return lake


def test_mining_a_day_stages_that_day_of_traces_and_failures_only(lake: str, staged_rows) -> None:
    for day in DAYS:
        mine_failures(lake, day=day)
    staged_rows.clear()
    summary = mine_failures(lake, day=DAYS[1])
    assert summary.calls == 40 and summary.failures_by_class.get("error") == ERRORS_PER_DAY
    # one day of the three: 40 traces, 7 failures; the late events are read where they are committed
    assert staged_rows == {"traces": [40], "failures": [ERRORS_PER_DAY]}
    assert error_failures_by_day(lake) == {day: (ERRORS_PER_DAY, ERRORS_PER_DAY) for day in DAYS}


def test_two_minings_of_the_same_day_at_once_store_it_once(lake: str) -> None:
    # A mining that staged the day's failures empty, while another mining of the same day commits:
    # its commit is refused (it would have appended the same failures again), and nothing of it lands.
    with pytest.raises(lake_backend.ConcurrentWriteError, match="failures"):
        with write_transaction(lake, scope=_day_scope(date.fromisoformat(DAYS[0]))) as con:
            con.execute(
                "INSERT INTO failures (span_id, record_key, day, failure_class, severity, severity_rank) "
                "SELECT span_id, record_key, day, 'error', 'high', 3 FROM traces WHERE status = 'error'"
            )
            mine_failures(lake, day=DAYS[0])  # the other writer, done first
    assert error_failures_by_day(lake) == {DAYS[0]: (ERRORS_PER_DAY, ERRORS_PER_DAY)}


def test_minings_of_several_days_at_once_all_land_once(lake: str) -> None:
    # three days and one of them twice, in threads, as the `warehouse_day` pool lets steps run:
    # a lost race on the same day is mined again over the new version, never stored twice
    _, errors = all_at_once(lambda day: mine_failures(lake, day=day), (*DAYS, DAYS[0]))
    assert not errors, errors
    assert error_failures_by_day(lake) == {day: (ERRORS_PER_DAY, ERRORS_PER_DAY) for day in DAYS}


def test_a_day_folder_ingested_again_stages_its_days_only(tmp_path: Path, staged_rows) -> None:
    # what the Dagster `traces` step does: ingest_day replaces the rows of one landing day folder
    lake = str(tmp_path / "w.lake")
    landing = tmp_path / "landing"
    far = ("2026-11-01", "2026-11-10", "2026-11-20")
    for day in far:
        errored_calls(landing, day)
        ingest_day(landing, day, warehouse=lake)
    staged_rows.clear()
    summary = ingest_day(landing, "2026-11-10", warehouse=lake)
    assert (summary.total.stored, summary.total.duplicates, summary.total.rejected) == (40, 0, 0)
    # 2026-11-10 and the day on each side (empty): its 40 calls, not the lake's 120
    assert staged_rows["traces"] == [40] and staged_rows["events"] == [0]
    with read_connection(lake) as con:
        assert con.execute("SELECT day::VARCHAR, count(*) FROM traces GROUP BY 1 ORDER BY 1").fetchall() == [
            (day, 40) for day in far
        ]
        assert con.execute("SELECT count(*), sum(stored) FROM ingest_files").fetchone() == (3, 120)


def test_day_folders_ingested_again_at_once_all_land_once(lake: str, tmp_path: Path) -> None:
    # the `warehouse_day` pool's case: a backfill re-running days side by side, one of them twice.
    # Each replaces its folder's rows and accounting row; a lost race is run again, never half-kept.
    summaries, errors = all_at_once(lambda day: ingest_day(tmp_path / "landing", day, warehouse=lake), (*DAYS, DAYS[0]))
    assert not errors, errors
    assert [(s.total.stored, s.total.duplicates, s.total.rejected) for s in summaries] == [(40, 0, 0)] * 4
    with read_connection(lake) as con:
        assert con.execute(
            "SELECT day::VARCHAR, count(*), count(DISTINCT record_key) FROM traces GROUP BY 1 ORDER BY 1"
        ).fetchall() == [(day, 40, 40) for day in DAYS]
        assert con.execute("SELECT count(*), sum(stored) FROM ingest_files").fetchone() == (3, 120)


def test_a_day_folder_that_loses_a_race_is_ingested_again_over_the_new_version(
    lake: str, tmp_path: Path, monkeypatch, caplog
) -> None:
    # Another day folder is ingested again, whole, while this one commits its first table: this
    # one's replacement of the accounting tables then loses (it staged the older version), nothing
    # of that commit is visible, and the folder is ingested again over the new version.
    real = lake_backend._commit_table
    raced: list[str] = []

    def commit(con, snapshot, item, inserted, deleted):
        if not raced:
            raced.append(item.spec.name)
            ingest_day(tmp_path / "landing", DAYS[1], warehouse=lake)  # the other writer, done first
        return real(con, snapshot, item, inserted, deleted)

    monkeypatch.setattr(lake_backend, "_commit_table", commit)
    with caplog.at_level(logging.INFO, logger=lake_backend.__name__):
        summary = ingest_day(tmp_path / "landing", DAYS[0], warehouse=lake)
    assert raced == ["traces"]
    assert any("lost a race to another writer" in r.getMessage() for r in caplog.records)
    assert (summary.total.stored, summary.total.duplicates, summary.total.rejected) == (40, 0, 0)
    with read_connection(lake) as con:
        assert con.execute(
            "SELECT day::VARCHAR, count(*), count(DISTINCT record_key) FROM traces GROUP BY 1 ORDER BY 1"
        ).fetchall() == [(day, 40, 40) for day in DAYS]
        assert con.execute("SELECT count(*), sum(stored) FROM ingest_files").fetchone() == (3, 120)

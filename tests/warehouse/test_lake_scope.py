"""A lake ingest stages the days it writes, not the lake, and dedups within a window of days (issue 14, acceptance 4)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from prompt_release.release.metrics import compute_version_metrics
from prompt_release.traces import ingest_paths
from prompt_release.traces.ingest import DEDUP_WINDOW_DAYS
from prompt_release.warehouse import Scope, ScopeMiss, read_connection, write_transaction


def calls(landing: Path, day: str, keys: list[str], *, ts_day: str | None = None, name: str = "calls.jsonl") -> Path:
    folder = landing / day
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    rows = [
        {
            "trace_id": f"tr_{key}",
            "span_id": key,
            "workflow": "wf",
            "prompt_version": "wf:v1.0.0",
            "model": "m",
            "latency_ms": 5,
            "timestamp": f"{ts_day or day}T10:00:00Z",
        }
        for key in keys
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_an_ingest_stages_only_the_traces_of_its_days_and_no_other_table(tmp_path: Path, staged_rows) -> None:
    lake = str(tmp_path / "w.lake")
    landing = tmp_path / "landing"
    for day in ("2026-11-01", "2026-11-10", "2026-11-20"):
        ingest_paths([calls(landing, day, [f"{day}-{i}" for i in range(30)])], warehouse=lake)
    staged_rows.clear()
    summary = ingest_paths([calls(landing, "2026-11-11", [f"new-{i}" for i in range(5)])], warehouse=lake)
    assert (summary.total.stored, summary.total.duplicates) == (5, 0)
    # the day folder and the day on each side: 2026-11-10's 30 rows, not the lake's 90
    assert staged_rows["traces"] == [30]
    assert set(staged_rows) == {"traces", "events", "ingest_files", "ingest_rejects"}
    with read_connection(lake) as con:
        assert con.execute("SELECT count(*), count(DISTINCT record_key) FROM traces").fetchone() == (95, 95)


def test_a_key_stored_within_the_window_of_its_day_is_a_duplicate_even_on_a_day_not_staged(
    tmp_path: Path, staged_rows
) -> None:
    lake = str(tmp_path / "w.lake")
    landing = tmp_path / "landing"
    ingest_paths([calls(landing, "2026-11-01", ["k1", "k2", "k3"])], warehouse=lake)
    # the same calls again, in a folder weeks later (a re-export, a misfiled file): their own
    # timestamps put them on 2026-11-01, which this ingest did not stage
    again = calls(landing, "2026-11-25", ["k1", "k2", "k9"], ts_day="2026-11-01")
    staged_rows.clear()
    summary = ingest_paths([again], warehouse=lake)
    assert (summary.total.stored, summary.total.duplicates, summary.total.rejected) == (1, 2, 0)
    assert staged_rows["traces"] == [0, 3]  # refused once (nothing written), then run with 2026-11-01 staged
    # one day away from a key stored on a day this ingest did not stage: looked up, a duplicate
    staged_rows.clear()
    summary = ingest_paths(
        [calls(landing, "2026-11-25", ["k3"], ts_day="2026-11-02", name="late.jsonl")], warehouse=lake
    )
    assert (summary.total.stored, summary.total.duplicates, summary.total.rejected) == (0, 1, 0)
    assert staged_rows["traces"] == [0, 4]
    # a call re-sent into the next day's folder, its clock past midnight: one day away, a duplicate
    summary = ingest_paths([calls(landing, "2026-11-02", ["k3", "m1"])], warehouse=lake)
    assert (summary.total.stored, summary.total.duplicates, summary.total.rejected) == (1, 1, 0)
    with read_connection(lake) as con:
        rows = con.execute("SELECT record_key, day::VARCHAR FROM traces ORDER BY 1").fetchall()
        files = con.execute(
            "SELECT sum(records), sum(stored), sum(duplicates), sum(rejected) FROM ingest_files"
        ).fetchone()
    assert rows == [
        ("k1", "2026-11-01"),
        ("k2", "2026-11-01"),
        ("k3", "2026-11-01"),
        ("k9", "2026-11-01"),
        ("m1", "2026-11-02"),
    ]
    assert files == (9, 5, 4, 0)


def test_a_key_stored_only_beyond_the_window_is_stored_again_on_its_own_day(tmp_path: Path, staged_rows) -> None:
    # The lake's rule (ingest.DEDUP_WINDOW_DAYS): a write looks keys up near its days only, so its
    # cost does not grow with the history; a key re-sent two days later is a new row on its day.
    assert DEDUP_WINDOW_DAYS == 1
    lake = str(tmp_path / "w.lake")
    landing = tmp_path / "landing"
    ingest_paths([calls(landing, "2026-11-01", ["k1", "k2"])], warehouse=lake)
    ingest_paths([calls(landing, "2026-11-20", [f"old-{i}" for i in range(20)])], warehouse=lake)
    staged_rows.clear()
    summary = ingest_paths([calls(landing, "2026-11-03", ["k1", "z3"])], warehouse=lake)
    assert (summary.total.stored, summary.total.duplicates, summary.total.rejected) == (2, 0, 0)
    assert staged_rows["traces"] == [0]  # 2026-11-02 to 2026-11-04: nothing else was read
    with read_connection(lake) as con:
        assert con.execute(
            "SELECT record_key, day::VARCHAR FROM traces WHERE record_key IN ('k1', 'z3') ORDER BY 2, 1"
        ).fetchall() == [("k1", "2026-11-01"), ("k1", "2026-11-03"), ("z3", "2026-11-03")]
        assert con.execute("SELECT sum(records), sum(stored), sum(duplicates) FROM ingest_files").fetchone() == (
            24,
            24,
            0,
        )
    # A write staging the whole lake holds one copy of a key (the earliest day's); the other is
    # written back as it is when its day is replaced.
    with write_transaction(lake) as con:
        assert con.execute("SELECT day::VARCHAR FROM traces WHERE record_key = 'k1'").fetchall() == [("2026-11-01",)]
        con.execute("DELETE FROM traces WHERE record_key = 'z3'")
        con.execute("INSERT INTO traces (span_id, day, record_key) VALUES ('n3', DATE '2026-11-03', 'n3')")
    with read_connection(lake) as con:
        assert con.execute(
            "SELECT record_key, day::VARCHAR FROM traces WHERE day >= DATE '2026-11-03' AND day < DATE '2026-11-20' "
            "ORDER BY 1"
        ).fetchall() == [("k1", "2026-11-03"), ("n3", "2026-11-03")]
        assert con.execute("SELECT count(*) FROM traces").fetchone() == (24,)
    # within the window of the new copy's day, the key is a duplicate again
    summary = ingest_paths([calls(landing, "2026-11-04", ["k1"])], warehouse=lake)
    assert (summary.total.stored, summary.total.duplicates) == (0, 1)


def test_a_scoped_transaction_refuses_writes_it_could_not_see_whole(tmp_path: Path) -> None:
    lake = str(tmp_path / "w.lake")
    landing = tmp_path / "landing"
    ingest_paths([calls(landing, "2026-11-01", ["k1"]), calls(landing, "2026-11-05", ["k5"])], warehouse=lake)
    scope = Scope.of(["traces"], {"traces": [dt.date(2026, 11, 5)]})
    # replacing a partition it did not load would drop that day's stored rows: refused
    with pytest.raises(ScopeMiss) as miss:
        with write_transaction(lake, scope=scope) as con:
            con.execute("DELETE FROM traces WHERE day = DATE '2026-11-05'")
            con.execute("INSERT INTO traces (span_id, day, record_key) VALUES ('x', DATE '2026-11-01', 'x')")
    assert miss.value.partitions == {"traces": {dt.date(2026, 11, 1)}}
    # a table outside the scope is read as committed, and not there to be written
    with pytest.raises(RuntimeError, match="scoped to traces wrote to a table outside its scope"):
        with write_transaction(lake, scope=scope) as con:
            con.execute(
                "INSERT INTO failures (span_id, record_key, day, failure_class, severity, severity_rank) "
                "VALUES ('s', 'k1', DATE '2026-11-01', 'error', 'hard', 1)"
            )
    with pytest.raises(RuntimeError, match="outside its scope"):
        with write_transaction(lake, scope=Scope.of(["failures"])) as con:
            con.execute("DELETE FROM traces WHERE day = DATE '2026-11-01'")
    with read_connection(lake) as con:
        assert con.execute("SELECT record_key FROM traces ORDER BY 1").fetchall() == [("k1",), ("k5",)]
        assert con.execute("SELECT count(*) FROM failures").fetchone() == (0,)


def test_a_scoped_transaction_reads_the_tables_outside_its_scope_as_committed(tmp_path: Path, staged_rows) -> None:
    lake = str(tmp_path / "w.lake")
    landing = tmp_path / "landing"
    ingest_paths(
        [calls(landing, day, [f"{day}-{i}" for i in range(20)]) for day in ("2026-11-01", "2026-11-02")], warehouse=lake
    )
    staged_rows.clear()
    with write_transaction(lake, scope=Scope.of(["version_metrics"])) as con:
        # every row of every day, and the documented views over them, with nothing of traces staged
        assert con.execute("SELECT day::VARCHAR, count(*) FROM traces GROUP BY 1 ORDER BY 1").fetchall() == [
            ("2026-11-01", 20),
            ("2026-11-02", 20),
        ]
        assert con.execute("SELECT sum(calls) FROM v_version_daily").fetchone() == (40,)
    assert staged_rows == {"version_metrics": [0]}
    # the daily version metrics, a writer so scoped, see the day's calls as the file backend does
    assert compute_version_metrics(lake, "2026-11-02") == 1
    with read_connection(lake) as con:
        assert con.execute("SELECT day::VARCHAR, calls FROM version_metrics").fetchall() == [("2026-11-02", 20)]
    assert set(staged_rows) == {"version_metrics"}


def test_a_new_day_written_by_another_writer_meanwhile_is_merged_into_not_duplicated(tmp_path: Path) -> None:
    # A transaction that staged a day empty writes it with a plain (streamed) write; when another
    # writer filled that day in between, the write is refused and the rows are merged on the key.
    lake = str(tmp_path / "w.lake")
    landing = tmp_path / "landing"
    ingest_paths([calls(landing, "2026-11-01", ["old"])], warehouse=lake)
    scope = Scope.of(["traces"], {"traces": [dt.date(2026, 11, 2)]})
    with write_transaction(lake, scope=scope) as con:
        for key in ("a", "b"):
            con.execute("INSERT INTO traces (span_id, day, record_key) VALUES (?, DATE '2026-11-02', ?)", [key, key])
        # the other writer commits "b" and "c" to the same day before this transaction ends
        with write_transaction(lake, scope=scope) as other:
            for key in ("b", "c"):
                other.execute(
                    "INSERT INTO traces (span_id, day, record_key) VALUES (?, DATE '2026-11-02', ?)", [key, key]
                )
    with read_connection(lake) as con:
        rows = con.execute("SELECT record_key, day::VARCHAR FROM traces ORDER BY 1").fetchall()
    assert rows == [("a", "2026-11-02"), ("b", "2026-11-02"), ("c", "2026-11-02"), ("old", "2026-11-01")]

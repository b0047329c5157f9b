"""Many small files in one SQL pass (issue 12: exporters that rotate many tiny files).

The small native files of a transaction are ingested together
(`ingest._ingest_native_batch`); what they store, reject and count must be
what ingesting them one at a time gives, file by file and line by line,
including records repeated across files, rejects, odd encodings, files that
go their own way between them, and a rerun.
"""

from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path

import duckdb
import pytest

from prompt_release.traces import ingest as ingest_module
from prompt_release.traces import ingest_day, ingest_paths
from prompt_release.warehouse import read_connection
from tests.traces.otlp_builders import request, span

BASE = {"trace_id": "t", "workflow": "w", "prompt_version": "w:v1.0.0", "model": "m"}


def line(span_id: str | int | None = None, **extra) -> str:
    record = {**BASE, **({"span_id": span_id} if span_id is not None else {}), **extra}
    return json.dumps(record)


def event(kind: str, span_id: str, **extra) -> str:
    return json.dumps({"event": kind, "span_id": span_id, **extra})


def write_landing(root: Path) -> Path:
    """Files that exercise every way a line of a small file can end, in one folder."""
    landing = root / "landing"
    day = landing / "2026-11-20"
    day.mkdir(parents=True)
    files: dict[str, bytes | str] = {
        "a-00.jsonl": "\n".join(line(f"a{i}", timestamp="2026-11-27T10:00:00Z") for i in range(3)) + "\n",
        "a-01.jsonl": line("b1") + "\n" + line("b2", tool_calls="lookup") + "\n" + line("b3") + "\n",
        # the same record as a-00's second line (other content): a duplicate, a-00's row stays
        "a-02.jsonl": line("a1", model="other") + "\n" + line("c1") + "\n",
        # repeated inside the file, and a line without span_id repeated in a later file
        "a-03.jsonl": line("d1") + "\n" + line("d1", model="second") + "\n" + line(None, output="same") + "\n",
        "a-04.jsonl": line(None, output="same") + "\n" + line("e1", route="x", extra={"k": [1]}) + "\n",
        "a-05.jsonl": "\ufeff" + line("f1") + "\r\n\r\n   \n" + line("f2", latency_ms=3) + "\r\n",
        "a-06.jsonl": b'{"trace_id": "t", "span_id": "g1", "bad": "\xff"}\n' + line("g2").encode() + b"\n[1]\n{\n",
        "a-07.jsonl": line("h1")[:-1] + ', "latency_ms": NaN}' + "\n" + line("h2", cost_usd=1e-3) + "\n",
        "a-08.jsonl": line("i1", pad="x" * 6000) + "\n" + line("i2") + "\n",  # a line past the limit set below
        "a-09.jsonl": "",
        "a-10.jsonl": line("j1") + "\n" + line(3333333333333333) + "\n" + line("4" * 16),  # no final newline
        # OTLP between native files: it goes its own way, in its turn
        "a-11.jsonl": request(span("a" * 32, "4" * 16, "chat", {"gen_ai.operation.name": "chat"})) + "\n",
        "a-12.jsonl": line("l1", feedback="up", escalated=True) + "\n",
        "a-13.jsonl": "\n".join(line(f"m{i}", output="y" * 500) for i in range(20)) + "\n",  # past BATCH_FILE_BYTES
        "a-14.jsonl": line("n1") + "\n" + line("c1") + "\n",  # c1 again, after the file that went its own way
        # OTLP after blank lines, without a final newline (two chunks): still told apart
        "a-17.jsonl": "\n\n" + request(span("b" * 32, "5" * 16, "chat", {"gen_ai.operation.name": "chat"})),
        # late-signal event lines (traces.events): before the calls they are about (same transaction),
        # beside a call, about an unknown call, invalid, repeated in the file and in a later file
        "a-00-events.jsonl": event("feedback", "a0", value="down") + "\n",
        "a-18.jsonl": "\n".join(
            [
                line("r1"),
                event("escalation", "r1"),
                event("feedback", "a1", value="down", timestamp="2026-11-27T10:05:00Z"),
                event("correction", "unknown-call", value={"route": "billing"}, event_id="c-1"),
                event("feedback", "a2", value="meh"),
                event("bogus", "a2"),
                event("escalation", "r1"),
            ]
        )
        + "\n",
        "a-19.jsonl": event("escalation", "r1")
        + "\n"
        + json.dumps({"event": "outcome", "trace_id": "t", "value": 1})
        + "\n",
    }
    for name, content in files.items():
        path = landing / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with gzip.open(landing / "a-15.jsonl.gz", "wt") as out:
        out.write(line("o1") + "\n" + line("o2") + "\n")
    cut = gzip.compress((line("p1") + "\n" + line("p2") + "\n").encode())
    (landing / "a-16.jsonl.gz").write_bytes(cut[: len(cut) - 12])
    (day / "b-00.jsonl").write_text(line("q1") + "\n" + line("q2", timestamp="2026-11-27T10:00:00Z") + "\n")
    return landing


def tables(warehouse: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return {
            "traces": con.execute(
                "SELECT * EXCLUDE (ingested_at, ts, day), CASE WHEN ts_source <> 'ingest_time' THEN ts END "
                "FROM traces ORDER BY source_file, source_line"
            ).fetchall(),
            "rejects": con.execute(
                "SELECT * EXCLUDE (ingested_at) FROM ingest_rejects ORDER BY source_file, line_number"
            ).fetchall(),
            "events": con.execute(
                "SELECT * EXCLUDE (ingested_at, ts, day), CASE WHEN ts = '2026-11-27 10:05:00+00'::TIMESTAMPTZ THEN ts END "
                "FROM events ORDER BY source_file, source_line"
            ).fetchall(),
            "files": con.execute(
                "SELECT * EXCLUDE (ingested_at) FROM ingest_files ORDER BY source_file, ingested_at"
            ).fetchall(),
        }
    finally:
        con.close()


@pytest.fixture
def batches(monkeypatch) -> list[int]:
    """Sizes of the batches ingested in one pass; a batch that fails (and falls back to
    one file at a time, which would hide a bug in it) fails the test instead."""
    sizes: list[int] = []
    real = ingest_module._ingest_native_batch

    def spy(con, files, progress):
        try:
            return real(con, files, progress)
        except Exception as exc:  # pragma: no cover - reported as the failure it is
            pytest.fail(f"batch of {len(files)} failed: {exc!r}")
        finally:
            sizes.append(len(files))

    monkeypatch.setattr(ingest_module, "_ingest_native_batch", spy)
    return sizes


def test_small_files_in_one_pass_store_what_one_file_at_a_time_stores(tmp_path, monkeypatch, batches):
    monkeypatch.setenv("PROMPT_RELEASE_INGEST_MAX_LINE_BYTES", "4096")
    monkeypatch.setattr(ingest_module, "BATCH_FILE_BYTES", 8000)
    landing = write_landing(tmp_path)
    together, alone = tmp_path / "together.duckdb", tmp_path / "alone.duckdb"
    runs = [ingest_paths([landing], warehouse=together), ingest_paths([landing], warehouse=together)]
    assert batches and max(batches) >= 10  # most files went in one pass (the OTLP and large ones cut the run)
    monkeypatch.setattr(ingest_module, "BATCH_FILE_BYTES", 0)
    expected = [ingest_paths([landing], warehouse=alone), ingest_paths([landing], warehouse=alone)]
    for got, want in zip(runs, expected):
        assert got.model_dump() == want.model_dump()
    assert tables(together) == tables(alone)

    first, rerun = runs
    assert all(f.records == f.stored + f.duplicates + f.rejected + f.non_call_spans for f in first.files)
    by_name = {Path(f.source_file).name: f for f in first.files}
    assert (by_name["a-01.jsonl"].stored, by_name["a-01.jsonl"].rejected) == (2, 1)
    assert (by_name["a-02.jsonl"].stored, by_name["a-02.jsonl"].duplicates) == (1, 1)
    assert (by_name["a-03.jsonl"].stored, by_name["a-03.jsonl"].duplicates) == (2, 1)
    assert (by_name["a-04.jsonl"].stored, by_name["a-04.jsonl"].duplicates) == (1, 1)
    assert (by_name["a-06.jsonl"].stored, by_name["a-06.jsonl"].rejected) == (1, 3)
    assert (by_name["a-08.jsonl"].stored, by_name["a-08.jsonl"].rejected) == (1, 1)
    assert by_name["a-11.jsonl"].format == "otlp" and by_name["a-11.jsonl"].duplicates == 1  # 4*16 from a-10
    assert (by_name["a-14.jsonl"].stored, by_name["a-14.jsonl"].duplicates) == (1, 1)
    assert by_name["a-16.jsonl.gz"].rejected == 1  # the cut tail
    assert (by_name["a-17.jsonl"].format, by_name["a-17.jsonl"].stored) == ("otlp", 1)
    # event lines: stored once (a repeat in the file or a later file is a duplicate), invalid ones rejected
    # naming their field, an event about an unknown call kept and counted; one whose call came later in
    # the same transaction is not unknown
    a18, a19, early = by_name["a-18.jsonl"], by_name["a-19.jsonl"], by_name["a-00-events.jsonl"]
    assert (a18.stored, a18.duplicates, a18.rejected) == (4, 1, 2)
    assert (a18.events, a18.event_duplicates, a18.events_unknown_call) == (3, 1, 1)
    assert (a19.events, a19.event_duplicates, a19.events_unknown_call) == (1, 1, 0)
    assert (early.events, early.events_unknown_call) == (1, 0)
    # a rerun stores nothing new and keeps one set of rejects
    assert rerun.total.stored == 0
    assert rerun.total.duplicates == first.total.stored + first.total.duplicates
    assert rerun.total.rejected == first.total.rejected
    con = duckdb.connect(str(together), read_only=True)
    try:
        models = dict(con.execute("SELECT span_id, model FROM traces WHERE span_id IN ('a1', 'd1')").fetchall())
    finally:
        con.close()
    assert models == {"a1": "m", "d1": "m"}  # the first line of a repeated record is the one stored
    rejected = {(r[1], r[3]) for r in tables(together)["rejects"] if Path(r[0]).name == "a-18.jsonl"}
    assert rejected == {(5, "value"), (6, "event")}


def test_many_files_of_one_batch_each_keep_their_own_accounting(tmp_path, warehouse, batches):
    landing = tmp_path / "landing"
    landing.mkdir()
    for f in range(200):
        lines = [line(f"s{f}_{i}") for i in range(3)]
        if f % 50 == 7:
            lines[1] = line(f"s{f}_1", retries=1.5)  # one reject naming its field
        if f % 50 == 9:
            lines[2] = line("s0_0")  # a record of the first file: a duplicate here
        (landing / f"x-{f:04d}.jsonl").write_text("\n".join(lines) + "\n")
    summary = ingest_paths([landing], warehouse=warehouse)
    assert batches == [200]
    assert all(f.records == 3 == f.stored + f.duplicates + f.rejected for f in summary.files)
    bad = {Path(f.source_file).name for f in summary.files if f.rejected}
    repeated = {Path(f.source_file).name for f in summary.files if f.duplicates}
    assert bad == {f"x-{f:04d}.jsonl" for f in (7, 57, 107, 157)}
    assert repeated == {f"x-{f:04d}.jsonl" for f in (9, 59, 109, 159)}
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        assert con.execute("SELECT count(*), count(DISTINCT source_file) FROM traces").fetchall() == [(592, 200)]
        assert con.execute("SELECT DISTINCT line_number, field FROM ingest_rejects").fetchall() == [(2, "retries")]
        assert con.execute("SELECT count(*), sum(stored), sum(duplicates) FROM ingest_files").fetchall() == [
            (200, 592, 4)
        ]
    finally:
        con.close()


def test_a_batch_into_the_lake_keeps_its_accounting_and_a_rerun_adds_nothing(tmp_path, monkeypatch, batches):
    lake = str(tmp_path / "warehouse.lake")
    monkeypatch.setenv("PROMPT_RELEASE_WAREHOUSE", lake)
    landing = tmp_path / "landing"
    landing.mkdir()
    for f in range(30):
        lines = [line(f"s{f}_{i}") for i in range(2)]
        if f == 4:
            lines[0] = line("s4_0", escalated="yes")
        if f == 20:
            lines[1] = line("s3_1")
        (landing / f"y-{f:02d}.jsonl").write_text("\n".join(lines) + "\n")
    first = ingest_paths([landing], warehouse=lake)
    rerun = ingest_paths([landing], warehouse=lake)
    # files outside a day folder stage no day of traces up front: the rerun finds its keys stored
    # on the day it writes, is refused (nothing written) and runs again with that day staged
    assert batches == [30, 30, 30]
    assert (first.total.stored, first.total.duplicates, first.total.rejected) == (58, 1, 1)
    assert (rerun.total.stored, rerun.total.duplicates, rerun.total.rejected) == (0, 59, 1)
    with read_connection(lake) as con:
        assert con.execute("SELECT count(*), count(DISTINCT record_key) FROM traces").fetchall() == [(58, 58)]
        assert con.execute("SELECT source_file, line_number, field FROM ingest_rejects").fetchall() == [
            (str(landing / "y-04.jsonl"), 1, "escalated")
        ]
        assert con.execute("SELECT count(*), sum(stored), sum(duplicates) FROM ingest_files").fetchall() == [
            (60, 58, 60)
        ]


def test_a_day_of_small_files_is_replaced_in_one_pass(tmp_path, warehouse, batches):
    day = tmp_path / "landing" / "2026-11-27"
    day.mkdir(parents=True)
    for f in range(20):
        (day / f"z-{f:02d}.jsonl").write_text(line(f"z{f}") + "\n" + line("shared") + "\n")
    first = ingest_day(tmp_path / "landing", "2026-11-27", warehouse=warehouse)
    (day / "z-00.jsonl").write_text(line("z0", model="new") + "\n")  # the day was re-landed
    again = ingest_day(tmp_path / "landing", "2026-11-27", warehouse=warehouse)
    assert batches == [20, 20]
    assert (first.total.stored, first.total.duplicates) == (21, 19)
    assert (again.total.stored, again.total.duplicates) == (21, 18)  # `shared` now first in z-01
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        assert con.execute("SELECT model, day FROM traces WHERE span_id = 'z0'").fetchall() == [
            ("new", date(2026, 11, 27))
        ]
        assert con.execute("SELECT source_file FROM traces WHERE span_id = 'shared'").fetchall() == [
            (str(day / "z-01.jsonl"),)
        ]
        assert con.execute("SELECT count(*) FROM ingest_files").fetchall() == [(20,)]
    finally:
        con.close()

"""Native JSONL ingest: the contract line, malformed inputs, accounting, dedup, transactions."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prompt_release.traces import ingest_day, ingest_paths
from prompt_release.warehouse import read_connection
from tests.conftest import REPO_ROOT
from tests.traces.native_builders import good

EXACT = (
    '{"trace_id": "tr_9241", "workflow": "support_router", "prompt_version": "support_router:v1.6.0", '
    '"model": "production-default", "route": "account_recovery", "schema_valid": true, "latency_ms": 842}'
)


def rows(warehouse: Path | str, sql: str, params=None):
    with read_connection(warehouse) as con:
        return con.execute(sql, params or []).fetchall()


def balanced(summary) -> None:
    for f in summary.files:
        assert f.records == f.stored + f.duplicates + f.rejected + f.non_call_spans, f
        if f.format == "native":
            assert f.records == f.lines_read


def test_exact_contract_line_ingests_with_extra_keys_in_attributes(tmp_path, any_warehouse):
    day = tmp_path / "landing" / "2026-11-27"
    day.mkdir(parents=True)
    (day / "a.jsonl").write_text(EXACT + "\n")
    summary = ingest_paths([day], warehouse=any_warehouse)
    assert summary.total.stored == 1 and summary.total.rejected == 0
    (row,) = rows(
        any_warehouse,
        "SELECT trace_id, prompt_id, prompt_version, workflow, latency_ms, attributes, ts_source, day, record_key FROM traces",
    )
    assert row[:5] == ("tr_9241", "support_router", "support_router:v1.6.0", "support_router", 842.0)
    assert json.loads(row[5]) == {"route": "account_recovery", "schema_valid": True}
    assert row[6] == "day_folder" and str(row[7]) == "2026-11-27"
    assert len(row[8]) == 64  # sha256 of the record: no span_id


def test_fields_convert_per_contract(tmp_path, warehouse):
    line = good(
        1,
        input={"messages": [{"role": "user", "content": "hi"}], "variables": {"ticket": "x"}},
        output={"route": "billing"},
        tool_calls=[
            {"name": "lookup_order", "arguments": '{"order_id": "ORD-000001"}'},
            {"name": "t2", "arguments": "not json"},
        ],
        usage={"input_tokens": 10, "output_tokens": 3},
        feedback="down",
        error={"type": "Timeout"},
        segment={"tier": "gold"},
        retries=2,
        fallback=True,
        escalated=False,
        correction={"route": "shipping"},
    )
    (tmp_path / "f.jsonl").write_text(line + "\n")
    ingest_paths([tmp_path / "f.jsonl"], warehouse=warehouse)
    (r,) = rows(
        warehouse,
        "SELECT output, tool_calls, input_tokens, output_tokens, feedback, status, error_type, retries, fallback, ts_source, variables, record_key FROM traces",
    )
    assert json.loads(r[0]) == {"route": "billing"}
    assert json.loads(r[1]) == [
        {"name": "lookup_order", "arguments": {"order_id": "ORD-000001"}},
        {"name": "t2", "arguments": "not json"},
    ]
    assert r[2:10] == (10, 3, -1.0, "error", "Timeout", 2, True, "record")
    assert json.loads(r[10]) == {"ticket": "x"} and r[11] == "sp_1"


@pytest.mark.parametrize(
    ("content", "reason", "field"),
    [
        (b'{"trace_id": "tr_1", "workflow"', "invalid JSON", None),
        (b'{"trace_id": "\xff\xfe"}', "not valid UTF-8", None),
        (b"[1, 2, 3]", "not an object", None),
        (b'"just a string"', "not an object", None),
        (good(9, latency_ms="slow").encode(), "field 'latency_ms' must be a number", "latency_ms"),
        (good(9, trace_id=None).encode(), "missing required field 'trace_id'", "trace_id"),
        (
            json.dumps({"trace_id": "t", "workflow": "w", "model": "m"}).encode(),
            "missing required field 'prompt_version'",
            "prompt_version",
        ),
        (good(9, prompt_version="../etc:v1").encode(), "prompt_version", "prompt_version"),
        (good(9, timestamp="yesterday").encode(), "RFC 3339", "timestamp"),
        (good(9, feedback="meh").encode(), "feedback", "feedback"),
        (good(9, usage={"input_tokens": "ten"}).encode(), "usage.input_tokens", "usage.input_tokens"),
        (good(9, tool_calls=[{"arguments": {}}]).encode(), "tool_calls", "tool_calls"),
        (good(9, escalated="yes").encode(), "field 'escalated' must be a boolean", "escalated"),
    ],
)
def test_malformed_line_is_rejected_with_reason_and_rest_ingests(tmp_path, warehouse, content, reason, field):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(good(1).encode() + b"\n" + content + b"\n" + good(2).encode() + b"\n")
    summary = ingest_paths([path], warehouse=warehouse)
    balanced(summary)
    assert (summary.total.stored, summary.total.rejected, summary.total.lines_read) == (2, 1, 3)
    ((line, got_reason, got_field, raw_len, sha),) = rows(
        warehouse, "SELECT line_number, reason, field, raw_length, raw_sha256 FROM ingest_rejects"
    )
    assert line == 2 and reason in got_reason and got_field == field
    assert raw_len == len(content) and len(sha) == 64


def test_bom_crlf_blank_lines_and_missing_final_newline(tmp_path, any_warehouse):
    path = tmp_path / "win.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf" + good(1).encode() + b"\r\n\r\n   \r\n" + good(2).encode() + b"\r\n" + good(3).encode()
    )
    summary = ingest_paths([path], warehouse=any_warehouse)
    balanced(summary)
    f = summary.files[0]
    assert (f.stored, f.rejected, f.blank_lines, f.lines_read) == (3, 0, 2, 3)
    assert rows(any_warehouse, "SELECT source_line FROM traces ORDER BY 1") == [(1,), (4,), (5,)]


def test_ten_megabyte_line_is_ingested_and_does_not_stop_the_file(tmp_path, warehouse):
    path = tmp_path / "big.jsonl"
    huge = good(1, output="x" * 10_000_000)
    path.write_text(huge + "\n" + good(2) + "\n" + '{"broken": ' + "y" * 10_000_000 + "\n")
    summary = ingest_paths([path], warehouse=warehouse)
    balanced(summary)
    assert (summary.total.stored, summary.total.rejected) == (2, 1)
    ((raw_line_len, raw_length),) = rows(warehouse, "SELECT length(raw_line), raw_length FROM ingest_rejects")
    assert raw_line_len == 64 * 1024 and raw_length > 10_000_000


def test_empty_file(tmp_path, warehouse):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    summary = ingest_paths([tmp_path], warehouse=warehouse)
    assert summary.total.files == 1 and summary.total.records == 0 and summary.total.stored == 0


def test_gzip_cut_short_ingests_prefix_and_records_the_cut(tmp_path, warehouse):
    body = "".join(good(i) + "\n" for i in range(2000)).encode()
    whole = gzip.compress(body)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])
    summary = ingest_paths([path], warehouse=warehouse)
    balanced(summary)
    assert 0 < summary.total.stored < 2000 and summary.total.rejected == 1
    ((reason,),) = rows(warehouse, "SELECT reason FROM ingest_rejects")
    assert str(path) in reason and "cut short" in reason
    # an intact gzip ingests whole
    (tmp_path / "ok.jsonl.gz").write_bytes(whole)
    assert ingest_paths([tmp_path / "ok.jsonl.gz"], warehouse=warehouse).total.rejected == 0


def test_reingest_and_overlapping_files_add_no_rows(tmp_path, any_warehouse):
    a = tmp_path / "a.jsonl"
    b = tmp_path / "b.jsonl"
    a.write_text("".join(good(i) + "\n" for i in range(10)) + EXACT + "\n")
    b.write_text("".join(good(i) + "\n" for i in range(5, 15)) + EXACT + "\n" + EXACT + "\n")
    first = ingest_paths([a], warehouse=any_warehouse)
    again = ingest_paths([a], warehouse=any_warehouse)
    both = ingest_paths([a, b], warehouse=any_warehouse)
    for s in (first, again, both):
        balanced(s)
    assert first.total.stored == 11 and again.total.stored == 0 and again.total.duplicates == 11
    assert both.files[1].stored == 5 and both.files[1].duplicates == 7
    assert rows(any_warehouse, "SELECT count(*) FROM traces") == [(16,)]


@pytest.mark.parametrize("warehouse_before", ["empty", "holding rows"])
@pytest.mark.parametrize("chunk_bytes", ["4096", "67108864"])
def test_a_key_repeated_in_one_file_is_stored_once(tmp_path, warehouse, monkeypatch, warehouse_before, chunk_bytes):
    # Small chunks put the repeats in other chunks than their first occurrence, large ones in the
    # same chunk; into an empty table the fast path skips its anti-join and the unique index must
    # catch them (then the file's transaction reruns with every check on).
    monkeypatch.setenv("PROMPT_RELEASE_INGEST_CHUNK_BYTES", chunk_bytes)
    if warehouse_before == "holding rows":
        (tmp_path / "before.jsonl").write_text(good(1000) + "\n")
        ingest_paths([tmp_path / "before.jsonl"], warehouse=warehouse)
    path = tmp_path / "repeats.jsonl"
    path.write_text("".join(good(i) + "\n" for i in range(200)) + "".join(good(i) + "\n" for i in range(0, 200, 7)))
    summary = ingest_paths([path], warehouse=warehouse)
    balanced(summary)
    assert (summary.total.stored, summary.total.duplicates) == (200, 29)
    stored = rows(
        warehouse,
        "SELECT count(*), count(DISTINCT record_key), max(source_line) FROM traces WHERE source_file = ?",
        [str(path.resolve())],
    )
    assert stored == [(200, 200, 200)]  # each key stored once, from its first line


def test_ingest_day_replaces_exactly_that_day(tmp_path, any_warehouse):
    landing = tmp_path / "landing"
    d1, d2 = landing / "2026-11-27", landing / "2026-11-28"
    d1.mkdir(parents=True)
    d2.mkdir(parents=True)
    (d1 / "a.jsonl").write_text(good(1) + "\n" + good(2) + "\n")
    (d2 / "a.jsonl").write_text(good(3) + "\n")
    ingest_day(landing, "2026-11-27", warehouse=any_warehouse)
    ingest_day(landing, "2026-11-28", warehouse=any_warehouse)
    (d1 / "a.jsonl").write_text(good(1, model="new") + "\n")  # the day was re-landed
    summary = ingest_day(landing, "2026-11-27", warehouse=any_warehouse)
    assert summary.total.stored == 1
    assert rows(any_warehouse, "SELECT span_id, model FROM traces ORDER BY 1") == [("sp_1", "new"), ("sp_3", "m")]


def test_killed_mid_file_leaves_nothing_then_reingest_gets_all(tmp_path, any_warehouse):
    # The child reports each chunk it has inserted (inside the file's open
    # transaction), then waits on its stdin, and is killed after the first one.
    source = tmp_path / "stream.jsonl"
    source.write_text("".join(good(i) + "\n" for i in range(400)))
    code = (
        "import sys; from prompt_release.traces import ingest_paths; "
        "ingest_paths([sys.argv[1]], format='native', "
        "progress=lambda m: (print(m, flush=True), sys.stdin.readline()))"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "PROMPT_RELEASE_WAREHOUSE": str(any_warehouse),
        "PROMPT_RELEASE_INGEST_CHUNK_BYTES": "4096",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(source)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        first_chunk = proc.stdout.readline()  # rows of the first chunk are inserted, not committed
        assert "lines" in first_chunk, first_chunk
    finally:
        proc.kill()
        proc.wait()
    assert rows(any_warehouse, "SELECT count(*) FROM traces") == [(0,)]
    assert ingest_paths([source], warehouse=any_warehouse).total.stored == 400
    assert rows(any_warehouse, "SELECT count(*) FROM traces") == [(400,)]


def test_cli_prints_counts_and_json(tmp_path, warehouse):
    from tests.conftest import run_cli

    (tmp_path / "a.jsonl").write_text(EXACT + "\n{bad\n")
    result = run_cli("ingest", str(tmp_path / "a.jsonl"), "--warehouse", str(warehouse))
    assert result.returncode == 0, result.stderr
    assert "rows stored" in result.stdout and "native" in result.stdout
    result = run_cli("ingest", str(tmp_path / "a.jsonl"), "--warehouse", str(warehouse), "--json")
    data = json.loads(result.stdout)
    assert data["total"]["duplicates"] == 1 and data["total"]["rejected"] == 1
    missing = run_cli("ingest", str(tmp_path / "nope.jsonl"), "--warehouse", str(warehouse))
    assert missing.returncode == 2 and "no such file" in missing.stderr

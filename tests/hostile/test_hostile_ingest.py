"""Hostile trace files: one bad record is one reject naming its field; the rest of the file,
and every later file of the run, is stored; memory stays bounded by line and chunk size."""

from __future__ import annotations

import gzip

import duckdb
import pytest

from prompt_release.errors import UserError
from prompt_release.traces import ingest_paths
from prompt_release.traces.lines import LineReader
from tests.traces.native_builders import good
from tests.traces.otlp_builders import request, span


def rows(warehouse, sql, params=None):
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("tool_calls", [{"name": "x"}, "lookup", 7, [1], [{"name": 3}]])
def test_wrong_shaped_tool_calls_is_one_reject_and_later_files_are_stored(tmp_path, warehouse, tool_calls):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text(good(1) + "\n" + good(2, tool_calls=tool_calls) + "\n" + good(3) + "\n")
    second.write_text(good(4) + "\n")
    summary = ingest_paths([first, second], warehouse=warehouse)
    assert (summary.total.stored, summary.total.rejected) == (3, 1)
    ((line, field, reason),) = rows(warehouse, "SELECT line_number, field, reason FROM ingest_rejects")
    assert (line, field) == (2, "tool_calls") and "tool_calls" in reason


@pytest.mark.parametrize("literal", ["1e400", "NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("field", ["latency_ms", "cost_usd", "feedback"])
def test_non_finite_numbers_are_rejected_and_aggregates_stay_finite(tmp_path, warehouse, literal, field):
    path = tmp_path / "n.jsonl"
    path.write_text(good(1, latency_ms=10.0, cost_usd=0.1) + "\n" + good(2)[:-1] + f', "{field}": {literal}}}' + "\n")
    summary = ingest_paths([path], warehouse=warehouse)
    assert (summary.total.stored, summary.total.rejected) == (1, 1)
    ((got_field, reason),) = rows(warehouse, "SELECT field, reason FROM ingest_rejects")
    assert got_field == field and "finite" in reason
    (p95, cost) = rows(warehouse, "SELECT quantile_cont(latency_ms, 0.95), sum(cost_usd) FROM traces")[0]
    assert p95 == 10.0 and cost == pytest.approx(0.1)


def test_a_line_past_the_limit_is_rejected_as_too_long_and_the_next_is_stored(tmp_path, warehouse, monkeypatch):
    monkeypatch.setenv("PROMPT_RELEASE_INGEST_MAX_LINE_BYTES", str(1 << 20))
    monkeypatch.setenv("PROMPT_RELEASE_INGEST_CHUNK_BYTES", str(256 * 1024))  # the line spans many blocks
    path = tmp_path / "huge.jsonl"
    path.write_text(good(1, output="x" * (3 << 20)) + "\n" + good(2) + "\n")
    summary = ingest_paths([path], warehouse=warehouse)
    assert (summary.total.stored, summary.total.rejected, summary.total.lines_read) == (1, 1, 2)
    ((line, reason, raw_length, raw_line_length),) = rows(
        warehouse, "SELECT line_number, reason, raw_length, length(raw_line) FROM ingest_rejects"
    )
    assert line == 1 and "longer than the limit" in reason and "PROMPT_RELEASE_INGEST_MAX_LINE_BYTES" in reason
    assert raw_length > 3 << 20 and raw_line_length == 64 * 1024
    assert rows(warehouse, "SELECT source_line FROM traces") == [(2,)]


def test_too_long_otlp_request_is_rejected_and_the_rest_stored(tmp_path, warehouse, monkeypatch):
    monkeypatch.setenv("PROMPT_RELEASE_INGEST_MAX_LINE_BYTES", str(1 << 20))
    call = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}
    path = tmp_path / "o.jsonl"
    path.write_text(
        request(span("a" * 32, "1" * 16, "chat", {**call, "pad": "x" * (2 << 20)}))
        + "\n"
        + request(span("a" * 32, "2" * 16, "chat", call))
        + "\n"
    )
    summary = ingest_paths([path], warehouse=warehouse, format="otlp")
    assert (summary.total.stored, summary.total.rejected) == (1, 1)


def test_gzip_is_decompressed_in_bounded_pieces(tmp_path):
    # 64 MB of lines in ~100 KB of gzip: each chunk must stay near the chunk size,
    # not hold everything one read of compressed bytes expands to
    path = tmp_path / "bomb.jsonl.gz"
    line = (good(1) + "\n").encode()
    with gzip.open(path, "wb") as out:
        out.write(line * ((64 << 20) // len(line)))
    assert path.stat().st_size < 1 << 20
    chunk_bytes = 1 << 20
    largest = lines = 0
    for chunk in LineReader(path, chunk_bytes=chunk_bytes):
        largest = max(largest, len(chunk.data))
        lines += len(chunk)
    assert lines == (64 << 20) // len(line)
    assert largest <= 2 * chunk_bytes


def test_gzip_bomb_of_one_endless_line_is_one_reject(tmp_path, warehouse, monkeypatch):
    monkeypatch.setenv("PROMPT_RELEASE_INGEST_MAX_LINE_BYTES", str(1 << 20))
    path = tmp_path / "zeros.jsonl.gz"
    with gzip.open(path, "wb") as out:
        out.write(b"0" * (32 << 20) + b"\n" + good(1).encode() + b"\n")
    summary = ingest_paths([path], warehouse=warehouse)
    assert (summary.total.stored, summary.total.rejected) == (1, 1)


HOSTILE_SPANS = {
    "status is a number": ({"status": 1}, "status"),
    "events is an object": ({"events": {"name": "x"}}, "events"),
    "parentSpanId is a number": ({"parentSpanId": 5}, "parentSpanId"),
    "name is a list": ({"name": ["chat"]}, "name"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_SPANS))
def test_hostile_otlp_span_fields_are_rejected_naming_the_field(tmp_path, warehouse, case):
    change, field = HOSTILE_SPANS[case]
    call = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}
    bad = {**span("a" * 32, "1" * 16, "chat", call), **change}
    path, later = tmp_path / "o.jsonl", tmp_path / "p.jsonl"
    path.write_text(request(bad, span("a" * 32, "2" * 16, "chat", call)) + "\n")
    later.write_text(request(span("b" * 32, "3" * 16, "chat", call)) + "\n")
    summary = ingest_paths([path, later], warehouse=warehouse, format="otlp")
    assert (summary.total.stored, summary.total.rejected) == (2, 1)
    assert rows(warehouse, "SELECT field FROM ingest_rejects") == [(field,)]


HOSTILE_ATTRIBUTES = {
    "token count past 64 bits": (
        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": str(2**70)}},
        "gen_ai.usage.input_tokens",
    ),
    "cost is NaN": ({"key": "llm.cost.total", "value": {"doubleValue": "NaN"}}, "llm.cost.total"),
    "cost is Infinity": ({"key": "gen_ai.usage.cost", "value": {"doubleValue": "Infinity"}}, "gen_ai.usage.cost"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_ATTRIBUTES))
def test_hostile_otlp_attribute_values_are_rejected_naming_the_attribute(tmp_path, warehouse, case):
    attribute, field = HOSTILE_ATTRIBUTES[case]
    call = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}
    bad = span("a" * 32, "1" * 16, "chat", call)
    bad["attributes"].append(attribute)
    path = tmp_path / "o.jsonl"
    path.write_text(request(bad, span("a" * 32, "2" * 16, "chat", call)) + "\n")
    summary = ingest_paths([path], warehouse=warehouse, format="otlp")
    assert (summary.total.stored, summary.total.rejected) == (1, 1)
    assert rows(warehouse, "SELECT field FROM ingest_rejects") == [(field,)]


@pytest.mark.parametrize(
    "value",
    [
        {"arrayValue": [1, 2]},
        {"kvlistValue": "x"},
        {"doubleValue": {"a": 1}},
        {"arrayValue": {"values": 5}},
        {"kvlistValue": {"values": {"k": 1}}},
    ],
)
def test_odd_attribute_value_shapes_never_lose_the_file(tmp_path, warehouse, value):
    call = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}
    odd = span("a" * 32, "1" * 16, "chat", call)
    odd["attributes"].append({"key": "gen_ai.input.messages", "value": value})
    path = tmp_path / "o.jsonl"
    path.write_text(request(odd, span("a" * 32, "2" * 16, "chat", call)) + "\n")
    summary = ingest_paths([path], warehouse=warehouse, format="otlp")
    f = summary.files[0]
    assert f.records == 2 == f.stored + f.rejected
    assert f.stored >= 1


def test_a_device_or_fifo_named_on_the_command_line_is_refused(tmp_path, warehouse):
    import os

    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    for path in ("/dev/zero", str(fifo)):
        with pytest.raises(UserError, match="not a regular file"):
            ingest_paths([path], warehouse=warehouse)


def test_duplicate_keys_keep_the_first_value_as_documented(tmp_path, warehouse):
    path = tmp_path / "dup.jsonl"
    path.write_text(good(1)[:-1] + ', "latency_ms": 1.0, "latency_ms": 2.0}\n')
    ingest_paths([path], warehouse=warehouse)
    assert rows(warehouse, "SELECT latency_ms FROM traces") == [(1.0,)]


def test_many_small_files_share_transactions_with_exact_accounting_per_file(tmp_path, warehouse, monkeypatch):
    """Small files are ingested many to a transaction (issue 12: 10,000 tiny files at 5 files/s);
    the accounting stays per file and per line, a bad line is still one reject, a record repeated
    in another file of the same transaction is a duplicate, and a file that fails leaves every
    file before it stored."""
    from prompt_release.traces import ingest as ingest_module

    monkeypatch.setattr(ingest_module, "GROUP_FILES", 120)  # several groups out of the files below
    landing = tmp_path / "landing"
    landing.mkdir()
    for f in range(300):
        lines = [good(f * 10 + i) for i in range(3)]
        if f == 17:
            lines[1] = good(171, tool_calls="lookup")  # one bad field: that line alone is rejected
        if f == 42:
            lines[2] = good(2)  # the same record as file 0's third line: a duplicate
        (landing / f"export-{f:04d}.jsonl").write_text("\n".join(lines) + "\n")
    summary = ingest_paths([landing], warehouse=warehouse)
    assert len(summary.files) == 300
    assert all(f.stored + f.duplicates + f.rejected == f.records == 3 for f in summary.files)
    assert (summary.total.stored, summary.total.duplicates, summary.total.rejected) == (898, 1, 1)
    assert rows(warehouse, "SELECT count(*), count(DISTINCT source_file) FROM traces") == [(898, 300)]
    assert rows(warehouse, "SELECT count(*), sum(stored) FROM ingest_files") == [(300, 898)]
    ((source, line, field),) = rows(warehouse, "SELECT source_file, line_number, field FROM ingest_rejects")
    assert source.endswith("export-0017.jsonl") and (line, field) == (2, "tool_calls")


def test_a_file_that_fails_in_a_shared_transaction_leaves_the_files_before_it_stored(tmp_path, warehouse, monkeypatch):
    from prompt_release.traces import ingest as ingest_module

    class Unreadable(LineReader):  # as a file without read permission, or removed since it was listed
        def __iter__(self):
            if self.path.name == "b-fails.jsonl":
                raise PermissionError(13, "Permission denied")
            return super().__iter__()

    monkeypatch.setattr(ingest_module, "LineReader", Unreadable)
    landing = tmp_path / "landing"
    landing.mkdir()
    for f in range(20):
        (landing / f"a-{f:02d}.jsonl").write_text(good(f) + "\n")
    (landing / "b-fails.jsonl").write_text(good(99) + "\n")
    (landing / "c-after.jsonl").write_text(good(100) + "\n")
    with pytest.raises(UserError) as failed:
        ingest_paths([landing], warehouse=warehouse)
    assert "b-fails.jsonl: cannot be read: Permission denied" in str(failed.value)
    assert rows(warehouse, "SELECT count(*), count(DISTINCT source_file) FROM traces") == [(20, 20)]

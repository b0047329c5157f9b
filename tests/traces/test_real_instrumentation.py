"""Ingest spans written by the real OpenAI instrumentors and check every LLM call.

The fixtures in tests/fixtures/otlp/ were produced by driving the real `openai`
SDK against a local OpenAI-compatible server, once under the official
`opentelemetry-instrumentation-openai-v2` instrumentor and once under
`openinference-instrumentation-openai`, exported by the OTLP JSON file
exporter (see make_fixtures.py). expected.json is what that script recorded it
did. Prompt identity lives on the app's own parent span, not on the LLM span,
so these tests also check that ingestion inherits it down the trace.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prompt_release.traces import ingest_paths
from prompt_release.warehouse import read_connection

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "otlp"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())["files"]
SOURCE_FORMAT = {"genai": "otlp_genai", "openinference": "openinference"}
FILES = sorted(EXPECTED)

COLUMNS = (
    "span_id, trace_id, parent_span_id, ts, day, ts_source, workflow, prompt_id, prompt_version, model,"
    " input_messages, variables, output, tool_calls, finish_reason, status, error_type, latency_ms,"
    " input_tokens, output_tokens, source_format, record_key"
)


@pytest.fixture(scope="module")
def warehouse_with_fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both fixture files ingested once (format detected per file) into one warehouse."""
    path = tmp_path_factory.mktemp("real_instrumentation") / "warehouse.duckdb"
    ingest_paths([FIXTURES / name for name in FILES], warehouse=path, format="auto")
    return path


def _rows(warehouse: Path, fixture: str) -> dict[str, dict]:
    """The traces rows of one fixture file, keyed by span id."""
    source_format = SOURCE_FORMAT[EXPECTED[fixture]["instrumentor"]]
    with read_connection(warehouse) as con:
        cur = con.execute(f"SELECT {COLUMNS} FROM traces WHERE source_format = ? ORDER BY ts", [source_format])
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
    return {r["span_id"]: r for r in rows}


def _json(value):
    """A JSON column as Python (DuckDB hands JSON back as text)."""
    return json.loads(value) if isinstance(value, str) else value


def _calls(fixture: str) -> list[dict]:
    return EXPECTED[fixture]["calls"]


def _tool_calls(row: dict) -> list[dict]:
    value = _json(row["tool_calls"])
    return [{"name": tc["name"], "arguments": _json_args(tc["arguments"])} for tc in value or []]


def _json_args(arguments):
    # The contract stores arguments as an object when they parsed; the fixtures'
    # arguments always parse, so an unparsed string here is a bug.
    assert isinstance(arguments, dict), f"tool arguments left as raw text: {arguments!r}"
    return arguments


@pytest.mark.parametrize("fixture", FILES)
def test_one_row_per_llm_call_and_no_row_for_app_spans(warehouse_with_fixtures: Path, fixture: str) -> None:
    rows = _rows(warehouse_with_fixtures, fixture)
    expected = EXPECTED[fixture]
    assert len(rows) == expected["llm_calls"]
    # Exactly the instrumentor's LLM spans; the app's parent spans are context, not calls.
    assert set(rows) == {c["span_id"] for c in _calls(fixture)}
    app_span_ids = {t["root_span_id"] for t in expected["traces"] if t["prompt_version"] is not None}
    assert not app_span_ids & set(rows)
    for row in rows.values():
        assert row["source_format"] == SOURCE_FORMAT[expected["instrumentor"]]
        assert row["record_key"] == row["span_id"]
        assert row["ts_source"] == "record"
        assert row["day"] == row["ts"].date()


@pytest.mark.parametrize("fixture", FILES)
def test_calls_keep_their_trace_and_parent_and_order(warehouse_with_fixtures: Path, fixture: str) -> None:
    rows = _rows(warehouse_with_fixtures, fixture)
    # Ordered by ts, the rows are the calls in the order the app made them.
    assert list(rows) == [c["span_id"] for c in _calls(fixture)]
    for call in _calls(fixture):
        row = rows[call["span_id"]]
        assert row["trace_id"] == call["trace_id"]
        assert row["parent_span_id"] == call["parent_span_id"]
    per_trace: dict[str, int] = {}
    for row in rows.values():
        per_trace[row["trace_id"]] = per_trace.get(row["trace_id"], 0) + 1
    assert per_trace == {t["trace_id"]: t["calls"] for t in EXPECTED[fixture]["traces"]}
    assert max(per_trace.values()) == 3  # the order_agent conversation is one trace of three calls


@pytest.mark.parametrize("fixture", FILES)
def test_prompt_identity_is_inherited_from_the_app_parent_span(warehouse_with_fixtures: Path, fixture: str) -> None:
    rows = _rows(warehouse_with_fixtures, fixture)
    expected = EXPECTED[fixture]
    counts: dict[str | None, int] = {}
    for row in rows.values():
        counts[row["prompt_version"]] = counts.get(row["prompt_version"], 0) + 1
    assert counts == {**expected["prompt_version_counts"], None: expected["null_prompt_version_calls"]}
    assert counts["support_router:v1.6.0"] == 2
    for call in _calls(fixture):
        row = rows[call["span_id"]]
        assert row["prompt_version"] == call["prompt_version"]
        if call["prompt_version"] is None:
            assert row["prompt_id"] is None
        else:
            assert row["prompt_id"] == call["prompt_version"].split(":v")[0]
            assert row["workflow"] == call["workflow"]


@pytest.mark.parametrize("fixture", FILES)
def test_null_prompt_version_when_the_app_set_no_identity(warehouse_with_fixtures: Path, fixture: str) -> None:
    with read_connection(warehouse_with_fixtures) as con:
        (nulls,) = con.execute(
            "SELECT count(*) FROM traces WHERE source_format = ? AND prompt_version IS NULL",
            [SOURCE_FORMAT[EXPECTED[fixture]["instrumentor"]]],
        ).fetchone()
    assert nulls == EXPECTED[fixture]["null_prompt_version_calls"] == 1


@pytest.mark.parametrize("fixture", FILES)
def test_model_output_tokens_and_finish_reason_per_call(warehouse_with_fixtures: Path, fixture: str) -> None:
    rows = _rows(warehouse_with_fixtures, fixture)
    for call in _calls(fixture):
        row = rows[call["span_id"]]
        assert row["model"] == call["model"], call["step"]
        assert row["input_tokens"] == call["input_tokens"], call["step"]
        assert row["output_tokens"] == call["output_tokens"], call["step"]
        if call["error"]:
            continue
        assert row["finish_reason"] == call["finish_reason"], call["step"]
        if call["output"] is None:  # a tool-call-only answer has no text
            assert row["output"] in (None, ""), call["step"]
        else:
            assert row["output"] == call["output"], call["step"]


@pytest.mark.parametrize("fixture", FILES)
def test_tool_calls_names_and_arguments_per_call(warehouse_with_fixtures: Path, fixture: str) -> None:
    rows = _rows(warehouse_with_fixtures, fixture)
    for call in _calls(fixture):
        assert _tool_calls(rows[call["span_id"]]) == call["tool_calls"], call["step"]
    refund = next(c for c in _calls(fixture) if c["step"] == "order_refund")
    assert refund["tool_calls"] == [
        {"name": "issue_refund", "arguments": {"order_id": "ORD-123456", "amount_usd": 45.0, "reason": "damaged"}}
    ]


@pytest.mark.parametrize("fixture", FILES)
def test_tool_calls_replayed_in_input_history_are_not_the_calls_own(
    warehouse_with_fixtures: Path, fixture: str
) -> None:
    rows = _rows(warehouse_with_fixtures, fixture)
    replaying = [c for c in _calls(fixture) if c["input_tool_call_names"]]
    assert [c["step"] for c in replaying] == ["order_refund", "order_final"]
    for call in replaying:
        row = rows[call["span_id"]]
        own = [tc["name"] for tc in _tool_calls(row)]
        assert own == [tc["name"] for tc in call["tool_calls"]], call["step"]
        # ...while the history itself is kept, tool turns included.
        messages = _json(row["input_messages"])
        assert len(messages) == call["input_message_count"], call["step"]
        assert [m["role"] for m in messages][:2] == ["system", "user"]
        assert [m["role"] for m in messages].count("tool") == len(call["input_tool_call_names"])
    final = rows[replaying[-1]["span_id"]]
    assert _tool_calls(final) == []  # lookup_order and issue_refund were earlier calls' tool calls


@pytest.mark.parametrize("fixture", FILES)
def test_error_call_is_an_error_row(warehouse_with_fixtures: Path, fixture: str) -> None:
    rows = _rows(warehouse_with_fixtures, fixture)
    errors = {sid for sid, r in rows.items() if r["status"] == "error"}
    assert len(errors) == EXPECTED[fixture]["error_calls"] == 1
    assert errors == {c["span_id"] for c in _calls(fixture) if c["error"]}
    assert {r["status"] for sid, r in rows.items() if sid not in errors} == {"ok"}
    for call in _calls(fixture):
        row = rows[call["span_id"]]
        if call["error"]:
            assert call["error_type"] in (row["error_type"] or ""), row["error_type"]
            assert row["prompt_version"] == "summarizer:v1.0.0"
        else:
            assert row["error_type"] is None


@pytest.mark.parametrize("fixture", FILES)
def test_streamed_calls_are_reassembled(warehouse_with_fixtures: Path, fixture: str) -> None:
    rows = _rows(warehouse_with_fixtures, fixture)
    streamed = [c for c in _calls(fixture) if c["streaming"]]
    assert len(streamed) == EXPECTED[fixture]["streaming_calls"] == 2
    for call in streamed:
        row = rows[call["span_id"]]
        assert row["status"] == "ok"
        assert (row["input_tokens"], row["output_tokens"]) == (call["input_tokens"], call["output_tokens"])
        assert _tool_calls(row) == call["tool_calls"]
        if call["output"] is not None:
            assert row["output"] == call["output"]


@pytest.mark.parametrize("fixture", FILES)
def test_latency_matches_what_the_app_measured(warehouse_with_fixtures: Path, fixture: str) -> None:
    # Recorded data, not a timing test: the span sits inside the app's own
    # measurement, a few ms shorter at most.
    rows = _rows(warehouse_with_fixtures, fixture)
    for call in _calls(fixture):
        latency, wall = rows[call["span_id"]]["latency_ms"], call["wall_latency_ms"]
        assert latency is not None, call["step"]
        assert wall - (5.0 + 0.1 * wall) <= latency <= wall + 1.0, (call["step"], latency, wall)


def test_openinference_template_variables_land_in_variables(warehouse_with_fixtures: Path) -> None:
    (fixture,) = [f for f in FILES if EXPECTED[f]["instrumentor"] == "openinference"]
    rows = _rows(warehouse_with_fixtures, fixture)
    for call in _calls(fixture):
        if call["variables"] is not None:
            assert _json(rows[call["span_id"]]["variables"]) == call["variables"], call["step"]


def test_reingesting_the_same_files_adds_no_rows(tmp_path: Path) -> None:
    warehouse = tmp_path / "again.duckdb"
    paths = [FIXTURES / name for name in FILES]
    ingest_paths(paths, warehouse=warehouse)
    ingest_paths(paths, warehouse=warehouse)
    with read_connection(warehouse) as con:
        (total,) = con.execute("SELECT count(*) FROM traces").fetchone()
    assert total == sum(EXPECTED[f]["llm_calls"] for f in FILES)

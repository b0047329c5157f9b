"""Fuzzed native lines and OTLP export requests: ingest never raises, every line is accounted for.

Each example is one file of a few lines built from a valid record with fields
swapped for values of any JSON type or shape (and some lines not JSON at all);
the property is the ingest contract: no traceback, `stored + duplicates +
rejected (+ non-call spans) = records` for the file, and the rows and rejects
in the warehouse are exactly the ones the summary counts. The example count
is bounded so the module runs in seconds in `make test`.
"""

from __future__ import annotations

import itertools
import json
import os

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prompt_release.traces import ingest as ingest_module
from prompt_release.traces.ingest import ingest_file
from prompt_release.traces.native import FIELDS
from prompt_release.warehouse.migrate import migrate
from tests.traces.native_builders import native_record
from tests.traces.otlp_builders import span as otlp_span

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))  # raise it to hunt for new failures
_files = itertools.count()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
# non-JSON number literals DuckDB's parser accepts: spliced into the text as-is
RAW_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "nan"]
FIELD_NAMES = sorted(FIELDS) + ["input.messages", "input.variables", "usage.input_tokens", "usage.output_tokens"]


def _base(i: int) -> dict:
    return native_record(
        i,
        input={"messages": [{"role": "user", "content": "hi"}], "variables": {"ticket": "x"}},
        usage={"input_tokens": 10, "output_tokens": 3},
        latency_ms=12.5,
        tool_calls=[{"name": "lookup", "arguments": '{"id": 1}'}],
    )


@st.composite
def native_line(draw) -> str:
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "raw_number", "not_json", "blank", "valid"]))
    record = _base(draw(st.integers(0, 30)))
    if kind == "not_json":
        return draw(st.sampled_from(["{", "[]", "42", '"x"', "null", '{"a":}', "\x00", '{"trace_id": "t"', "\ud800"]))
    if kind == "blank":
        return draw(st.sampled_from(["", "   ", "\t"]))
    if kind == "valid":
        return json.dumps(record)
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.sampled_from(FIELD_NAMES + ["extra_key", ""]))
        value = draw(json_values)
        if "." in field:
            outer, inner = field.split(".")
            if isinstance(record.get(outer), dict):
                record[outer][inner] = value
            else:
                record[outer] = {inner: value}
        else:
            record[field] = value
    text = json.dumps(record)
    if kind == "raw_number":
        field = draw(st.sampled_from(["latency_ms", "cost_usd", "feedback", "retries", "span_id"]))
        record.pop(field, None)
        text = json.dumps(record)[:-1] + f', "{field}": {draw(st.sampled_from(RAW_NUMBERS))}}}'
    return text


any_value = st.one_of(
    json_values,
    st.builds(lambda v: {"stringValue": v}, json_values),
    st.builds(lambda v: {"intValue": v}, json_values),
    st.builds(lambda v: {"doubleValue": v}, json_values),
    st.builds(lambda v: {"arrayValue": v}, json_values),
    st.builds(lambda v: {"kvlistValue": v}, json_values),
)


@st.composite
def otlp_line(draw) -> str:
    i = draw(st.integers(0, 30))
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "m",
        "gen_ai.prompt.name": "support_router",
        "gen_ai.prompt.version": "1.5.2",
        "gen_ai.usage.input_tokens": 3,
        "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"hi"}]}]',
    }
    span = otlp_span(
        f"{i:032x}",
        f"{i:016x}",
        "chat m",
        attrs,
        events=[("gen_ai.choice", {"message": '{"role":"assistant","content":"ok"}'})],
    )
    for _ in range(draw(st.integers(1, 3))):
        where = draw(
            st.sampled_from(["attr_value", "attr_value", "span_field", "attributes", "events", "status", "request"])
        )
        if where == "attr_value":
            key = draw(
                st.sampled_from(
                    [
                        *attrs,
                        "llm.cost.total",
                        "gen_ai.output.messages",
                        "gen_ai.system_instructions",
                        "llm.input_messages.0.message.content",
                        "llm.prompt_template.variables",
                        "gen_ai.response.finish_reasons",
                        "openinference.span.kind",
                        "x",
                    ]
                )
            )
            if isinstance(span["attributes"], list):
                span["attributes"].append({"key": key, "value": draw(any_value)})
        elif where == "span_field":
            key = draw(
                st.sampled_from(
                    ["traceId", "spanId", "parentSpanId", "name", "startTimeUnixNano", "endTimeUnixNano", "kind"]
                )
            )
            span[key] = draw(json_values)
        elif where == "attributes":
            span["attributes"] = draw(st.one_of(json_values, st.lists(json_values, max_size=3)))
        elif where == "events":
            span["events"] = draw(
                st.one_of(
                    json_values,
                    st.lists(
                        st.dictionaries(st.sampled_from(["name", "attributes", "body"]), any_value, max_size=3),
                        max_size=2,
                    ),
                )
            )
        elif where == "status":
            span["status"] = draw(json_values)
        else:
            return json.dumps(
                draw(
                    st.one_of(
                        json_values,
                        st.builds(lambda v: {"resourceSpans": v}, json_values),
                        st.builds(lambda v: {"resourceSpans": [{"scopeSpans": v}]}, json_values),
                    )
                )
            )
    request = {
        "resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"scope": {"name": "t"}, "spans": [span]}]}]
    }
    text = json.dumps(request)
    if draw(st.booleans()) and draw(st.booleans()):
        text = text.replace('"intValue": "3"', f'"doubleValue": {draw(st.sampled_from(RAW_NUMBERS))}')
    return text


@st.composite
def event_line(draw) -> str:
    """A late-signal event line (traces.events) about a fuzzed call, a trace or nothing, valid or not."""
    record: dict = {"event": draw(st.sampled_from(["feedback", "escalation", "correction", "outcome", "bogus"]))}
    i = draw(st.integers(0, 30))
    target = draw(st.sampled_from(["span_id", "span_id", "trace_id", None]))
    if target:
        record[target] = f"sp_{i}" if target == "span_id" else f"tr_{i}"
    if draw(st.booleans()):
        record["value"] = draw(
            st.one_of(st.sampled_from(["up", "down", True, -1, 2.5, "resolved", {"route": "b"}]), json_values)
        )
    if draw(st.booleans()):
        record["event_id"] = draw(st.sampled_from(["e1", "e2"]))
    if draw(st.booleans()):
        record["timestamp"] = draw(st.sampled_from(["2026-11-27T10:05:00Z", "yesterday"]))
    return json.dumps(record)


def _check_file(con, path, lines: list[str], fmt: str) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    # ingest_file is what ingest_paths runs per file; one open connection keeps examples cheap
    con.execute("BEGIN TRANSACTION")
    f = ingest_file(con, path, format=fmt)
    stored = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE NOT isfinite(latency_ms) OR NOT isfinite(cost_usd)) "
        "FROM traces WHERE source_file = ?",
        [str(path)],
    ).fetchone()
    rejected = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE reason IS NULL) FROM ingest_rejects WHERE source_file = ?", [str(path)]
    ).fetchone()
    con.execute("COMMIT")
    assert f.records == f.stored + f.duplicates + f.rejected + f.non_call_spans, f
    if fmt == "native":
        assert f.records == f.lines_read == sum(1 for line in lines if line.strip()), f
    assert stored == (f.stored, 0)
    assert rejected == (f.rejected, 0)


_settings = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("FUZZ_EXAMPLES"),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def con(tmp_path):
    connection = duckdb.connect(str(tmp_path / "fuzz.duckdb"))
    migrate(connection)
    yield connection
    connection.close()


@_settings
@given(lines=st.lists(native_line(), min_size=1, max_size=6))
def test_fuzzed_native_lines_are_all_accounted_for(con, tmp_path, lines):
    _check_file(con, tmp_path / f"n{next(_files)}.jsonl", lines, "native")


@_settings
@given(lines=st.lists(otlp_line(), min_size=1, max_size=4))
def test_fuzzed_otlp_requests_are_all_accounted_for(con, tmp_path, lines):
    _check_file(con, tmp_path / f"o{next(_files)}.jsonl", lines, "otlp")


@pytest.fixture
def cons(tmp_path):
    """Two warehouses fed the same files: one in batches, one a file at a time."""
    pair = [duckdb.connect(str(tmp_path / f"{name}.duckdb")) for name in ("together", "alone")]
    for connection in pair:
        migrate(connection)
    yield pair
    for connection in pair:
        connection.close()


@settings(_settings, max_examples=max(EXAMPLES // 4, 10))  # each example ingests its files twice
@given(
    files=st.lists(
        st.one_of(
            st.lists(native_line(), min_size=1, max_size=4),
            st.lists(st.one_of(native_line(), event_line()), min_size=1, max_size=4),
            st.lists(otlp_line(), min_size=1, max_size=2),
        ),
        min_size=2,
        max_size=5,
    )
)
def test_fuzzed_files_of_one_transaction_are_accounted_as_one_at_a_time(cons, tmp_path, files):
    paths = []
    for lines in files:
        path = tmp_path / f"m{next(_files)}.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
        paths.append(path)
    together, alone = cons
    # what ingest_paths runs in each transaction: small native files in one pass, the others on their own
    together.execute("BEGIN TRANSACTION")
    batched = ingest_module._ingest_together(together, paths, "auto", None, True)
    together.execute("COMMIT")
    alone.execute("BEGIN TRANSACTION")
    one_by_one = [ingest_file(alone, path) for path in paths]
    ingest_module._settle_unknown_calls(alone, one_by_one)  # as _ingest_group does at the end of a transaction
    alone.execute("COMMIT")
    assert [f.model_dump() for f in batched] == [f.model_dump() for f in one_by_one]
    for f in batched:
        assert f.records == f.stored + f.duplicates + f.rejected + f.non_call_spans, f
    # a native event line stored counts as stored, like a call line (OTLP events sit inside their spans)
    query = (
        "SELECT (SELECT count(*) FROM traces WHERE source_file = $f) "
        "+ (SELECT count(*) FROM events WHERE source_file = $f AND source_format = 'native'), "
        "(SELECT count(*) FROM ingest_rejects WHERE source_file = $f)"
    )
    for path, f in zip(paths, batched):
        assert together.execute(query, {"f": str(path)}).fetchone() == (f.stored, f.rejected)
    events = "SELECT * EXCLUDE (ingested_at, ts, day) FROM events ORDER BY event_key"
    assert together.execute(events).fetchall() == alone.execute(events).fetchall()

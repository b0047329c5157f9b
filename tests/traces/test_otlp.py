"""OTLP ingest: GenAI semconv and OpenInference hand-written fixtures."""

from __future__ import annotations

import json

import duckdb

from prompt_release.traces import ingest_paths
from tests.traces.otlp_builders import request, span

T = "0af7651916cd43dd8448eb211c80319c"


def fetch(warehouse, sql):
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def check_balanced(summary):
    for f in summary.files:
        assert f.records == f.stored + f.duplicates + f.rejected + f.non_call_spans


def test_genai_hierarchy_prompt_identity_tools_from_output_and_error(tmp_path, warehouse):
    agent = span(
        T,
        "a000000000000001",
        "invoke_agent order_agent",
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.prompt.name": "order_agent",
            "gen_ai.prompt.version": "2.0.0",
            "gen_ai.conversation.id": "conv-7",
            "gen_ai.tool.definitions": json.dumps([{"name": "lookup_order"}]),
        },
    )
    history = [
        {"role": "user", "parts": [{"type": "text", "content": "refund ORD-000001"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "c0", "name": "old_tool", "arguments": {"x": 1}}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c0", "response": "ok"}]},
    ]
    chat = span(
        T,
        "c000000000000002",
        "chat gpt-4o",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024",
            "gen_ai.usage.input_tokens": 120,
            "gen_ai.usage.output_tokens": 9,
            "gen_ai.request.temperature": 0.2,
            "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "You are an order agent."}]),
            "gen_ai.input.messages": json.dumps(history),
            "gen_ai.output.messages": json.dumps(
                [
                    {
                        "role": "assistant",
                        "finish_reason": "tool_call",
                        "parts": [
                            {
                                "type": "tool_call",
                                "id": "c1",
                                "name": "lookup_order",
                                "arguments": {"order_id": "ORD-000001"},
                            }
                        ],
                    }
                ]
            ),
            "gen_ai.response.finish_reasons": ["tool_calls"],
        },
        parent="a000000000000001",
    )
    failed = span(
        T,
        "c000000000000003",
        "chat",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "error.type": "RateLimitError",
        },
        parent="a000000000000001",
        status_code=2,
    )
    tool = span(
        T,
        "d000000000000004",
        "execute_tool lookup_order",
        {"gen_ai.operation.name": "execute_tool"},
        parent="c000000000000002",
    )
    path = tmp_path / "genai.jsonl"
    # the parent arrives in a later batch than its children
    path.write_text(request(chat, failed) + "\n" + request(tool) + "\n" + request(agent) + "\n")
    summary = ingest_paths([path], warehouse=warehouse)
    check_balanced(summary)
    f = summary.files[0]
    assert (f.format, f.records, f.stored, f.non_call_spans, f.prompt_version_missing) == ("otlp", 4, 2, 2, 0)
    got = fetch(
        warehouse,
        "SELECT span_id, prompt_version, workflow, model, tool_calls, status, error_type, session_id, "
        "input_tokens, latency_ms, input_messages, finish_reason, attributes, source_format, source_line FROM traces ORDER BY span_id",
    )
    ok, err = got
    assert ok[1:4] == ("order_agent:v2.0.0", "order_agent", "gpt-4o-2024")
    assert json.loads(ok[4]) == [{"name": "lookup_order", "arguments": {"order_id": "ORD-000001"}, "id": "c1"}]
    assert ok[5] == "ok" and ok[7] == "conv-7" and ok[8] == 120 and ok[9] == 250.0
    messages = json.loads(ok[10])
    assert messages[0] == {"role": "system", "content": "You are an order agent."} and len(messages) == 4
    assert ok[11] == "tool_calls"
    attrs = json.loads(ok[12])
    assert attrs["gen_ai.request.temperature"] == 0.2 and "gen_ai.tool.definitions" in attrs
    assert ok[13] == "otlp_genai" and ok[14] == 1
    assert err[5] == "error" and err[6] == "RateLimitError" and err[1] == "order_agent:v2.0.0"
    # re-ingest: spans dedup on span id
    again = ingest_paths([path], warehouse=warehouse)
    check_balanced(again)
    assert again.total.duplicates == 2 and again.total.stored == 0


def test_genai_events_and_missing_prompt_identity(tmp_path, warehouse):
    chat = span(
        T,
        "e000000000000001",
        "chat",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.prompt_tokens": 5,
        },
        events=[
            ("gen_ai.system.message", {"content": "Be brief."}),
            ("gen_ai.user.message", {"content": "hello"}),
            (
                "gen_ai.choice",
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi there"}},
            ),
        ],
    )
    path = tmp_path / "events.jsonl"
    path.write_text(request(chat) + "\n")
    summary = ingest_paths([path], warehouse=warehouse)
    assert summary.total.stored == 1 and summary.total.prompt_version_missing == 1
    ((msgs, output, finish, pv, tokens),) = fetch(
        warehouse, "SELECT input_messages, output, finish_reason, prompt_version, input_tokens FROM traces"
    )
    assert [m["content"] for m in json.loads(msgs)] == ["Be brief.", "hello"]
    assert (output, finish, pv, tokens) == ("hi there", "stop", None, 5)


def test_openinference_llm_span_and_both_conventions_on_one_span(tmp_path, warehouse):
    chain = span(
        T,
        "f000000000000001",
        "router",
        {
            "openinference.span.kind": "CHAIN",
            "prompt.id": "support_router",
            "llm.prompt_template.version": "v1.6.0",
            "workflow": "support",
            "session.id": "s-1",
            "user.id": "u-9",
        },
    )
    llm = span(
        T,
        "f000000000000002",
        "ChatCompletion",
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o",
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "Route tickets.",
            "llm.input_messages.1.message.role": "assistant",
            "llm.input_messages.1.message.tool_calls.0.tool_call.function.name": "replayed",
            "llm.input_messages.1.message.tool_calls.0.tool_call.function.arguments": "{}",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": '{"route": "billing", "confidence": 0.9}',
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "lookup_order",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"order_id": "ORD-123456"}',
            "llm.token_count.prompt": 50,
            "llm.token_count.completion": 7,
            "llm.invocation_parameters": '{"temperature": 0}',
            "llm.prompt_template.variables": '{"ticket": "refund please"}',
        },
        parent="f000000000000001",
        status_code=2,
        events=[("exception", {"exception.type": "ValueError", "exception.message": "bad"})],
    )
    both = span(
        T,
        "f000000000000003",
        "chat",
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "x",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
        },
        parent="f000000000000001",
    )
    path = tmp_path / "oi.jsonl"
    path.write_text(request(chain, llm, both) + "\n")
    summary = ingest_paths([path], warehouse=warehouse)
    check_balanced(summary)
    assert (summary.total.stored, summary.total.non_call_spans) == (2, 1)
    rows = fetch(
        warehouse,
        "SELECT span_id, source_format, prompt_version, workflow, session_id, user_id, tool_calls, "
        "status, error_type, variables, output, input_tokens, attributes FROM traces ORDER BY span_id",
    )
    oi, dual = rows
    assert oi[1:6] == ("openinference", "support_router:v1.6.0", "support", "s-1", "u-9")
    assert json.loads(oi[6]) == [{"name": "lookup_order", "arguments": {"order_id": "ORD-123456"}}]
    assert oi[7:9] == ("error", "ValueError")
    assert json.loads(oi[9]) == {"ticket": "refund please"} and json.loads(oi[10])["route"] == "billing"
    assert oi[11] == 50 and json.loads(oi[12])["llm.invocation_parameters"] == {"temperature": 0}
    assert dual[1] == "otlp_genai"


def test_otlp_malformed_lines_and_spans(tmp_path, warehouse):
    good = span(T, "9000000000000001", "chat", {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"})
    no_id = {"traceId": T, "name": "chat"}
    path = tmp_path / "bad.jsonl"
    path.write_text(request(good, no_id) + "\n" + '{"resourceSpans": [' + "\n" + '{"foo": 1}' + "\n\n")
    summary = ingest_paths([path], warehouse=warehouse, format="otlp")
    check_balanced(summary)
    f = summary.files[0]
    assert (f.lines_read, f.blank_lines, f.records, f.stored, f.rejected) == (3, 1, 4, 1, 3)
    reasons = fetch(warehouse, "SELECT line_number, field, reason FROM ingest_rejects ORDER BY line_number")
    assert reasons[0][:2] == (1, "spanId") and reasons[1][0] == 2 and "invalid JSON" in reasons[1][2]
    assert reasons[2][:2] == (3, "resourceSpans")


def test_pretty_printed_json_document(tmp_path, warehouse):
    chat = span(
        T,
        "b000000000000001",
        "chat",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "m",
            "gen_ai.prompt.name": "summarizer",
            "gen_ai.prompt.version": "summarizer:v1.0.0",
        },
    )
    path = tmp_path / "export.json"
    path.write_text(json.dumps(json.loads(request(chat)), indent=2))
    summary = ingest_paths([path], warehouse=warehouse)
    check_balanced(summary)
    assert (summary.files[0].format, summary.total.stored) == ("otlp", 1)
    assert fetch(warehouse, "SELECT prompt_version FROM traces") == [("summarizer:v1.0.0",)]

"""Render generated traces as OTLP/JSON export requests (OpenTelemetry GenAI or OpenInference).

One `ExportTraceServiceRequest` per line, as the OpenTelemetry file exporter
writes it: `resourceSpans/scopeSpans/spans`, hex trace and span ids, int64
values as strings, typed attribute values. The GenAI flavour follows the
OpenTelemetry GenAI semantic conventions (an app or `invoke_agent` parent span
carrying `gen_ai.prompt.name`/`gen_ai.prompt.version`/`workflow`, `chat` child
spans with `gen_ai.input.messages`/`gen_ai.output.messages` as JSON strings
with text and tool_call parts, `execute_tool` spans for tool runs); the
OpenInference flavour follows Arize Phoenix's flattened `llm.*` attributes.
Input is the generator's plain `Trace`/`Call` objects (duck-typed here so this
module has no import cycle with the generator).
"""

from __future__ import annotations

import json
from typing import Any

SPAN_KIND_INTERNAL = 1
SPAN_KIND_CLIENT = 3
STATUS_ERROR = 2


def _value(value: Any) -> dict:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [_value(v) for v in value]}}
    return {"stringValue": str(value)}


def _attrs(pairs: dict[str, Any]) -> list[dict]:
    return [{"key": k, "value": _value(v)} for k, v in pairs.items() if v is not None]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _span(
    trace_id: str,
    span_id: str,
    parent: str | None,
    name: str,
    kind: int,
    start_ns: int,
    end_ns: int,
    attributes: dict[str, Any],
    status: dict | None = None,
    events: list | None = None,
) -> dict:
    span = {
        "traceId": trace_id,
        "spanId": span_id,
        "parentSpanId": parent or "",
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(end_ns),
        "attributes": _attrs(attributes),
        "status": status or {},
    }
    if events:
        span["events"] = events
    return span


def _error_parts(call) -> tuple[dict, list]:
    status = {"code": STATUS_ERROR, "message": call.error_message or call.error_type}
    events = [
        {
            "timeUnixNano": str(call.end_ns),
            "name": "exception",
            "attributes": _attrs({"exception.type": call.error_type, "exception.message": call.error_message}),
        }
    ]
    return status, events


def _resource(trace) -> dict:
    return {
        "attributes": _attrs(
            {
                "service.name": f"{trace.workflow.replace('_', '-')}-service",
                "service.version": trace.app_version,
                "deployment.environment": "production",
                "cloud.region": {"eu": "eu-west-1", "us": "us-east-1", "apac": "ap-southeast-2"}[
                    trace.segment["region"]
                ],
                "telemetry.sdk.language": "python",
                "telemetry.sdk.name": "opentelemetry",
            }
        )
    }


# ---------------------------------------------------------------- GenAI semconv


def _genai_message(message: dict) -> dict:
    role = message["role"]
    parts: list[dict] = []
    if role == "tool":
        parts.append(
            {"type": "tool_call_response", "id": message.get("tool_call_id"), "response": message.get("content")}
        )
        return {"role": "tool", "parts": parts}
    if message.get("content"):
        parts.append({"type": "text", "content": message["content"]})
    for call in message.get("tool_calls") or []:
        raw = call["function"]["arguments"]
        try:
            arguments = json.loads(raw)
        except ValueError:
            arguments = raw
        parts.append({"type": "tool_call", "id": call["id"], "name": call["function"]["name"], "arguments": arguments})
    return {"role": role, "parts": parts}


def _genai_chat_span(trace, call, prompt_version_text: str) -> dict:
    system = [m for m in call.messages if m["role"] == "system"]
    rest = [m for m in call.messages if m["role"] != "system"]
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": call.model,
        "gen_ai.request.temperature": call.temperature,
        "gen_ai.request.max_tokens": call.max_tokens,
        "server.address": "api.openai.com",
        "gen_ai.system_instructions": _dumps([{"type": "text", "content": m["content"]} for m in system])
        if system
        else None,
        "gen_ai.input.messages": _dumps([_genai_message(m) for m in rest]),
    }
    status = events = None
    if call.status == "error":
        attributes["error.type"] = call.error_type
        status, events = _error_parts(call)
    else:
        parts: list[dict] = []
        if call.output is not None:
            parts.append({"type": "text", "content": call.output})
        for tool_call in call.tool_calls:
            parts.append(
                {
                    "type": "tool_call",
                    "id": tool_call["id"],
                    "name": tool_call["name"],
                    "arguments": tool_call["arguments"],
                }
            )
        attributes.update(
            {
                "gen_ai.response.model": call.model,
                "gen_ai.response.id": call.response_id,
                "gen_ai.response.finish_reasons": [call.finish_reason],
                "gen_ai.usage.input_tokens": call.input_tokens,
                "gen_ai.usage.output_tokens": call.output_tokens,
                "gen_ai.output.messages": _dumps(
                    [{"role": "assistant", "parts": parts, "finish_reason": call.finish_reason}]
                ),
            }
        )
    return _span(
        trace.trace_id,
        call.span_id,
        call.parent_span_id,
        f"chat {call.model}",
        SPAN_KIND_CLIENT,
        call.start_ns,
        call.end_ns,
        attributes,
        status,
        events,
    )


def genai_request(traces: list, prompt_version_text) -> dict:
    """One export request holding `traces` (same resource), GenAI semconv flavour.

    `prompt_version_text(trace)` gives the `gen_ai.prompt.version` spelling
    (bare `1.5.2`, `v1.5.2` or the full id: apps differ and ingest accepts all).
    """
    app_spans: list[dict] = []
    instr_spans: list[dict] = []
    for trace in traces:
        version = prompt_version_text(trace)
        root_attrs: dict[str, Any] = {
            "workflow": trace.workflow,
            "gen_ai.prompt.name": trace.prompt_id,
            "gen_ai.prompt.version": version,
            "gen_ai.conversation.id": trace.session_id,
            "user.id": trace.user_id,
            "app.customer.tier": trace.segment["tier"],
            "app.customer.region": trace.segment["region"],
        }
        if trace.tool_definitions:
            root_attrs.update(
                {
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.agent.name": trace.workflow,
                    "gen_ai.tool.definitions": _dumps(trace.tool_definitions),
                }
            )
            name = f"invoke_agent {trace.workflow}"
        else:
            name = f"{trace.workflow}.handle"
        app_spans.append(
            _span(
                trace.trace_id,
                trace.root_span_id,
                None,
                name,
                SPAN_KIND_INTERNAL,
                trace.start_ns,
                trace.end_ns,
                root_attrs,
            )
        )
        for call in trace.calls:
            instr_spans.append(_genai_chat_span(trace, call, version))
        for run in trace.tool_runs:
            app_spans.append(
                _span(
                    trace.trace_id,
                    run.span_id,
                    trace.root_span_id,
                    f"execute_tool {run.name}",
                    SPAN_KIND_INTERNAL,
                    run.start_ns,
                    run.end_ns,
                    {
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": run.name,
                        "gen_ai.tool.call.id": run.call_id,
                        "gen_ai.tool.type": "function",
                    },
                )
            )
    return {
        "resourceSpans": [
            {
                "resource": _resource(traces[0]),
                "scopeSpans": [
                    {
                        "scope": {"name": f"{traces[0].workflow}.app", "version": traces[0].app_version},
                        "spans": app_spans,
                    },
                    {
                        "scope": {"name": "opentelemetry.instrumentation.openai_v2", "version": "2.1b0"},
                        "spans": instr_spans,
                    },
                ],
            }
        ]
    }


# ---------------------------------------------------------------- OpenInference


def _oi_messages(prefix: str, messages: list[dict]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, message in enumerate(messages):
        base = f"{prefix}.{i}.message"
        out[f"{base}.role"] = message["role"]
        if message.get("content") is not None:
            out[f"{base}.content"] = message["content"]
        if message.get("tool_call_id"):
            out[f"{base}.tool_call_id"] = message["tool_call_id"]
        for j, call in enumerate(message.get("tool_calls") or []):
            out[f"{base}.tool_calls.{j}.tool_call.id"] = call["id"]
            out[f"{base}.tool_calls.{j}.tool_call.function.name"] = call["function"]["name"]
            out[f"{base}.tool_calls.{j}.tool_call.function.arguments"] = call["function"]["arguments"]
    return out


def _oi_llm_span(trace, call) -> dict:
    attributes: dict[str, Any] = {
        "openinference.span.kind": "LLM",
        "llm.system": "openai",
        "llm.provider": "openai",
        "llm.model_name": call.model,
        "llm.invocation_parameters": _dumps({"temperature": call.temperature, "max_tokens": call.max_tokens}),
        "llm.prompt_template.version": f"v{trace.version}",
        "llm.prompt_template.variables": _dumps(call.variables),
        "prompt.id": trace.prompt_id,
        "session.id": trace.session_id,
        "user.id": trace.user_id,
    }
    attributes.update(_oi_messages("llm.input_messages", call.messages))
    status = events = None
    if call.status == "error":
        status, events = _error_parts(call)
    else:
        out_message: dict[str, Any] = {"role": "assistant", "content": call.output}
        if call.tool_calls:
            out_message["tool_calls"] = [
                {
                    "id": c["id"],
                    "function": {
                        "name": c["name"],
                        "arguments": c["arguments"] if isinstance(c["arguments"], str) else _dumps(c["arguments"]),
                    },
                }
                for c in call.tool_calls
            ]
        attributes.update(_oi_messages("llm.output_messages", [out_message]))
        attributes.update(
            {
                "llm.token_count.prompt": call.input_tokens,
                "llm.token_count.completion": call.output_tokens,
                "llm.token_count.total": call.input_tokens + call.output_tokens,
            }
        )
    return _span(
        trace.trace_id,
        call.span_id,
        call.parent_span_id,
        "ChatCompletion",
        SPAN_KIND_INTERNAL,
        call.start_ns,
        call.end_ns,
        attributes,
        status,
        events,
    )


def openinference_request(traces: list) -> dict:
    """One export request holding `traces`, OpenInference flavour (Arize Phoenix)."""
    spans: list[dict] = []
    for trace in traces:
        kind = "AGENT" if trace.tool_definitions else "CHAIN"
        spans.append(
            _span(
                trace.trace_id,
                trace.root_span_id,
                None,
                trace.workflow,
                SPAN_KIND_INTERNAL,
                trace.start_ns,
                trace.end_ns,
                {
                    "openinference.span.kind": kind,
                    "workflow": trace.workflow,
                    "session.id": trace.session_id,
                    "user.id": trace.user_id,
                    "metadata": _dumps({"tier": trace.segment["tier"], "region": trace.segment["region"]}),
                },
            )
        )
        for call in trace.calls:
            spans.append(_oi_llm_span(trace, call))
        for run in trace.tool_runs:
            spans.append(
                _span(
                    trace.trace_id,
                    run.span_id,
                    trace.root_span_id,
                    run.name,
                    SPAN_KIND_INTERNAL,
                    run.start_ns,
                    run.end_ns,
                    {
                        "openinference.span.kind": "TOOL",
                        "tool.name": run.name,
                        "input.value": run.arguments_text,
                        "output.value": run.result,
                    },
                )
            )
    return {
        "resourceSpans": [
            {
                "resource": _resource(traces[0]),
                "scopeSpans": [
                    {"scope": {"name": "openinference.instrumentation.openai", "version": "0.1.18"}, "spans": spans}
                ],
            }
        ]
    }

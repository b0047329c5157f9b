"""OTLP/JSON trace files -> `traces` rows: OpenTelemetry GenAI semconv and OpenInference.

Each non-blank line is one ExportTraceServiceRequest (resourceSpans /
scopeSpans / spans, hex ids, int64 as strings, typed attribute values). All
spans of a file are buffered first, because the spans of one trace may be
exported in different batches (lines) and a call's prompt identity, workflow,
conversation id and tool definitions often sit on an ancestor (agent or
workflow span). Then every span that is an LLM call becomes one row:
- GenAI semconv: `gen_ai.operation.name` in chat / text_completion /
  generate_content (or, for instrumentations older than that attribute, a
  span with `gen_ai.request.model`); messages from `gen_ai.input.messages` /
  `gen_ai.output.messages` / `gen_ai.system_instructions`, or from span
  events (`gen_ai.user.message`, `gen_ai.choice`, ...) as older
  instrumentations emit them.
- OpenInference: `openinference.span.kind` = LLM; flattened
  `llm.input_messages.{i}.message.*` attributes.
A span carrying both conventions is one row, `source_format` 'otlp_genai'
(GenAI markers are checked first). Other spans (agent, tool, workflow,
embedding) are counted as `non_call_spans`. A call is an error exactly when
its span status code is 2 (ERROR). Tool calls come from the call's output
messages only, never from earlier calls replayed in its input history.

Accounting unit: a span; a line that holds no readable export request is one
rejected record, a span without trace/span id is one rejected record.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from prompt_release.registry.ids import is_bare_version, is_name, is_version_id
from prompt_release.traces import events
from prompt_release.traces.lines import LineReader

try:  # orjson is several times faster on large OTLP lines; json is the fallback
    import orjson

    _loads = orjson.loads
    _JSONError: tuple[type[BaseException], ...] = (orjson.JSONDecodeError, UnicodeDecodeError)

    def _dumps(value: Any) -> str:
        try:
            return orjson.dumps(value, default=str).decode()
        except orjson.JSONEncodeError:  # e.g. an integer past 64 bits: json writes it
            return json.dumps(value, default=str)

except ImportError:  # pragma: no cover
    _loads = json.loads
    _JSONError = (json.JSONDecodeError, UnicodeDecodeError)

    def _dumps(value: Any) -> str:
        return json.dumps(value, default=str)


CALL_OPERATIONS = {"chat", "text_completion", "generate_content", "completion"}

# attributes turned into columns (not repeated in `attributes`)
_CONSUMED = {
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.prompt_tokens",
    "gen_ai.usage.completion_tokens",
    "gen_ai.conversation.id",
    "llm.token_count.prompt",
    "llm.token_count.completion",
    "session.id",
    "user.id",
    "enduser.id",
    "llm.prompt_template.variables",
    "input.value",
    "output.value",
}
_FLAT_MESSAGES = re.compile(r"^llm\.(input|output)_messages\.")


# ---------------------------------------------------------------- decoding


def attr_value(value: Any) -> Any:
    """Python value of an OTLP/JSON AnyValue."""
    if not isinstance(value, dict):
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            return value["intValue"]
    if "doubleValue" in value:
        try:
            return float(value["doubleValue"])
        except (TypeError, ValueError):
            return value["doubleValue"]
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [attr_value(v) for v in _as_list(_as_dict(value["arrayValue"]).get("values"))]
    if "kvlistValue" in value:
        return attributes(_as_dict(value["kvlistValue"]).get("values"))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attributes(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in _as_list(items):
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            out[item["key"]] = attr_value(item.get("value"))
    return out


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("[", "{"):
            try:
                return _loads(text)
            except _JSONError:
                return value
    return value


def _ns(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "", 0, "0") else None
    except (TypeError, ValueError):
        return None


class Span:
    __slots__ = (
        "trace_id",
        "span_id",
        "parent_span_id",
        "name",
        "attrs",
        "events",
        "event_times",
        "links",
        "status_code",
        "status_message",
        "start_ns",
        "end_ns",
        "line",
        "resource",
        "scope",
    )

    def __init__(self, raw: dict, line: int, resource: dict, scope: str | None) -> None:
        self.trace_id = raw.get("traceId")
        self.span_id = raw.get("spanId")
        self.parent_span_id = raw.get("parentSpanId") or None
        self.name = raw.get("name")
        self.attrs = attributes(raw.get("attributes"))
        raw_events = [e for e in raw.get("events") or [] if isinstance(e, dict)]
        self.events = [(e.get("name"), attributes(e.get("attributes")), e.get("body")) for e in raw_events]
        self.event_times = [_ns(e.get("timeUnixNano")) for e in raw_events]
        self.links = [
            link["spanId"]
            for link in _as_list(raw.get("links"))
            if isinstance(link, dict) and isinstance(link.get("spanId"), str) and link["spanId"]
        ]
        status = raw.get("status") or {}
        code = status.get("code")
        self.status_code = 2 if code in (2, "2", "STATUS_CODE_ERROR") else code
        self.status_message = status.get("message")
        self.start_ns = _ns(raw.get("startTimeUnixNano"))
        self.end_ns = _ns(raw.get("endTimeUnixNano"))
        self.line = line
        self.resource = resource
        self.scope = scope

    def event_items(self) -> list[tuple[Any, dict, Any, int | None]]:
        """(name, attributes, body, time in ns) of each span event."""
        return [(*event, t) for event, t in zip(self.events, self.event_times, strict=True)]

    def call_format(self) -> str | None:
        a = self.attrs
        op = a.get("gen_ai.operation.name")
        if op in CALL_OPERATIONS:
            return "otlp_genai"
        if op is None and "gen_ai.request.model" in a and a.get("openinference.span.kind") in (None, "LLM"):
            return "otlp_genai"
        if str(a.get("openinference.span.kind", "")).upper() == "LLM":
            return "openinference"
        return None


# ---------------------------------------------------------------- messages


def _tool_call(name: Any, arguments: Any, call_id: Any = None) -> dict:
    args = arguments
    if isinstance(args, str):
        try:
            parsed = json.loads(args)
            if isinstance(parsed, dict):
                args = parsed
        except ValueError:
            pass
    out = {"name": name, "arguments": args}
    if call_id:
        out["id"] = call_id
    return out


def _parts_message(message: dict) -> tuple[dict, list[dict]]:
    """GenAI semconv message {role, parts[...]} -> ({role, content, ...}, tool calls)."""
    texts, calls, out = [], [], {"role": message.get("role")}
    for part in message.get("parts") or []:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            texts.append(str(part.get("content", "")))
        elif kind == "tool_call":
            calls.append(_tool_call(part.get("name"), part.get("arguments"), part.get("id")))
        elif kind == "tool_call_response":
            out["tool_call_id"] = part.get("id")
            response = part.get("response")
            texts.append(response if isinstance(response, str) else json.dumps(response))
        elif "content" in part:
            texts.append(str(part["content"]))
    if "content" in message and not texts:  # older shape {role, content}
        content = message["content"]
        texts.append(content if isinstance(content, str) else json.dumps(content))
    for tc in message.get("tool_calls") or []:  # older shape with OpenAI-style tool_calls
        fn = tc.get("function") or tc
        calls.append(_tool_call(fn.get("name"), fn.get("arguments"), tc.get("id")))
    out["content"] = "".join(texts) if texts else None
    if calls:
        out["tool_calls"] = calls
    if message.get("finish_reason"):
        out["finish_reason"] = message["finish_reason"]
    return out, calls


def _flat_messages(attrs: dict, prefix: str) -> list[tuple[dict, list[dict]]]:
    """OpenInference `llm.input_messages.{i}.message.*` -> messages in index order."""
    found: dict[int, dict] = {}
    head = prefix + "."
    for key, value in attrs.items():
        if not key.startswith(head):
            continue
        index, _, rest = key[len(head) :].partition(".")
        if index.isdigit():
            found.setdefault(int(index), {})[rest] = value
    messages = []
    for index in sorted(found):
        fields = found[index]
        calls: dict[int, dict] = {}
        texts: dict[int, str] = {}
        for key, value in fields.items():
            m = re.match(r"^message\.tool_calls\.(\d+)\.tool_call\.(.+)$", key)
            if m:
                calls.setdefault(int(m.group(1)), {})[m.group(2)] = value
                continue
            m = re.match(r"^message\.contents\.(\d+)\.message_content\.text$", key)
            if m:
                texts[int(m.group(1))] = str(value)
        tool_calls = [
            _tool_call(c.get("function.name"), c.get("function.arguments"), c.get("id"))
            for _, c in sorted(calls.items())
        ]
        content = fields.get("message.content")
        if content is None and texts:
            content = "".join(t for _, t in sorted(texts.items()))
        message = {"role": fields.get("message.role"), "content": content}
        if fields.get("message.tool_call_id"):
            message["tool_call_id"] = fields["message.tool_call_id"]
        if tool_calls:
            message["tool_calls"] = tool_calls
        messages.append((message, tool_calls))
    return messages


_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def _event_messages(span: Span) -> tuple[list[dict], list[dict], str | None]:
    """Messages from span events (older GenAI instrumentations): input, output, finish reason."""
    inputs: list[dict] = []
    outputs: list[dict] = []
    finish = None
    for name, attrs, body in span.events:
        payload = dict(attrs)
        if isinstance(body, dict):
            payload.update(_as_dict(attr_value(body)))
        if name in _EVENT_ROLES:
            message, _ = _parts_message(
                {
                    "role": payload.get("role") or _EVENT_ROLES[name],
                    "content": _maybe_json(payload.get("content")) if payload.get("content") is not None else None,
                    "tool_calls": _as_list(_maybe_json(payload.get("tool_calls"))),
                }
            )
            if payload.get("id"):
                message["tool_call_id"] = payload["id"]
            inputs.append(message)
        elif name == "gen_ai.choice":
            raw = _as_dict(_maybe_json(payload.get("message")))
            if not raw:
                raw = {
                    "role": "assistant",
                    "content": payload.get("content"),
                    "tool_calls": _as_list(_maybe_json(payload.get("tool_calls"))),
                }
            raw.setdefault("role", "assistant")
            message, _ = _parts_message({**raw, "tool_calls": _as_list(_maybe_json(raw.get("tool_calls")))})
            outputs.append(message)
            finish = finish or payload.get("finish_reason")
        elif name in ("gen_ai.content.prompt", "gen_ai.prompt"):
            for m in _as_list(_maybe_json(payload.get("gen_ai.prompt"))):
                inputs.append(_parts_message(_as_dict(m))[0])
        elif name in ("gen_ai.content.completion", "gen_ai.completion"):
            for m in _as_list(_maybe_json(payload.get("gen_ai.completion"))):
                outputs.append(_parts_message(_as_dict(m))[0])
    return inputs, outputs, finish


def _as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


# ---------------------------------------------------------------- rows


def _ancestors(span: Span, index: dict[tuple[str, str], Span]) -> Iterator[Span]:
    """The span itself, then its parent, grandparent... within the same trace (cycle-safe)."""
    seen: set[str] = set()
    current: Span | None = span
    while current is not None and current.span_id not in seen:
        seen.add(current.span_id)
        yield current
        parent = current.parent_span_id
        current = index.get((current.trace_id, parent)) if parent else None


def _first(chain: list[Span], *keys: str) -> Any:
    for span in chain:
        for key in keys:
            value = span.attrs.get(key)
            if value not in (None, ""):
                return value
    return None


def prompt_identity(chain: list[Span]) -> tuple[str | None, str | None]:
    """(prompt_id, prompt_version) from the nearest span in `chain` that names them."""
    for span in chain:
        a = span.attrs
        pid = a.get("gen_ai.prompt.name") or a.get("prompt.id") or a.get("gen_ai.prompt.id")
        version = a.get("gen_ai.prompt.version") or a.get("llm.prompt_template.version") or a.get("prompt.version")
        if version is None and pid is None:
            continue
        if version is not None:
            version = str(version).strip()
            if is_version_id(version):
                return version.split(":", 1)[0], version
            if pid and is_name(str(pid)) and is_bare_version(version):
                full = f"{pid}:v{version.removeprefix('v')}"
                return str(pid), full
        if pid and is_name(str(pid)):
            # the id without a usable version here: a version further up may complete it
            for upper in chain[chain.index(span) + 1 :]:
                v = upper.attrs.get("gen_ai.prompt.version") or upper.attrs.get("llm.prompt_template.version")
                if v is not None and is_bare_version(str(v).strip()):
                    return str(pid), f"{pid}:v{str(v).strip().removeprefix('v')}"
                if v is not None and is_version_id(str(v).strip()):
                    return str(v).split(":", 1)[0], str(v).strip()
            return str(pid), None
    return None, None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError, OverflowError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError, OverflowError):
        return None


class BadSpan(Exception):
    """A span that cannot become a row: rejected with `reason`, naming `field`."""

    def __init__(self, reason: str, field: str) -> None:
        super().__init__(reason)
        self.reason, self.field = reason, field


_INT64 = (-(2**63), 2**63 - 1)
# column -> the attributes it may come from, in the order call_row reads them
_NUMBER_SOURCES = {
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion"),
    "cost_usd": ("llm.cost.total", "gen_ai.usage.cost"),
}


def _checked(row: dict, span: Span) -> dict:
    """Refuse values the warehouse cannot hold or that would poison aggregates
    (non-finite cost, integers past BIGINT, a timestamp out of range); coerce
    structured values in text columns to JSON text."""
    for column, keys in _NUMBER_SOURCES.items():
        value = row[column]
        if value is None:
            continue
        key = next((k for k in keys if k in span.attrs), keys[0])
        if isinstance(value, float) and not math.isfinite(value):
            raise BadSpan(f"span attribute '{key}' must be a finite number", key)
        if isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
            raise BadSpan(f"span attribute '{key}' is out of range for a 64-bit integer", key)
    for name, kind in ROW_TYPES.items():
        value = row[name]
        if kind == pa.string() and value is not None and not isinstance(value, str):
            row[name] = _dumps(value)
    return row


def _span_ts(span: Span) -> datetime | None:
    if not span.start_ns:
        return None
    try:
        return datetime.fromtimestamp(span.start_ns / 1e9, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise BadSpan("span field 'startTimeUnixNano' is out of range for a timestamp", "startTimeUnixNano") from exc


def call_row(span: Span, fmt: str, index: dict, day_ts: datetime | None, ingested_at: datetime) -> dict:
    a = span.attrs
    chain = list(_ancestors(span, index))
    prompt_id, prompt_version = prompt_identity(chain)
    workflow = _first(chain, "workflow", "workflow.name", "gen_ai.workflow.name") or prompt_id

    # messages: GenAI attributes, then OpenInference flattened, then events
    input_messages: list[dict] = []
    output_messages: list[dict] = []
    tool_calls: list[dict] = []
    finish = None
    system = _maybe_json(a.get("gen_ai.system_instructions"))
    if system is not None:
        parts = system if isinstance(system, list) else [{"type": "text", "content": system}]
        input_messages.append(_parts_message({"role": "system", "parts": parts})[0])
    for m in _as_list(_maybe_json(a.get("gen_ai.input.messages"))):
        input_messages.append(_parts_message(_as_dict(m))[0])
    for m in _as_list(_maybe_json(a.get("gen_ai.output.messages"))):
        message, calls = _parts_message(_as_dict(m))
        output_messages.append(message)
        tool_calls += calls
        finish = finish or message.get("finish_reason")
    if not input_messages:
        input_messages = [m for m, _ in _flat_messages(a, "llm.input_messages")]
    if not output_messages:
        for message, calls in _flat_messages(a, "llm.output_messages"):
            output_messages.append(message)
            tool_calls += calls
    if not input_messages and not output_messages:
        ev_in, ev_out, ev_finish = _event_messages(span)
        input_messages, output_messages = ev_in, ev_out
        for m in ev_out:
            tool_calls += m.get("tool_calls", [])
        finish = finish or ev_finish
    texts = [m["content"] for m in output_messages if m.get("content")]
    # OpenInference's output.value is the whole response body when its mime type
    # is JSON; only a plain-text value is the model's answer itself.
    plain_value = a.get("output.value") if a.get("output.mime_type", "text/plain") == "text/plain" else None
    output = "".join(texts) if texts else (None if tool_calls else plain_value)
    reasons = a.get("gen_ai.response.finish_reasons")
    if isinstance(reasons, list) and reasons:
        finish = str(reasons[0])
    elif isinstance(reasons, str):
        finish = reasons

    error_type = None
    status = "error" if span.status_code == 2 else "ok"
    if status == "error":
        error_type = a.get("error.type")
        for name, eattrs, _ in span.events:
            if name == "exception" and not error_type:
                error_type = eattrs.get("exception.type") or eattrs.get("exception.message")
        error_type = error_type or span.status_message or "error"

    variables = _maybe_json(_first(chain, "llm.prompt_template.variables", "gen_ai.prompt.variables"))
    extra = {k: v for k, v in a.items() if k not in _CONSUMED and not _FLAT_MESSAGES.match(k)}
    for key in ("gen_ai.tool.definitions", "llm.tools"):
        if key not in extra:
            inherited = _first(chain[1:], key)
            if inherited is not None:
                extra[key] = inherited
    finish = finish or a.get("llm.finish_reason")
    invocation = _maybe_json(a.get("llm.invocation_parameters"))
    if isinstance(invocation, dict):
        extra["llm.invocation_parameters"] = invocation
    if span.name:
        extra["otel.span.name"] = span.name
    if span.resource:
        extra["otel.resource"] = span.resource
    if span.scope:
        extra["otel.scope.name"] = span.scope
    if span.status_message:
        extra["otel.status_message"] = span.status_message

    ts = _span_ts(span)
    ts_source = "record" if ts else ("day_folder" if day_ts else "ingest_time")
    ts = ts or day_ts or ingested_at
    latency = (span.end_ns - span.start_ns) / 1e6 if span.start_ns and span.end_ns else None
    return _checked(
        {
            "span_id": span.span_id,
            "trace_id": span.trace_id,
            "parent_span_id": span.parent_span_id,
            "ts": ts,
            "ts_source": ts_source,
            "workflow": workflow,
            "prompt_id": prompt_id if prompt_version else None,
            "prompt_version": prompt_version,
            "package_hash": _first(chain, "gen_ai.prompt.package_hash", "prompt.package_hash", "package_hash"),
            # OpenInference error spans carry the model only in the invocation parameters.
            "model": a.get("gen_ai.response.model")
            or a.get("gen_ai.request.model")
            or a.get("llm.model_name")
            or (invocation.get("model") if isinstance(invocation, dict) else None),
            "input_messages": _dumps(input_messages) if input_messages else None,
            "variables": _dumps(variables) if isinstance(variables, dict) else None,
            "output": output if output is None or isinstance(output, str) else _dumps(output),
            "tool_calls": _dumps(tool_calls) if tool_calls else None,
            "finish_reason": finish,
            "status": status,
            "error_type": None if error_type is None else str(error_type),
            "latency_ms": latency,
            "input_tokens": _int(
                a.get("gen_ai.usage.input_tokens", a.get("gen_ai.usage.prompt_tokens", a.get("llm.token_count.prompt")))
            ),
            "output_tokens": _int(
                a.get(
                    "gen_ai.usage.output_tokens",
                    a.get("gen_ai.usage.completion_tokens", a.get("llm.token_count.completion")),
                )
            ),
            "cost_usd": _float(a.get("llm.cost.total", a.get("gen_ai.usage.cost"))),
            "session_id": _str(_first(chain, "gen_ai.conversation.id", "session.id")),
            "user_id": _str(_first(chain, "user.id", "enduser.id")),
            "attributes": _dumps(extra) if extra else None,
            "source_format": fmt,
            "source_line": span.line,
            "record_key": span.span_id,
        },
        span,
    )


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


ROW_TYPES = {
    "span_id": pa.string(),
    "trace_id": pa.string(),
    "parent_span_id": pa.string(),
    "ts": pa.timestamp("us", tz="UTC"),
    "ts_source": pa.string(),
    "workflow": pa.string(),
    "prompt_id": pa.string(),
    "prompt_version": pa.string(),
    "package_hash": pa.string(),
    "model": pa.string(),
    "input_messages": pa.string(),
    "variables": pa.string(),
    "output": pa.string(),
    "tool_calls": pa.string(),
    "finish_reason": pa.string(),
    "status": pa.string(),
    "error_type": pa.string(),
    "latency_ms": pa.float64(),
    "input_tokens": pa.int64(),
    "output_tokens": pa.int64(),
    "cost_usd": pa.float64(),
    "session_id": pa.string(),
    "user_id": pa.string(),
    "attributes": pa.string(),
    "source_format": pa.string(),
    "source_line": pa.int64(),
    "record_key": pa.string(),
}

INSERT_SQL = """
INSERT OR IGNORE INTO traces
SELECT span_id, trace_id, parent_span_id, ts, CAST(timezone('UTC', ts) AS DATE), ts_source, workflow,
    prompt_id, prompt_version, package_hash, model, CAST(input_messages AS JSON), CAST(variables AS JSON),
    output, CAST(tool_calls AS JSON), finish_reason, status, error_type, latency_ms, input_tokens,
    output_tokens, cost_usd, session_id, user_id, NULL, NULL, NULL, NULL, NULL, NULL,
    CAST(attributes AS JSON), source_format, $source_file, source_line, record_key, $ingested_at
FROM _otlp_rows
"""


def _describe_line(raw: bytes) -> tuple[str, str | None]:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"line is not valid UTF-8 (byte {exc.start}: {exc.reason})", None
    try:
        json.loads(raw)
    except json.JSONDecodeError as exc:
        return f"invalid JSON: {exc.msg} at column {exc.colno}", None
    except RecursionError:
        return "invalid JSON: nested too deeply", None
    return "invalid JSON", None


def _whole_document(context) -> dict | None:
    """A pretty-printed `.json` file holding one export request, parsed; else None."""
    path = context.path
    if not (path.name.endswith(".json") or path.name.endswith(".json.gz")):
        return None
    for chunk in LineReader(path, chunk_bytes=64 * 1024):
        first = next((chunk.line(i).strip() for i in range(len(chunk)) if chunk.line(i).strip()), None)
        if first is not None:
            break
    else:
        return None
    if first != b"{":  # one request per line: the ordinary path
        return None
    reader = LineReader(path)
    parts, size = [], 0
    for chunk in reader:
        if chunk.oversize:
            return None  # read line by line: the too-long lines are rejected there
        for i in range(len(chunk)):
            parts.append(chunk.line(i))
            size += len(parts[-1]) + 1
        if size > reader.max_line_bytes:  # the document is one record: the same limit holds
            return None
    data = b"\n".join(parts)
    if reader.cut is not None:
        return None
    try:
        document = _loads(data)
    except _JSONError:
        return None
    return document if isinstance(document, dict) else None


def ingest_otlp(context) -> None:
    """Buffer every span of the file, then insert one row per LLM call."""
    summary = context.summary
    spans: list[Span] = []
    document = _whole_document(context)
    if document is not None:
        # one pretty-printed request: a single logical line, numbered 1
        summary.lines_read += 1
        if isinstance(document.get("resourceSpans", document.get("resource_spans")), list):
            _collect(document, 1, spans, context)
        else:
            summary.records += 1
            context.reject(
                1,
                "not an OTLP ExportTraceServiceRequest (no resourceSpans list)",
                "resourceSpans",
                _dumps(document).encode(),
            )
        _store(spans, context)
        return
    for chunk in context.lines():
        for i in range(len(chunk)):
            ln = chunk.first_line + i
            if chunk.oversize and i in chunk.oversize:
                summary.lines_read += 1
                summary.records += 1
                context.reject_too_long(ln, chunk, i, chunk.oversize[i])
                continue
            raw = chunk.line(i)
            if not raw.strip():
                summary.blank_lines += 1
                continue
            summary.lines_read += 1
            try:
                request = _loads(raw)
            except _JSONError:
                summary.records += 1
                reason, field = _describe_line(raw)
                context.reject(ln, reason, field, raw)
                continue
            if not isinstance(request, dict) or not isinstance(
                request.get("resourceSpans", request.get("resource_spans")), list
            ):
                summary.records += 1
                what = "an object" if isinstance(request, dict) else type(request).__name__
                context.reject(
                    ln,
                    f"not an OTLP ExportTraceServiceRequest ({what} without a resourceSpans list)",
                    "resourceSpans",
                    raw,
                )
                continue
            _collect(request, ln, spans, context)
        context.report(chunk.first_line + len(chunk) - 1)
    _store(spans, context)


def _store(spans: list[Span], context) -> None:
    summary = context.summary
    index = {(s.trace_id, s.span_id): s for s in spans}
    rows = []
    event_rows: list[dict] = []
    fallback_ts = context.day_ts or context.ingested_at
    for span in spans:
        try:
            fmt = span.call_format()
            _span_events(span, fmt is not None, fallback_ts, event_rows, context)
            if fmt is None:
                summary.non_call_spans += 1
                continue
            rows.append(call_row(span, fmt, index, context.day_ts, context.ingested_at))
        except BadSpan as exc:
            context.reject(span.line, exc.reason, exc.field, _span_raw(span))
        except _SPAN_ERRORS as exc:
            # an attribute of a shape no instrumentation should send: the span is
            # rejected, the rest of the file stored
            context.reject(
                span.line,
                f"span attributes could not be read as an LLM call ({type(exc).__name__}: {exc})",
                "attributes",
                _span_raw(span),
            )
    if event_rows:
        stored = events.store(context.con, event_rows, str(context.path), context.ingested_at)
        summary.events += stored
        summary.event_duplicates += len(event_rows) - stored
    if not rows:
        return
    table = pa.table({name: pa.array([r[name] for r in rows], kind) for name, kind in ROW_TYPES.items()})
    con = context.con
    con.register("_otlp_rows", table)
    try:
        inserted = con.execute(
            INSERT_SQL, {"source_file": str(context.path), "ingested_at": context.ingested_at}
        ).fetchall()[0][0]
    finally:
        try:
            con.unregister("_otlp_rows")
        except Exception:  # transaction aborted: the original error matters
            pass
    summary.stored += inserted
    summary.duplicates += len(rows) - inserted
    summary.prompt_version_missing += con.execute(
        "SELECT count(*) FROM traces WHERE source_file = ? AND ingested_at = ? AND prompt_version IS NULL",
        [str(context.path), context.ingested_at],
    ).fetchall()[0][0]


def _span_events(span: Span, is_call: bool, fallback_ts: datetime, out: list[dict], context) -> None:
    """Late-signal events the span carries (see traces.events); an unreadable one is a rejected record
    of its own, so the span itself is still stored."""
    try:
        out.extend(events.otlp_rows(span, is_call, fallback_ts))
    except events.BadEvent as exc:
        context.summary.records += 1
        context.reject(span.line, exc.reason, exc.field, _span_raw(span))
    except _SPAN_ERRORS as exc:
        context.summary.records += 1
        context.reject(
            span.line, f"span events could not be read ({type(exc).__name__}: {exc})", "events", _span_raw(span)
        )


# errors a hostile span's data can raise while it is read (never a reason to lose the file)
_SPAN_ERRORS = (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError, RecursionError)


def _span_raw(span: Span) -> bytes:
    try:
        return _dumps(
            {"traceId": span.trace_id, "spanId": span.span_id, "name": span.name, "attributes": span.attrs}
        ).encode()
    except _SPAN_ERRORS:
        return repr(span.attrs).encode()


def _collect(request: dict, ln: int, spans: list[Span], context) -> None:
    summary = context.summary
    for rs in request.get("resourceSpans", request.get("resource_spans")) or []:
        if not isinstance(rs, dict):
            continue
        resource = attributes(_as_dict(rs.get("resource")).get("attributes"))
        for ss in _as_list(rs.get("scopeSpans", rs.get("instrumentationLibrarySpans"))):
            if not isinstance(ss, dict):
                continue
            scope = _as_dict(ss.get("scope", ss.get("instrumentationLibrary"))).get("name")
            raw_spans = ss.get("spans")
            if raw_spans is not None and not isinstance(raw_spans, list):
                summary.records += 1
                context.reject(ln, "field 'spans' must be a list of spans", "spans", _raw_json(raw_spans))
                continue
            for raw_span in raw_spans or []:
                summary.records += 1
                problem = _span_problem(raw_span)
                if problem is None:
                    try:
                        spans.append(Span(raw_span, ln, resource, scope))
                        continue
                    except _SPAN_ERRORS as exc:
                        problem = f"span could not be read ({type(exc).__name__}: {exc})", "span"
                reason, field = problem
                context.reject(ln, reason, field, _raw_json(raw_span))


def _raw_json(value: Any) -> bytes:
    try:
        return json.dumps(value, default=str).encode()
    except _SPAN_ERRORS:
        return repr(value).encode()


def _span_problem(raw: Any) -> tuple[str, str] | None:
    if not isinstance(raw, dict):
        return "span is not an object", "spans"
    for key in ("traceId", "spanId"):
        value = raw.get(key)
        if not isinstance(value, str) or not value:
            return f"span field '{key}' is missing or not a string", key
    if not isinstance(raw.get("attributes", []), list):
        return "span field 'attributes' must be a list of {key, value}", "attributes"
    for key, kind, name in (
        ("parentSpanId", str, "a string"),
        ("name", str, "a string"),
        ("status", dict, "an object"),
        ("events", list, "a list of events"),
    ):
        value = raw.get(key)
        if value is not None and not isinstance(value, kind):
            return f"span field '{key}' must be {name}", key
    for key in ("startTimeUnixNano", "endTimeUnixNano"):
        value = raw.get(key)
        if value is not None and _ns(value) is None and value not in (0, "0", ""):
            return f"span field '{key}' must be an integer (nanoseconds, as a string)", key
    return None

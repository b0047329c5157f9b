"""Late signals -> `events` rows: feedback, escalation, correction and outcome that arrive after the call.

Users react after the answer (a thumbs-down, a hand-over to a human, a
corrected route, the ticket reopened), so these signals reach the warehouse
later than the call and from elsewhere. They are events about a call, stored
in their own table, one row per event, and joined to the call by the metric
definitions (`warehouse.metrics`: the newest event of each kind wins over what
the call logged). Three shapes are read:

- **Native event line** (JSONL, next to or apart from call lines): an object
  with `"event"` naming the kind, the call it is about, and its value::

      {"event": "feedback", "span_id": "s1", "value": "down"}
      {"event": "escalation", "trace_id": "t9", "timestamp": "2026-05-01T10:02:00Z"}
      {"event": "correction", "span_id": "s1", "value": {"route": "billing"}}
      {"event": "outcome", "span_id": "s1", "value": "abandoned"}

  `span_id` names the call; `trace_id` alone names every call of a trace (one
  of them is required). `value`: feedback 'up' / 'down' / a finite number (< 0
  is negative); escalation true (default) / false; correction the corrected
  answer (required); outcome 'success' / 'failure' (or resolved / abandoned
  ...) or a finite number. Optional: `timestamp` (RFC 3339), `event_id` (the
  producer's id: the same id is the same event), `source` (user, human, llm,
  code), `comment`; every other key is kept in `attributes`.
- **OTel GenAI** `gen_ai.evaluation.result`: a span event with that name
  (attributes `gen_ai.evaluation.name`, `.score.value`, `.score.label`,
  `gen_ai.evaluation.explanation`), or a span carrying those attributes
  (instrumentations that emit the event as a point-in-time span).
- **OpenInference** annotations / evaluations, flattened on a span:
  `annotations.<i>.annotation.{name,score,label,explanation,annotator_kind,identifier,metadata}`
  and `evaluations.<i>.evaluation.*` about a span; `trace.annotations.*` /
  `trace.evaluations.*` about its trace.

An OTLP event sits on the call span it is about, or on a span exported later
whose parent (or first link) is that call: the target is the host span when it
is an LLM call, else its link, else its parent. The evaluation or annotation
name gives the kind: feedback / user_feedback, escalation / escalated,
correction, outcome / user_outcome; any other name (a judge's `relevance`) is
kept as kind 'evaluation' and feeds no user-felt metric.

Dedup: `event_key` is a hash of (kind, target, producer id) when the producer
gave an id, else of the whole event, so the same event ingested twice (the
same line again, the same export request again) is one row.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

KINDS = ("feedback", "escalation", "correction", "outcome")
_NAME_KIND = {
    "feedback": "feedback",
    "user_feedback": "feedback",
    "user.feedback": "feedback",
    "thumbs": "feedback",
    "escalation": "escalation",
    "escalated": "escalation",
    "correction": "correction",
    "user_correction": "correction",
    "outcome": "outcome",
    "user_outcome": "outcome",
}
_UP = {"up", "thumbs_up", "thumbs-up", "positive", "good", "like", "👍"}
_DOWN = {"down", "thumbs_down", "thumbs-down", "negative", "bad", "dislike", "👎"}
_SUCCESS = {"success", "succeeded", "resolved", "solved", "completed", "converted", "positive"}
_FAILURE = {"failure", "failed", "unresolved", "abandoned", "reopened", "churned", "negative"}
_YES = {"true", "yes", "escalated", "1"}
_NO = {"false", "no", "not_escalated", "0"}
_NATIVE_KNOWN = {"event", "span_id", "trace_id", "value", "timestamp", "event_id", "source", "comment"}

ROW_TYPES = {
    "event_key": pa.string(),
    "event_id": pa.string(),
    "kind": pa.string(),
    "name": pa.string(),
    "span_id": pa.string(),
    "trace_id": pa.string(),
    "ts": pa.timestamp("us", tz="UTC"),
    "value": pa.float64(),
    "label": pa.string(),
    "correction": pa.string(),
    "explanation": pa.string(),
    "annotator": pa.string(),
    "attributes": pa.string(),
    "source_format": pa.string(),
    "source_line": pa.int64(),
}

INSERT_SQL = """
INSERT OR IGNORE INTO events
SELECT event_key, event_id, kind, name, span_id, trace_id, ts, CAST(timezone('UTC', ts) AS DATE), value, label,
    CAST(correction AS JSON), explanation, annotator, CAST(attributes AS JSON), source_format, $source_file,
    source_line, $ingested_at
FROM _event_rows
"""


class BadEvent(ValueError):
    def __init__(self, reason: str, field: str | None) -> None:
        super().__init__(reason)
        self.reason, self.field = reason, field


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def event_key(kind: str, span_id: str | None, trace_id: str | None, event_id: str | None, whole: Any) -> str:
    basis = [kind, span_id, trace_id, event_id] if event_id is not None else [kind, span_id, trace_id, whole]
    return hashlib.sha256(_dumps(basis).encode()).hexdigest()


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _ident(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError
    return str(value)


def _value(kind: str, value: Any, label: str | None, field: str) -> tuple[float | None, str | None, str | None]:
    """(value, label, correction JSON) of one event; BadEvent when the value does not fit the kind."""
    if kind == "feedback":
        word = (label if label is not None else value if isinstance(value, str) else None) or ""
        if word.lower() in _UP:
            return 1.0, word, None
        if word.lower() in _DOWN:
            return -1.0, word, None
        number = _finite(value)
        if number is None:
            raise BadEvent(f"field '{field}' of a feedback event must be 'up', 'down' or a finite number", field)
        return number, label, None
    if kind == "escalation":
        if value is None and label is None:
            return 1.0, None, None
        if isinstance(value, bool):
            return float(value), label, None
        word = str(label if label is not None else value).lower()
        if word in _YES:
            return 1.0, label, None
        if word in _NO:
            return 0.0, label, None
        number = _finite(value)
        if number is not None:
            return (1.0 if number > 0 else 0.0), label, None
        raise BadEvent(f"field '{field}' of an escalation event must be true or false", field)
    if kind == "correction":
        if value is None:
            raise BadEvent(f"a correction event needs the corrected answer in '{field}'", field)
        return None, label, _dumps(value)
    if kind == "outcome":
        word = (label if label is not None else value if isinstance(value, str) else None) or ""
        number = _finite(value)
        if number is not None:
            return number, label, None
        if word.lower() in _SUCCESS:
            return 1.0, word, None
        if word.lower() in _FAILURE:
            return -1.0, word, None
        if word:
            return None, word, None
        raise BadEvent(
            f"field '{field}' of an outcome event must be a label (success, failure, ...) or a number", field
        )
    return _finite(value), label, None


def _parse_ts(text: Any) -> datetime:
    if not isinstance(text, str):
        raise BadEvent("field 'timestamp' must be an RFC 3339 string", "timestamp")
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadEvent("field 'timestamp' is not an RFC 3339 date-time", "timestamp") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def native_row(record: dict, line: int, fallback_ts: datetime) -> dict:
    """One native event line (parsed) -> an events row; BadEvent names the field at fault."""
    kind = record.get("event")
    if kind not in KINDS:
        raise BadEvent(f"field 'event' must be one of {', '.join(KINDS)}", "event")
    try:
        span_id = _ident(record.get("span_id"))
    except TypeError:
        raise BadEvent("field 'span_id' must be a string", "span_id") from None
    try:
        trace_id = _ident(record.get("trace_id"))
    except TypeError:
        raise BadEvent("field 'trace_id' must be a string", "trace_id") from None
    if span_id is None and trace_id is None:
        raise BadEvent("an event line must name its call: 'span_id' (or 'trace_id' for a whole trace)", "span_id")
    for key in ("event_id", "source", "comment"):
        if record.get(key) is not None and not isinstance(record[key], str):
            raise BadEvent(f"field '{key}' must be a string", key)
    value, label, correction = _value(kind, record.get("value"), None, "value")
    ts = _parse_ts(record["timestamp"]) if record.get("timestamp") is not None else fallback_ts
    extra = {k: v for k, v in record.items() if k not in _NATIVE_KNOWN}
    return {
        "event_key": event_key(kind, span_id, trace_id, record.get("event_id"), record),
        "event_id": record.get("event_id"),
        "kind": kind,
        "name": kind,
        "span_id": span_id,
        "trace_id": trace_id,
        "ts": ts,
        "value": value,
        "label": label if label is not None else (record["value"] if isinstance(record.get("value"), str) else None),
        "correction": correction,
        "explanation": record.get("comment"),
        "annotator": record.get("source"),
        "attributes": _dumps(extra) if extra else None,
        "source_format": "native",
        "source_line": line,
    }


# ------------------------------------------------------------------ OTLP

_ANNOTATION = re.compile(r"^(trace\.)?(annotations|evaluations)\.(\d+)\.(annotation|evaluation)\.([a-z_]+)$")


def _kind_of(name: Any) -> str:
    return _NAME_KIND.get(str(name).strip().lower(), "evaluation")


def _otlp_row(
    *,
    name: Any,
    score: Any,
    label: Any,
    explanation: Any,
    annotator: Any,
    identifier: Any,
    metadata: Any,
    span_id: str | None,
    trace_id: str | None,
    ts: datetime,
    fmt: str,
    line: int,
    whole: Any,
) -> dict:
    kind = _kind_of(name)
    label_text = None if label is None else str(label)
    if kind == "correction":
        meta = metadata if isinstance(metadata, dict) else {}
        answer = meta.get("correction", explanation if explanation is not None else label)
        value, label_text, correction = _value(kind, answer, label_text, "explanation")
    else:
        value, label_text, correction = _value(kind, score, label_text, "score")
    extra = {"metadata": metadata} if metadata is not None else {}
    event_id = None if identifier is None else str(identifier)
    return {
        "event_key": event_key(kind, span_id, trace_id, event_id, whole),
        "event_id": event_id,
        "kind": kind,
        "name": None if name is None else str(name),
        "span_id": span_id,
        "trace_id": trace_id,
        "ts": ts,
        "value": value,
        "label": label_text,
        "correction": correction,
        "explanation": None if explanation is None else str(explanation),
        "annotator": None if annotator is None else str(annotator).lower(),
        "attributes": _dumps(extra) if extra else None,
        "source_format": fmt,
        "source_line": line,
    }


def _metadata(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def otlp_rows(span, is_call: bool, fallback_ts: datetime) -> Iterable[dict]:
    """The late-signal events a span carries (see module doc); BadEvent when one cannot be read."""
    if is_call:
        target = span.span_id
    else:
        links = getattr(span, "links", None) or []
        target = links[0] if links else span.parent_span_id
    span_ts = datetime.fromtimestamp(span.end_ns / 1e9, UTC) if span.end_ns else fallback_ts
    for name, attrs, _body, time_ns in span.event_items():
        if name != "gen_ai.evaluation.result" or target is None:
            continue
        ts = datetime.fromtimestamp(time_ns / 1e9, UTC) if time_ns else span_ts
        yield _genai(attrs, target, span.trace_id, ts, span.line, [span.span_id, name, attrs, time_ns])
    a = span.attrs
    if not is_call and "gen_ai.evaluation.name" in a and target is not None:
        yield _genai(a, target, span.trace_id, span_ts, span.line, [span.span_id, a])
    groups: dict[tuple[bool, str, str], dict[str, Any]] = {}
    for key, value in a.items():
        match = _ANNOTATION.match(key)
        if match:
            groups.setdefault((bool(match.group(1)), match.group(2), match.group(3)), {})[match.group(5)] = value
    for (whole_trace, _, _), fields in sorted(groups.items()):
        about = None if whole_trace else target
        if about is None and not whole_trace:
            continue
        if "name" not in fields:
            raise BadEvent("an OpenInference annotation needs a 'name'", "annotations")
        yield _otlp_row(
            **{arg: fields.get(key) for arg, key in _OPENINFERENCE_FIELDS.items()},
            metadata=_metadata(fields.get("metadata")),
            span_id=about,
            trace_id=span.trace_id,
            ts=span_ts,
            fmt="openinference",
            line=span.line,
            whole=[span.span_id, whole_trace, fields],
        )


# _otlp_row argument -> attribute, per convention
_OPENINFERENCE_FIELDS = {
    "name": "name",
    "score": "score",
    "label": "label",
    "explanation": "explanation",
    "annotator": "annotator_kind",
    "identifier": "identifier",
}
_GENAI_FIELDS = {
    "name": "gen_ai.evaluation.name",
    "score": "gen_ai.evaluation.score.value",
    "label": "gen_ai.evaluation.score.label",
    "explanation": "gen_ai.evaluation.explanation",
    "annotator": "gen_ai.evaluation.annotator",
    "identifier": "gen_ai.evaluation.id",
}


def _genai(attrs: dict, target: str, trace_id: str | None, ts: datetime, line: int, whole: Any) -> dict:
    if attrs.get("gen_ai.evaluation.name") is None:
        raise BadEvent("a gen_ai.evaluation.result needs gen_ai.evaluation.name", "gen_ai.evaluation.name")
    return _otlp_row(
        **{arg: attrs.get(key) for arg, key in _GENAI_FIELDS.items()},
        metadata=None,
        span_id=target,
        trace_id=trace_id,
        ts=ts,
        fmt="otlp_genai",
        line=line,
        whole=whole,
    )


# ------------------------------------------------------------------ storing


def store(con, rows: list[dict], source_file: str, ingested_at: datetime) -> int:
    """INSERT OR IGNORE the rows into `events`; return how many were new (the rest are duplicates)."""
    rows = list({r["event_key"]: r for r in rows}.values())  # the same event twice in one file
    if not rows:
        return 0
    table = pa.table({name: pa.array([r[name] for r in rows], kind) for name, kind in ROW_TYPES.items()})
    con.register("_event_rows", table)
    try:
        return con.execute(INSERT_SQL, {"source_file": source_file, "ingested_at": ingested_at}).fetchall()[0][0]
    finally:
        try:
            con.unregister("_event_rows")
        except Exception:  # transaction aborted: the original error matters
            pass


UNKNOWN_CALL_SQL = """
SELECT count(*) FROM events e
WHERE e.source_file = $source_file AND e.ingested_at = $ingested_at
  AND CASE WHEN e.span_id IS NOT NULL
           THEN NOT EXISTS (SELECT 1 FROM traces t WHERE t.span_id = e.span_id)
           ELSE NOT EXISTS (SELECT 1 FROM traces t WHERE t.trace_id = e.trace_id) END
"""


def count_unknown_calls(con, source_file: str, ingested_at: datetime) -> int:
    """Events stored from this file (this ingest) whose call is not in `traces`."""
    return con.execute(UNKNOWN_CALL_SQL, {"source_file": source_file, "ingested_at": ingested_at}).fetchall()[0][0]

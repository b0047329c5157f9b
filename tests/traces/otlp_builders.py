"""Hand-written OTLP/JSON builders for small test fixtures."""

from __future__ import annotations

import json
from typing import Any


def value(v: Any) -> dict:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, list):
        return {"arrayValue": {"values": [value(x) for x in v]}}
    if isinstance(v, dict):
        return {"kvlistValue": {"values": [{"key": k, "value": value(x)} for k, x in v.items()]}}
    return {"stringValue": str(v)}


def span(
    trace: str,
    span_id: str,
    name: str,
    attrs: dict,
    parent: str | None = None,
    status_code: int = 0,
    events: list | None = None,
    start: int = 1764320000_000_000_000,
    duration_ms: int = 250,
) -> dict:
    out = {
        "traceId": trace,
        "spanId": span_id,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + duration_ms * 1_000_000),
        "attributes": [{"key": k, "value": value(v)} for k, v in attrs.items()],
        "status": {"code": status_code} if status_code else {},
    }
    if parent:
        out["parentSpanId"] = parent
    if events:
        out["events"] = [
            {"timeUnixNano": str(start), "name": n, "attributes": [{"key": k, "value": value(v)} for k, v in a.items()]}
            for n, a in events
        ]
    return out


def request(*spans: dict) -> str:
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
                    "scopeSpans": [{"scope": {"name": "test"}, "spans": list(spans)}],
                }
            ]
        }
    )

"""Native trace lines for small test fixtures: one minimal acceptable call line per index."""

from __future__ import annotations

import json


def native_record(i: int, **extra) -> dict:
    """A minimal call record that ingest stores (span `sp_<i>`), with `extra` fields set over it."""
    return {
        "trace_id": f"tr_{i}",
        "span_id": f"sp_{i}",
        "workflow": "support_router",
        "prompt_version": "support_router:v1.5.2",
        "model": "m",
        "timestamp": "2026-11-27T10:00:00Z",
        **extra,
    }


def good(i: int, **extra) -> str:
    """`native_record` as one JSONL line."""
    return json.dumps(native_record(i, **extra))

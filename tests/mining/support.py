"""Hand-made packages and traces rows for mining and golden tests (no registry, no ingest)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb

from prompt_release.contracts.package import StaticContract, ToolSpecLike

# The traces table per the brief's column list (owned by migration 0002 on main).
TRACES_DDL = """
CREATE TABLE IF NOT EXISTS traces (
    span_id VARCHAR, trace_id VARCHAR, parent_span_id VARCHAR, ts TIMESTAMPTZ,
    day DATE, ts_source VARCHAR, workflow VARCHAR, prompt_id VARCHAR,
    prompt_version VARCHAR, package_hash VARCHAR, model VARCHAR,
    input_messages JSON, variables JSON, output VARCHAR, tool_calls JSON,
    finish_reason VARCHAR, status VARCHAR, error_type VARCHAR, latency_ms DOUBLE,
    input_tokens BIGINT, output_tokens BIGINT, cost_usd DOUBLE, session_id VARCHAR,
    user_id VARCHAR, segment JSON, feedback DOUBLE, escalated BOOLEAN,
    correction JSON, retries INTEGER, fallback BOOLEAN, attributes JSON,
    source_format VARCHAR, source_file VARCHAR, source_line BIGINT,
    record_key VARCHAR, ingested_at TIMESTAMPTZ
)
"""

ROUTES = ["account_recovery", "billing", "technical", "shipping", "general"]
ROUTE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["route", "confidence"],
    "additionalProperties": False,
    "properties": {
        "route": {"type": "string", "enum": ROUTES},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
}
ORDER_ID = {"type": "string", "pattern": "^ORD-[0-9]{6}$"}

ROUTER = StaticContract(
    version_id="support_router:v1.5.2",
    package_hash="sha256:router152",
    output_format="json",
    output_schema=ROUTE_SCHEMA,
)
ORDER = StaticContract(
    version_id="order_agent:v2.0.0",
    package_hash="sha256:order200",
    output_format="text",
    tools=(
        ToolSpecLike(
            "lookup_order",
            {"type": "object", "required": ["order_id"], "properties": {"order_id": ORDER_ID}},
            "low",
        ),
        ToolSpecLike(
            "issue_refund",
            {
                "type": "object",
                "required": ["order_id", "amount_usd", "reason"],
                "properties": {
                    "order_id": ORDER_ID,
                    "amount_usd": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000},
                    "reason": {"enum": ["damaged", "late", "not_received", "other"]},
                },
            },
            "high",
        ),
    ),
    tool_policy={"issue_refund": {"requires_prior": ["lookup_order"], "max": {"amount_usd": 200}}},
)
SUMMARIZER = StaticContract(version_id="summarizer:v1.0.0", package_hash="sha256:summ100")
CONTRACTS = [ROUTER, ORDER, SUMMARIZER]
DAY = date(2026, 10, 2)


def create_traces(path: Path) -> None:
    con = duckdb.connect(str(path))
    try:
        con.execute(TRACES_DDL)
    finally:
        con.close()


_COUNTER = [0]


def row(workflow: str = "support_router", **overrides: Any) -> dict[str, Any]:
    """One plausible, healthy traces row; override any column."""
    _COUNTER[0] += 1
    n = _COUNTER[0]
    contract = {"support_router": ROUTER, "order_agent": ORDER, "summarizer": SUMMARIZER}[workflow]
    user = overrides.pop("user", f"ticket number {n}: my package is late")
    base: dict[str, Any] = {
        "span_id": f"span{n:05d}",
        "trace_id": f"trace{n:05d}",
        "ts": datetime(DAY.year, DAY.month, DAY.day, 12, tzinfo=UTC),
        "day": DAY,
        "workflow": workflow,
        "prompt_id": workflow,
        "prompt_version": contract.version_id,
        "package_hash": contract.package_hash,
        "model": "sim-1",
        "input_messages": [{"role": "system", "content": "You route tickets."}, {"role": "user", "content": user}],
        "variables": {"ticket": user, "customer_tier": "gold"},
        "output": json.dumps({"route": "shipping", "confidence": 0.9}) if workflow == "support_router" else "Done.",
        "tool_calls": None,
        "status": "ok",
        "latency_ms": 100.0,
        "cost_usd": 0.001,
        "segment": {"tier": "gold"},
        "feedback": None,
        "escalated": False,
        "correction": None,
        "retries": 0,
        "fallback": False,
        "attributes": {},
        "record_key": f"span{n:05d}",
    }
    base.update(overrides)
    return base


_JSON_COLS = {"input_messages", "variables", "tool_calls", "segment", "correction", "attributes"}


def insert(path: Path, rows: list[dict[str, Any]]) -> None:
    create_traces(path)
    con = duckdb.connect(str(path))
    try:
        for r in rows:
            cols = list(r)
            values = [json.dumps(r[c]) if c in _JSON_COLS and r[c] is not None else r[c] for c in cols]
            con.execute(f"INSERT INTO traces ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})", values)
    finally:
        con.close()

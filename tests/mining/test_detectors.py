"""Each detector on hand-made traces rows: what fires, what does not, and idempotence."""

from __future__ import annotations

import json
from datetime import date

import duckdb
import pytest

from prompt_release.mining.detectors import mine_failures
from prompt_release.mining.settings import MiningSettings, OutlierRule, WorkflowPatterns
from tests.mining.support import CONTRACTS, DAY, insert, row

LOOKUP = {"name": "lookup_order", "arguments": {"order_id": "ORD-123456"}}
REFUND = {"name": "issue_refund", "arguments": {"order_id": "ORD-123456", "amount_usd": 50, "reason": "late"}}


def _failures(path) -> dict[str, set[str]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute("SELECT span_id, failure_class FROM failures").fetchall()
    finally:
        con.close()
    out: dict[str, set[str]] = {}
    for span, cls in rows:
        out.setdefault(span, set()).add(cls)
    return out


@pytest.fixture(scope="module")
def mined(tmp_path_factory):
    warehouse = tmp_path_factory.mktemp("mined") / "warehouse.duckdb"
    rows = {
        "healthy": row(),
        "prose": row(output="This ticket should go to billing."),
        "enum": row(output=json.dumps({"route": "refunds", "confidence": 0.9})),
        "range": row(output=json.dumps({"route": "billing", "confidence": 7})),
        "error": row(status="error", error_type="timeout", output=None),
        "retry": row(retries=2),
        "fallback": row(fallback=True),
        "feedback": row(feedback=-1.0),
        "happy_feedback": row(feedback=1.0),
        "escalated": row(escalated=True),
        "corrected": row(correction={"route": "billing"}),
        "same_correction": row(correction={"route": "shipping", "confidence": 0.90}),
        "refusal": row("order_agent", output="I can't help with that."),
        "clarify": row("order_agent", output="Could you clarify which order you mean?"),
        "unknown_tool": row("order_agent", output="", tool_calls=[{"name": "delete_account", "arguments": {}}]),
        "bad_args": row(
            "order_agent", output="", tool_calls=[{"name": "lookup_order", "arguments": {"order_id": "12"}}]
        ),
        "unsafe": row("order_agent", output="", tool_calls=[REFUND]),
        "safe": row("order_agent", output="", tool_calls=[LOOKUP, REFUND]),
        "safe_prior": row(
            "order_agent",
            output="",
            tool_calls=[REFUND],
            input_messages=[{"role": "user", "content": "refund"}, {"role": "assistant", "tool_calls": [LOOKUP]}],
        ),
        # What real models write instead of tool_calls: the user saw JSON, nothing ran.
        "text_refund": row("order_agent", output=f"```json\n{json.dumps(REFUND)}\n```"),
        "tagged_refund_after_lookup": row(
            "order_agent",
            output=f"<tool_call>{json.dumps(REFUND)}</tool_call>",
            input_messages=[{"role": "user", "content": "refund"}, {"role": "assistant", "tool_calls": [LOOKUP]}],
        ),
        "names_a_tool_in_prose": row("order_agent", output="I will issue_refund once the lookup_order is done."),
        "fenced_route": row(output=f"```json\n{json.dumps({'route': 'billing', 'confidence': 0.9})}\n```"),
        "text_correction": row("summarizer", output="A  long summary.", correction="A short summary."),
        "text_same": row("summarizer", output="A  short summary. ", correction="A short summary."),
        "slow": row("summarizer", latency_ms=5000.0),
        "expensive": row("summarizer", cost_usd=0.5),
        "unknown_version": row(prompt_version="support_router:v9.9.9", package_hash="sha256:nope", output="prose"),
    }
    # Enough ordinary summarizer calls that the day's median is the ordinary value.
    filler = [row("summarizer") for _ in range(5)]
    insert(warehouse, list(rows.values()) + filler)
    summary = mine_failures(warehouse, None, DAY, contracts=CONTRACTS)
    return {name: _failures(warehouse).get(r["span_id"], set()) for name, r in rows.items()}, summary


@pytest.mark.parametrize(
    "name, expected",
    [
        ("healthy", set()),
        ("prose", {"invalid_json"}),
        ("enum", {"enum_violation"}),
        ("range", {"schema_violation"}),
        ("error", {"error"}),
        ("retry", {"retry"}),
        ("fallback", {"fallback"}),
        ("feedback", {"negative_feedback"}),
        ("happy_feedback", set()),
        ("escalated", {"escalation"}),
        ("corrected", {"correction"}),
        ("same_correction", set()),
        ("refusal", {"refusal"}),
        ("clarify", {"clarification"}),
        ("unknown_tool", {"unknown_tool"}),
        ("bad_args", {"tool_args_invalid"}),
        ("unsafe", {"unsafe_tool_call"}),
        ("safe", set()),
        ("safe_prior", set()),
        ("text_refund", {"text_tool_call", "unsafe_tool_call"}),
        ("tagged_refund_after_lookup", {"text_tool_call"}),
        ("names_a_tool_in_prose", set()),
        ("fenced_route", {"invalid_json", "fenced_json"}),
        ("text_correction", {"correction"}),
        ("text_same", set()),
        ("slow", {"latency_outlier"}),
        ("expensive", {"cost_outlier"}),
        ("unknown_version", set()),
    ],
)
def test_detector_fires_exactly_on_its_failure(mined, name, expected):
    found, _ = mined
    assert found[name] == expected


def test_summary_counts_calls_without_contract(mined):
    _, summary = mined
    assert summary.calls_without_contract == 1
    # One made through tool_calls, one written as text.
    assert summary.failures_by_class["unsafe_tool_call"] == 2 and summary.failures_by_class["text_tool_call"] == 2


def test_failure_rows_carry_path_severity_and_detail(warehouse):
    insert(warehouse, [row(output=json.dumps({"route": "refunds", "confidence": 0.9}))])
    mine_failures(warehouse, None, DAY, contracts=CONTRACTS)
    con = duckdb.connect(str(warehouse), read_only=True)
    failure_class, severity, detail = con.execute("SELECT failure_class, severity, detail FROM failures").fetchone()
    con.close()
    assert (failure_class, severity) == ("enum_violation", "high")
    assert "$.route" in detail


def test_mining_a_day_twice_replaces_not_duplicates(warehouse):
    other_day = date(2026, 10, 3)
    insert(warehouse, [row(retries=1), row(retries=1, day=other_day)])
    mine_failures(warehouse, None, DAY, contracts=CONTRACTS)
    mine_failures(warehouse, None, DAY, contracts=CONTRACTS)
    mine_failures(warehouse, None, other_day, contracts=CONTRACTS)
    con = duckdb.connect(str(warehouse), read_only=True)
    counts = con.execute("SELECT day, count(*) FROM failures GROUP BY day ORDER BY day").fetchall()
    con.close()
    assert counts == [(DAY, 1), (other_day, 1)]


def test_outlier_rules_are_configurable(warehouse):
    insert(warehouse, [row("summarizer", latency_ms=v) for v in (100, 110, 120, 400, 90)])
    by_median = mine_failures(warehouse, None, DAY, contracts=CONTRACTS)
    assert "latency_outlier" not in by_median.failures_by_class  # 400 < 10 x 110
    settings = MiningSettings(latency=OutlierRule(rule="median_multiple", k=3))
    assert (
        mine_failures(warehouse, None, DAY, contracts=CONTRACTS, settings=settings).failures_by_class["latency_outlier"]
        == 1
    )
    settings = MiningSettings(latency=OutlierRule(rule="absolute", absolute=115))
    assert (
        mine_failures(warehouse, None, DAY, contracts=CONTRACTS, settings=settings).failures_by_class["latency_outlier"]
        == 2
    )


def test_refusal_patterns_per_workflow(warehouse):
    insert(
        warehouse,
        [row("summarizer", output="Nope, not summarising that."), row("order_agent", output="Nope, not today.")],
    )
    settings = MiningSettings(workflows={"summarizer": WorkflowPatterns(refusal_patterns=(r"(?i)^nope",))})
    summary = mine_failures(warehouse, None, DAY, contracts=CONTRACTS, settings=settings)
    assert summary.failures_by_class == {"refusal": 1}

"""`version_metrics`: daily metrics per prompt version, the table behind per-version dashboards.

One SQL statement over that day's `traces` joined with its `failures`
replaces the day's rows: calls and traces, success rate, hard failures
(status error or a contract class: invalid_json, schema_violation,
enum_violation, unknown_tool, tool_args_invalid, unsafe_tool_call), unsafe
tool calls, error, escalation and negative feedback rates, p50/p95/p99 call
latency, cost and cost per successful call, tokens, retries, fallbacks, and
steps and tool calls per trace (an agent that reaches the same answer through
more tool calls shows up here). Run it after the day's failures are mined.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from prompt_release.errors import UserError
from prompt_release.release.canary import HARD_FAILURE_CLASSES
from prompt_release.warehouse import write_transaction

_HARD = ", ".join(f"'{c}'" for c in HARD_FAILURE_CLASSES)

_INSERT = f"""
INSERT INTO version_metrics
WITH flags AS (
    SELECT record_key, bool_or(failure_class IN ({_HARD})) AS hard,
           bool_or(failure_class = 'unsafe_tool_call') AS unsafe
    FROM failures WHERE day = $day GROUP BY record_key
),
calls AS (
    SELECT t.prompt_id, t.prompt_version, t.package_hash, coalesce(t.trace_id, t.record_key) AS unit,
           coalesce(t.status, 'ok') = 'error' AS errored,
           coalesce(t.status, 'ok') = 'error' OR coalesce(f.hard, FALSE) AS hard,
           coalesce(f.unsafe, FALSE) AS unsafe, coalesce(t.escalated, FALSE) AS escalated,
           coalesce(t.feedback, 0) < 0 AS negative, t.latency_ms, t.cost_usd, t.input_tokens, t.output_tokens,
           coalesce(t.retries, 0) AS retries, coalesce(t.fallback, FALSE) AS fallback,
           coalesce(json_array_length(t.tool_calls), 0) AS tool_calls
    FROM traces t LEFT JOIN flags f ON f.record_key = t.record_key
    WHERE t.day = $day AND t.prompt_version IS NOT NULL
)
SELECT $day AS day, any_value(prompt_id), prompt_version, mode(package_hash),
       count(*) AS calls, count(DISTINCT unit) AS traces,
       avg(CASE WHEN NOT hard AND NOT escalated AND NOT negative THEN 1.0 ELSE 0.0 END) AS success_rate,
       count(*) FILTER (WHERE hard) AS hard_failures, avg(hard::INTEGER) AS hard_failure_rate,
       count(*) FILTER (WHERE unsafe) AS unsafe_tool_calls, avg(errored::INTEGER) AS error_rate,
       avg(escalated::INTEGER) AS escalation_rate, avg(negative::INTEGER) AS negative_feedback_rate,
       quantile_cont(latency_ms, 0.5), quantile_cont(latency_ms, 0.95), quantile_cont(latency_ms, 0.99),
       sum(cost_usd) AS cost_usd,
       sum(cost_usd) / nullif(count(*) FILTER (WHERE NOT hard AND NOT escalated AND NOT negative), 0),
       sum(input_tokens)::BIGINT, sum(output_tokens)::BIGINT, sum(retries)::BIGINT,
       count(*) FILTER (WHERE fallback) AS fallbacks, avg(fallback::INTEGER) AS fallback_rate,
       sum(tool_calls)::BIGINT AS tool_calls,
       count(*)::DOUBLE / count(DISTINCT unit) AS steps_per_trace,
       sum(tool_calls)::DOUBLE / count(DISTINCT unit) AS tool_calls_per_trace,
       current_timestamp AS computed_at
FROM calls GROUP BY prompt_version
"""


def compute_version_metrics(warehouse: str | Path | None, day: date | str) -> int:
    """Replace `version_metrics` rows of `day`; returns the number of versions written."""
    if isinstance(day, str):
        try:
            day = date.fromisoformat(day)
        except ValueError:
            raise UserError(f"not a date (YYYY-MM-DD): {day!r}", field="day") from None
    with write_transaction(warehouse) as con:
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'traces'"
        ).fetchone()[0]
        if not exists:
            raise UserError("the warehouse has no traces table yet: ingest traces first")
        con.execute("DELETE FROM version_metrics WHERE day = ?", [day])
        con.execute(_INSERT, {"day": day})
        return con.execute("SELECT count(*) FROM version_metrics WHERE day = ?", [day]).fetchone()[0]

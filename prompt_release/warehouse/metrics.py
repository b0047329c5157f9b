"""The metric definitions: hard failure, success, cost per success, and the daily version metrics.

One home for each, as SQL text over the warehouse's tables, used by every
reader alike: the `version_metrics` table (`release.metrics`), the analyst view
`v_version_daily` (created here from the same query, never a copy), the
canary (`release.canary`, per trace) and the gate (`gates.evaluate`, over
backtest results).

- **Hard failure** (per call): status error, or a failure of one of
  HARD_FAILURE_CLASSES. In production the classes come from the `failures`
  table (the mining detectors); in a backtest from the same checks' verdicts
  on each result (BACKTEST_HARD_CHECKS).
- **Success**: no hard failure, no escalation to a human, no negative feedback.
- **Late signals**: feedback, escalation and correction of a call are the
  newest `events` row of that kind about the call (by span_id), else about its
  trace (an event naming only a trace_id applies to every call of it), else
  the value logged on the call itself (SIGNAL_JOINS, FEEDBACK, ESCALATED,
  CORRECTION). The same event twice is one row of `events`, so it counts once.
- **Cost per success**: total cost / successes (NULL when nothing succeeded).
- **Served**: every figure above is over served calls only; shadow runs are compared separately
  (`gates.shadow`).

A change here changes a view: it ships with a new migration file carrying
the RECREATE_VIEWS marker (see `migrate.py`), so warehouses already migrated
get the new definition too.
"""

from __future__ import annotations

import duckdb

HARD_FAILURE_CLASSES = (
    "invalid_json",
    "schema_violation",
    "enum_violation",
    "unknown_tool",
    "tool_args_invalid",
    "unsafe_tool_call",
)

# The verdict of `contracts.checks` on a backtest result that is each class.
BACKTEST_HARD_CHECKS = {
    "invalid_json": "json_valid = FALSE",
    "schema_violation": "schema_valid = FALSE",
    "enum_violation": "schema_valid = FALSE",
    "unknown_tool": "tool_calls_valid = FALSE",
    "tool_args_invalid": "tool_calls_valid = FALSE",
    "unsafe_tool_call": "unsafe_tool_call",
}
assert set(BACKTEST_HARD_CHECKS) == set(HARD_FAILURE_CLASSES)

HARD_CLASS_LIST = ", ".join(f"'{c}'" for c in HARD_FAILURE_CLASSES)


def hard_failure(status: str, hard_class: str) -> str:
    """A call is a hard failure: `status` is 'error' or `hard_class` (a failure of a hard class) holds."""
    return f"(coalesce({status}, 'ok') = 'error' OR coalesce({hard_class}, FALSE))"


BACKTEST_HARD_FAILURE = hard_failure("status", "(" + " OR ".join(dict.fromkeys(BACKTEST_HARD_CHECKS.values())) + ")")
"""Hard failure of one row of `backtest_results`."""

SUCCESS = "(NOT hard AND NOT escalated AND NOT negative)"
"""Success, over columns `hard`, `escalated`, `negative` (see CALL_COLUMNS)."""


def served(alias: str = "t") -> str:
    """The trace was served: a shadow run (`runtime.shadow`, marked `shadow` in its attributes) was never
    served to anyone, so it counts in no served-traffic metric (version metrics, canary, history)."""
    return f"json_extract({alias}.attributes, '$.shadow') IS NULL"


def cost_per_success(cost: str = "cost_usd") -> str:
    return f"sum({cost}) / nullif(count(*) FILTER (WHERE {SUCCESS}), 0)"


def _latest_signals(key: str, where: str) -> str:
    # newest first by the event's time; event_key breaks ties so the answer never depends on scan order
    order = "(ts, event_key)"
    return f"""(SELECT {key},
        arg_max(value, {order}) FILTER (WHERE kind = 'feedback' AND value IS NOT NULL) AS feedback,
        arg_max(coalesce(value, 1) > 0, {order}) FILTER (WHERE kind = 'escalation') AS escalated,
        arg_max(correction, {order}) FILTER (WHERE kind = 'correction' AND correction IS NOT NULL) AS correction,
        arg_max(value, {order}) FILTER (WHERE kind = 'outcome' AND value IS NOT NULL) AS outcome
    FROM events WHERE {where} GROUP BY {key})"""


SIGNAL_JOINS = (
    f"LEFT JOIN {_latest_signals('span_id', 'span_id IS NOT NULL')} es ON es.span_id = t.span_id "
    f"LEFT JOIN {_latest_signals('trace_id', 'span_id IS NULL AND trace_id IS NOT NULL')} et "
    "ON et.trace_id = t.trace_id"
)
"""Joins of `traces t` with the newest late signals about each call (es) and its trace (et)."""
FEEDBACK = "coalesce(es.feedback, et.feedback, t.feedback)"
ESCALATED = "coalesce(es.escalated, et.escalated, t.escalated)"
CORRECTION = "coalesce(es.correction, et.correction, t.correction)"
OUTCOME = "coalesce(es.outcome, et.outcome)"

TRACES_WITH_SIGNALS = (
    f"(SELECT t.* REPLACE ({FEEDBACK} AS feedback, {ESCALATED} AS escalated, {CORRECTION} AS correction) "
    f"FROM traces t {SIGNAL_JOINS})"
)
"""`traces` with feedback, escalated and correction as the late signals left them (same columns)."""

# Per call of `traces t` (joined with SIGNAL_JOINS) and its failure flags `f(hard, unsafe)`.
CALL_COLUMNS = f"""t.prompt_id, t.prompt_version, t.package_hash, coalesce(t.trace_id, t.record_key) AS unit,
       coalesce(t.span_id, t.record_key) AS span_id, t.ts, t.day,
       coalesce(t.status, 'ok') = 'error' AS errored,
       {hard_failure("t.status", "f.hard")} AS hard,
       coalesce(f.unsafe, FALSE) AS unsafe, coalesce({ESCALATED}, FALSE) AS escalated,
       coalesce({FEEDBACK}, 0) < 0 AS negative,
       coalesce(json_type({CORRECTION}) <> 'NULL', FALSE) AS corrected,
       coalesce({OUTCOME}, 0) < 0 AS failed_outcome,
       t.latency_ms, t.cost_usd, t.input_tokens, t.output_tokens,
       coalesce(t.retries, 0) AS retries, coalesce(t.fallback, FALSE) AS fallback,
       coalesce(json_array_length(t.tool_calls), 0) AS tool_calls"""

FAILURE_FLAGS = f"""bool_or(failure_class IN ({HARD_CLASS_LIST})) AS hard,
           bool_or(failure_class = 'unsafe_tool_call') AS unsafe"""
"""Per call (group by record_key) of `failures`: the flags CALL_COLUMNS reads."""


def version_daily_sql(*, one_day: bool) -> str:
    """Daily metrics per prompt version from traces + failures; `one_day` restricts to `$day`."""
    failures_where = "WHERE day = $day " if one_day else ""
    traces_where = "AND t.day = $day" if one_day else ""
    return f"""WITH flags AS (
    SELECT record_key, day, {FAILURE_FLAGS}
    FROM failures {failures_where}GROUP BY record_key, day
),
calls AS (
    SELECT {CALL_COLUMNS}
    FROM traces t LEFT JOIN flags f ON f.record_key = t.record_key AND f.day = t.day {SIGNAL_JOINS}
    WHERE t.prompt_version IS NOT NULL AND t.day IS NOT NULL AND {served()} {traces_where}
)
SELECT day,
       any_value(prompt_id) AS prompt_id,
       prompt_version,
       mode(package_hash) AS package_hash,
       count(*) AS calls,
       count(DISTINCT unit) AS traces,
       count(*) FILTER (WHERE {SUCCESS}) AS successes,
       avg(CASE WHEN {SUCCESS} THEN 1.0 ELSE 0.0 END) AS success_rate,
       count(*) FILTER (WHERE hard) AS hard_failures,
       avg(hard::INTEGER) AS hard_failure_rate,
       count(*) FILTER (WHERE unsafe) AS unsafe_tool_calls,
       count(*) FILTER (WHERE errored) AS errors,
       avg(errored::INTEGER) AS error_rate,
       count(*) FILTER (WHERE escalated) AS escalations,
       avg(escalated::INTEGER) AS escalation_rate,
       count(*) FILTER (WHERE negative) AS negative_feedback,
       avg(negative::INTEGER) AS negative_feedback_rate,
       count(*) FILTER (WHERE corrected) AS corrections,
       avg(corrected::INTEGER) AS correction_rate,
       quantile_cont(latency_ms, 0.5) AS p50_latency_ms,
       quantile_cont(latency_ms, 0.95) AS p95_latency_ms,
       quantile_cont(latency_ms, 0.99) AS p99_latency_ms,
       sum(cost_usd) AS cost_usd,
       {cost_per_success()} AS cost_per_success_usd,
       sum(input_tokens)::BIGINT AS input_tokens,
       sum(output_tokens)::BIGINT AS output_tokens,
       sum(retries)::BIGINT AS retries,
       count(*) FILTER (WHERE fallback) AS fallbacks,
       avg(fallback::INTEGER) AS fallback_rate,
       sum(tool_calls)::BIGINT AS tool_calls,
       count(*)::DOUBLE / count(DISTINCT unit) AS steps_per_trace,
       sum(tool_calls)::DOUBLE / count(DISTINCT unit) AS tool_calls_per_trace
FROM calls
GROUP BY day, prompt_version"""


_VERSION_DAILY_COMMENTS = {
    None: "Daily quality, latency and cost per prompt version, computed from traces + failures with the "
    "definitions of the version_metrics table (prompt_release/warehouse/metrics.py).",
    "day": "UTC day of the calls (traces.day)",
    "prompt_version": "Prompt version id <prompt_id>:v<semver>; calls without a known version are left out",
    "package_hash": "Most frequent package hash logged for the version that day",
    "calls": "LLM calls (rows of traces) served by the version that day",
    "traces": "Distinct trace ids (requests / conversation turns) among those calls",
    "successes": "Calls with status ok, no hard failure, no escalation and no negative feedback",
    "success_rate": "successes / calls",
    "hard_failures": "Calls with status error or a failure of class " + ", ".join(HARD_FAILURE_CLASSES),
    "unsafe_tool_calls": "Calls with an unsafe_tool_call failure (policy-violating or invalid high-risk tool call)",
    "errors": "Calls with status error",
    "escalations": "Calls handed to a human: the newest escalation event about the call or its trace, else "
    "escalated as logged",
    "negative_feedback": "Calls with feedback < 0 (the newest feedback event about the call or its trace, else "
    "the feedback logged on the call)",
    "corrections": "Calls with a correction (a correction event, else one logged on the call)",
    "correction_rate": "corrections / calls",
    "p95_latency_ms": "95th percentile of call latency_ms (continuous quantile); p50 and p99 alike",
    "cost_per_success_usd": "Total cost_usd of the version that day / successes (NULL when cost was not logged "
    "or nothing succeeded)",
    "fallback_rate": "fallbacks / calls",
    "steps_per_trace": "Calls per trace: an agent taking extra steps shows here",
    "tool_calls_per_trace": "Tool calls the model made per trace",
}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def create_metric_views(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create the views built from these definitions (called by the migrations that carry the marker)."""
    con.execute(f"CREATE OR REPLACE VIEW v_version_daily AS\n{version_daily_sql(one_day=False)}")
    for column, text in _VERSION_DAILY_COMMENTS.items():
        target = "VIEW v_version_daily" if column is None else f"COLUMN v_version_daily.{column}"
        con.execute(f"COMMENT ON {target} IS {_quote(text)}")

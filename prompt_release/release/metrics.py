"""`version_metrics`: daily metrics per prompt version, the table behind per-version dashboards.

One SQL statement over that day's `traces` joined with its `failures`
replaces the day's rows; the definitions (`warehouse.metrics`) are the ones
of the analyst view `v_version_daily`: calls and traces, success rate, hard failures
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
from prompt_release.warehouse import Scope, write_transaction
from prompt_release.warehouse.metrics import version_daily_sql

# The table's columns in order (computed_at last), each taken by name from the
# one definition the analyst view v_version_daily is also made of.
_COLUMNS = (
    "day",
    "prompt_id",
    "prompt_version",
    "package_hash",
    "calls",
    "traces",
    "success_rate",
    "hard_failures",
    "hard_failure_rate",
    "unsafe_tool_calls",
    "error_rate",
    "escalation_rate",
    "negative_feedback_rate",
    "p50_latency_ms",
    "p95_latency_ms",
    "p99_latency_ms",
    "cost_usd",
    "cost_per_success_usd",
    "input_tokens",
    "output_tokens",
    "retries",
    "fallbacks",
    "fallback_rate",
    "tool_calls",
    "steps_per_trace",
    "tool_calls_per_trace",
)
_INSERT = (
    f"INSERT INTO version_metrics SELECT {', '.join(_COLUMNS)}, current_timestamp AS computed_at "
    f"FROM ({version_daily_sql(one_day=True)})"
)


def compute_version_metrics(warehouse: str | Path | None, day: date | str) -> int:
    """Replace `version_metrics` rows of `day`; returns the number of versions written."""
    if isinstance(day, str):
        try:
            day = date.fromisoformat(day)
        except ValueError:
            raise UserError(f"not a date (YYYY-MM-DD): {day!r}", field="day") from None
    # on a lake only version_metrics is staged: traces, failures and events are read as committed
    with write_transaction(warehouse, scope=Scope.of(("version_metrics",))) as con:
        exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'traces'").fetchone()[0]
        if not exists:
            raise UserError("the warehouse has no traces table yet: ingest traces first")
        con.execute("DELETE FROM version_metrics WHERE day = ?", [day])
        con.execute(_INSERT, {"day": day})
        return con.execute("SELECT count(*) FROM version_metrics WHERE day = ?", [day]).fetchone()[0]

"""Issue 7: the documented analyst views answer the questions they promise, on the demo warehouse."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from prompt_release.warehouse import analyst_connection, write_transaction
from tests.conftest import REPO_ROOT, run_cli

pytestmark = pytest.mark.xdist_group("demo_world")

VIEWS = (
    "v_version_daily",
    "v_failures_by_cluster_class",
    "v_backtest_comparison",
    "v_gate_history",
    "v_gate_results",
    "v_label_history",
    "v_canary_status",
)


@pytest.fixture(scope="module")
def con(demo_world):
    # Through the analysts' snapshot, as a notebook would read it.
    connection = analyst_connection(demo_world.warehouse)
    yield connection
    connection.close()


def rows(con, sql: str, params: list | None = None) -> list[dict]:
    return con.sql(sql, params=params).pl().to_dicts()


def test_every_view_is_commented_and_documented(con) -> None:
    docs = (REPO_ROOT / "docs" / "analysts.md").read_text(encoding="utf-8")
    comments = dict(con.execute("SELECT view_name, comment FROM duckdb_views() WHERE NOT internal").fetchall())
    for view in VIEWS:
        assert comments.get(view), f"{view} has no COMMENT ON VIEW"
        section = re.search(rf"^### `{view}`\n(.*?)(?=^### |^## |\Z)", docs, re.S | re.M)
        assert section, f"docs/analysts.md has no section for {view}"
        columns = [
            r[0]
            for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [view]).fetchall()
        ]
        undocumented = [c for c in columns if f"`{c}`" not in section.group(1)]
        assert not undocumented, f"{view}: columns missing from docs/analysts.md: {undocumented}"
        assert "```sql" in section.group(1), f"{view}: no example query in docs/analysts.md"


def test_the_documented_example_queries_run(con) -> None:
    docs = (REPO_ROOT / "docs" / "analysts.md").read_text(encoding="utf-8")
    views = docs.split("## Views", 1)[1].split("\n## ", 1)[0]
    queries = re.findall(r"```sql\n(.*?)```", views, re.S)
    assert len(queries) >= len(VIEWS)
    for query in queries:
        for statement in filter(str.strip, query.split(";")):
            con.execute(statement).fetchall()


def test_version_daily_matches_the_version_metrics_table(con) -> None:
    compared = rows(
        con,
        """
        SELECT v.day, v.prompt_version, v.calls, m.calls AS m_calls, v.traces, m.traces AS m_traces,
               v.success_rate, m.success_rate AS m_success, v.hard_failures, m.hard_failures AS m_hard,
               v.unsafe_tool_calls, m.unsafe_tool_calls AS m_unsafe, v.p95_latency_ms, m.p95_latency_ms AS m_p95,
               v.cost_per_success_usd, m.cost_per_success_usd AS m_cps, v.negative_feedback_rate,
               m.negative_feedback_rate AS m_neg
        FROM v_version_daily v FULL JOIN version_metrics m USING (day, prompt_version)""",
    )
    assert len(compared) >= 12  # 4 history days x 3 workflows, plus the canary day
    for r in compared:
        assert r["calls"] == r["m_calls"] and r["traces"] == r["m_traces"], r
        assert r["hard_failures"] == r["m_hard"] and r["unsafe_tool_calls"] == r["m_unsafe"], r
        for a, b in (
            ("success_rate", "m_success"),
            ("p95_latency_ms", "m_p95"),
            ("cost_per_success_usd", "m_cps"),
            ("negative_feedback_rate", "m_neg"),
        ):
            assert r[a] == pytest.approx(r[b]), (r["day"], r["prompt_version"], a)
    # The production order agent makes some unsafe refunds in the sample history; the others none.
    unsafe = {
        r["prompt_version"].split(":")[0]: r["u"]
        for r in rows(con, "SELECT prompt_version, sum(unsafe_tool_calls) AS u FROM v_version_daily GROUP BY ALL")
    }
    assert unsafe.get("order_agent", 0) > 0 and unsafe.get("support_router", 0) == 0
    today = datetime.now(UTC).date()
    canary_day = {
        r["prompt_version"] for r in rows(con, "SELECT prompt_version FROM v_version_daily WHERE day = ?", [today])
    }
    assert "support_router:v1.6.0" in canary_day


def test_failures_by_cluster_and_class_adds_up_and_links_golden_cases(con) -> None:
    totals = rows(
        con,
        """
        SELECT v.workflow, v.failure_class, v.n, f.n AS expected
        FROM (SELECT workflow, failure_class, sum(failures) AS n FROM v_failures_by_cluster_class GROUP BY ALL) v
        FULL JOIN (SELECT workflow, failure_class, count(DISTINCT record_key) AS n FROM failures GROUP BY ALL) f
        USING (workflow, failure_class)""",
    )
    assert totals and all(r["n"] == r["expected"] for r in totals), totals
    unsafe = rows(con, "SELECT * FROM v_failures_by_cluster_class WHERE failure_class = 'unsafe_tool_call'")
    assert {r["workflow"] for r in unsafe} == {"order_agent"}
    refund = next(r for r in unsafe if r["cluster"] == "issue_refund")
    assert refund["severity"] == "critical" and refund["example_span_id"]
    assert "issue_refund" in refund["example_output"]
    shares = rows(
        con, "SELECT workflow, failure_class, sum(share_of_class) AS s FROM v_failures_by_cluster_class GROUP BY ALL"
    )
    assert all(r["s"] == pytest.approx(1.0) for r in shares)
    linked = rows(
        con, "SELECT in_golden, failures, golden_case_ids FROM v_failures_by_cluster_class WHERE in_golden > 0"
    )
    assert linked and all(r["in_golden"] <= r["failures"] for r in linked)
    case_ids = {c for r in linked for c in r["golden_case_ids"]}
    known = {r[0] for r in con.execute("SELECT case_id FROM golden_cases").fetchall()}
    assert case_ids <= known


def test_backtest_comparison_shows_each_candidate_against_production(con) -> None:
    runs = {r["candidate_version"]: r for r in rows(con, "SELECT * FROM v_backtest_comparison")}
    assert set(runs) == {"support_router:v1.6.0", "support_router:v1.7.0", "order_agent:v2.1.0", "summarizer:v1.1.0"}
    prose = runs["support_router:v1.7.0"]
    assert prose["baseline_version"] == "support_router:v1.5.2"
    assert prose["candidate_json_valid_rate"] == 0.0 and prose["baseline_json_valid_rate"] > 0.9
    assert prose["candidate_schema_valid_rate"] == 0.0 and prose["regressions"] > 0.8 * prose["diff_cases"]
    assert prose["gate_verdict"] == "reject"
    better = runs["support_router:v1.6.0"]
    assert better["regressions"] == 0 and better["wins"] > 0 and better["task_accuracy_delta"] > 0
    assert better["gate_verdict"] == "promote"
    refunds = runs["order_agent:v2.1.0"]
    # Production made a few unsafe refunds too (replayed history); the candidate makes many more.
    assert refunds["candidate_unsafe_tool_call_rate"] > refunds["baseline_unsafe_tool_call_rate"] + 0.1
    assert refunds["candidate_json_valid_rate"] is None  # tool-calling prompt: no JSON output contract
    for r in runs.values():
        assert r["candidate_p95_latency_ms"] > 0 and r["baseline_p95_latency_ms"] > 0
        assert r["candidate_results"] == r["golden_cases"] + r["history_cases"]


def test_behaviour_diff_of_a_tool_calling_prompt_shows_the_calls(con) -> None:
    # order_agent answers with tool calls and little text: before/after must show the calls.
    [(examples,)] = con.execute(
        "SELECT examples FROM behaviour_diff WHERE candidate_version = 'order_agent:v2.1.0' AND group_kind = 'all'"
    ).fetchall()
    shown = json.loads(examples)
    assert shown and all(e["before"] and e["after"] for e in shown)
    assert any("-> issue_refund(" in e["after"] for e in shown)
    assert all(e["before"] != e["after"] for e in shown)


def test_gate_history_lists_verdicts_failed_gates_and_what_followed(con) -> None:
    history = {r["candidate_version"]: r for r in rows(con, "SELECT * FROM v_gate_history ORDER BY created_at")}
    assert {k: v["verdict"] for k, v in history.items()} == {
        "support_router:v1.6.0": "promote",
        "support_router:v1.7.0": "reject",
        "order_agent:v2.1.0": "reject",
        "summarizer:v1.1.0": "reject",
    }
    rejected = history["support_router:v1.7.0"]
    # (A latency gate may come out inconclusive on a busy machine; the contract gates fail either way.)
    assert "json_valid_rate" in rejected["failed_gates"] and "json_valid_rate" not in rejected["inconclusive_gates"]
    assert rejected["label_actions"] == ["gate reject", "status rejected"] and rejected["exit_code"] == 1
    assert "unsafe_tool_call_rate" in history["order_agent:v2.1.0"]["failed_gates"]
    promoted = history["support_router:v1.6.0"]
    assert promoted["failed_gates"] == [] and promoted["n_cases"] > 100 and promoted["dataset_version"]
    assert promoted["label_actions"][:3] == ["gate promote", "move staging", "move canary"]
    assert "move production" in promoted["label_actions"]  # the canary rolled forward
    assert Path(promoted["html_path"]).exists()


def test_gate_results_put_each_interval_beside_its_threshold(con) -> None:
    gates = rows(con, "SELECT * FROM v_gate_results WHERE candidate_version = 'support_router:v1.7.0'")
    history = rows(con, "SELECT gates FROM v_gate_history WHERE candidate_version = 'support_router:v1.7.0'")
    assert len(gates) == history[0]["gates"]
    json_gate = next(g for g in gates if g["metric"] == "json_valid_rate")
    assert json_gate["outcome"] == "fail" and json_gate["candidate"] == 0.0
    assert json_gate["interval_upper"] < json_gate["threshold_value"] == pytest.approx(0.97)
    for g in rows(con, "SELECT * FROM v_gate_results WHERE outcome = 'pass' AND interval_of = 'candidate'"):
        assert g["interval_lower"] <= g["estimate"] <= g["interval_upper"]


def test_label_history_tells_the_release_story(con) -> None:
    events = rows(con, "SELECT * FROM v_label_history WHERE prompt_id = 'support_router'")
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    changes = [e["change"] for e in events]
    assert "production: support_router:v1.5.1 -> support_router:v1.5.2" in changes
    forward = next(e for e in events if e["change"] == "production: support_router:v1.5.2 -> support_router:v1.6.0")
    assert forward["gate_verdict"] == "promote" and forward["actor"] == "release-bot"
    assert forward["reason"] and forward["gate_report_id"].startswith("gr_")
    rejected = next(e for e in events if e["action"] == "status")
    assert rejected["change"] == "support_router:v1.7.0 -> rejected" and rejected["gate_verdict"] == "reject"


def test_canary_status_shows_the_newest_decision_per_prompt(con, demo_world) -> None:
    status = {r["prompt_id"]: r for r in rows(con, "SELECT * FROM v_canary_status")}
    assert {k: v["action"] for k, v in status.items()} == demo_world.canary_decisions
    router = status["support_router"]
    assert router["action"] == "roll_forward" and router["candidate_version"] == "support_router:v1.6.0"
    assert router["candidate_traces"] > 100 and router["candidate_hard_failure_rate"] == 0.0
    assert router["candidate_p95_latency_ms"] > 0 and router["gate_report_id"].startswith("gr_")
    compared = {e["metric"] for e in json.loads(router["evidence"])}
    assert {"hard_failure_rate", "latency_ratio", "escalation_rate", "negative_feedback_rate"} <= compared
    # The judge rejects summarizer v1.1.0 (its shorter summaries drop key facts): it never reaches canary.
    assert "summarizer" not in status


def test_canary_status_keeps_only_the_newest_look(warehouse: Path) -> None:
    start = datetime(2026, 10, 2, 9, tzinfo=UTC)
    with write_transaction(warehouse) as con:
        for i, action in enumerate(("freeze", "freeze", "abort")):
            con.execute(
                "INSERT INTO canary_decisions VALUES (?, 'support_router', 'support_router:v1.7.0', NULL, "
                "'support_router:v1.5.2', NULL, 'evt_1', 'gr_1', ?, 30, NULL, ?, 'why', ?, 100, ?, 0, "
                "'{\"versions\": {}}', '[]', '{}', [], ?)",
                [f"cd_{i}", start, action, 10 * (i + 1), 5 * i, start + timedelta(minutes=10 * (i + 1))],
            )
    with analyst_connection(warehouse) as con:
        (row,) = rows(con, "SELECT action, looks, candidate_traces, candidate_hard_failure_rate FROM v_canary_status")
    assert row == {"action": "abort", "looks": 3, "candidate_traces": 30, "candidate_hard_failure_rate": 1 / 3}


def test_prompt_release_sql_reads_the_views(demo_world) -> None:
    result = run_cli(
        "sql",
        "SELECT candidate_version, verdict FROM v_gate_history ORDER BY candidate_version",
        "--format",
        "json",
        env={"PROMPT_RELEASE_WAREHOUSE": str(demo_world.warehouse)},
    )
    assert result.returncode == 0, result.stderr
    verdicts = {r["candidate_version"]: r["verdict"] for r in json.loads(result.stdout)}
    assert verdicts["support_router:v1.7.0"] == "reject" and verdicts["support_router:v1.6.0"] == "promote"

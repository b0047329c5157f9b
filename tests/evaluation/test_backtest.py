"""Issue 5: backtests against the simulator behave as the sample candidates were designed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prompt_release.evaluation.backtest import BacktestSettings, history_cases, run_backtest, write_behaviour_diff
from prompt_release.llm.settings import LLMSettings
from prompt_release.llm.simulator import start_simulator
from prompt_release.warehouse import read_connection, write_transaction
from tests.world import World, build_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("backtest"))


@pytest.fixture(scope="module")
def simulator():
    with start_simulator(port=0) as sim:
        yield sim


def _backtest(world: World, simulator, candidate: str, **options):
    outcome = run_backtest(
        BacktestSettings(candidate=candidate, **options),
        registry_root=world.registry,
        warehouse=world.warehouse,
        llm_settings=LLMSettings(base_url=simulator.base_url, max_attempts=4, backoff_base_s=0.01, backoff_max_s=0.05),
    )
    write_behaviour_diff(outcome.run_id, warehouse=world.warehouse)
    return outcome


def _diff(world: World, run_id: str) -> dict[tuple[str, str], dict]:
    with read_connection(world.warehouse) as con:
        rows = con.execute("SELECT * FROM behaviour_diff WHERE run_id = ?", [run_id]).fetchall()
        names = [d[0] for d in con.description]
    return {(r["group_kind"], r["group_value"]): r for r in (dict(zip(names, row, strict=True)) for row in rows)}


def _rates(world: World, run_id: str, column: str) -> dict[str, float]:
    with read_connection(world.warehouse) as con:
        return dict(
            con.execute(
                f"SELECT role, avg(CAST({column} AS DOUBLE)) FROM backtest_results WHERE run_id = ? GROUP BY role",
                [run_id],
            ).fetchall()
        )


def test_v160_wins_account_recovery_without_losing_billing(world: World, simulator) -> None:
    outcome = _backtest(world, simulator, "support_router:v1.6.0")
    assert outcome.baseline == "support_router:v1.5.2"  # the production label
    diff = _diff(world, outcome.run_id)
    recovery = diff[("intent", "account_recovery")]
    assert recovery["wins"] > 0 and recovery["regressions"] == 0
    billing = diff.get(("intent", "billing"))
    assert billing is None or billing["regressions"] == 0
    assert diff[("all", "all")]["regressions"] == 0
    with read_connection(world.warehouse) as con:
        run = con.execute(
            "SELECT candidate_hash, baseline_hash, dataset_version, status FROM backtest_runs WHERE run_id = ?",
            [outcome.run_id],
        ).fetchall()[0]
    assert run[0].startswith("sha256:") and run[1].startswith("sha256:")
    assert run[2] == "support_router_golden:v1" and run[3] == "complete"


def test_v170_breaks_the_json_contract(world: World, simulator) -> None:
    outcome = _backtest(world, simulator, "support_router:v1.7.0")
    json_valid = _rates(world, outcome.run_id, "json_valid")
    assert json_valid["candidate"] == 0.0 and json_valid["baseline"] > 0.9
    assert _rates(world, outcome.run_id, "schema_valid")["candidate"] == 0.0
    everything = _diff(world, outcome.run_id)[("all", "all")]
    assert everything["regressions"] > 0.8 * everything["cases"]
    example = json.loads(everything["examples"])[0]
    assert example["outcome"] == "regression"
    json.loads(example["before"])  # the baseline answered JSON...
    with pytest.raises(ValueError):
        json.loads(example["after"])  # ...the candidate answers prose


def test_order_agent_v210_makes_unsafe_refund_calls(world: World, simulator) -> None:
    outcome = _backtest(world, simulator, "order_agent:v2.1.0", replay_baseline=False)
    unsafe = _rates(world, outcome.run_id, "unsafe_tool_call")
    assert unsafe["baseline"] == 0.0 and unsafe["candidate"] > 0.05
    with read_connection(world.warehouse) as con:
        details = con.execute(
            "SELECT check_details FROM backtest_results WHERE run_id = ? AND role = 'candidate' AND unsafe_tool_call",
            [outcome.run_id],
        ).fetchall()
    issue = json.loads(details[0][0])["tool_issues"][0]
    assert issue["kind"] == "unsafe_tool_call" and issue["tool"] == "issue_refund"
    assert _diff(world, outcome.run_id)[("all", "all")]["regressions"] == len(details)


@pytest.mark.parametrize("form", ["fenced", "bare", "tagged"])
def test_order_agent_v210_is_rejected_for_refunds_it_writes_as_text(world: World, form: str) -> None:
    from prompt_release.gates.evaluate import evaluate_run, load_spec_for

    # A model that writes its tool calls in the answer instead of tool_calls: nothing runs in
    # production, the user sees JSON, and the refund without a lookup was still intended.
    with start_simulator(port=0, tool_calls_as_text=form) as texting:
        outcome = _backtest(world, texting, "order_agent:v2.1.0", replay_baseline=False)
    with read_connection(world.warehouse) as con:
        rows = con.execute(
            "SELECT check_details, unsafe_tool_call, tool_calls_valid, passed FROM backtest_results "
            "WHERE run_id = ? AND role = 'candidate' AND tool_calls IS NULL AND output LIKE '%\"arguments\"%'",
            [outcome.run_id],
        ).fetchall()
    assert rows, "the candidate wrote refunds as text"
    for details, _, valid, passed in rows:
        classes = json.loads(details)["failure_classes"]
        assert "text_tool_call" in classes and valid is False and passed is False
    assert any(unsafe for _, unsafe, _, _ in rows)
    report = evaluate_run(
        outcome.run_id,
        load_spec_for(world.registry, "order_agent:v2.1.0"),
        warehouse=world.warehouse,
        reports_dir=world.root / "reports",
    )
    assert report.verdict == "reject" and "unsafe_tool_call_rate" in report.failed_gates
    assert report.endpoint.arms["candidate"].served_model == f"simulator-1 (tool_calls_as_text={form})"


def test_recorded_outputs_of_the_baseline_package_are_replayed(world: World, simulator) -> None:
    outcome = _backtest(world, simulator, "support_router:v1.6.0")
    assert outcome.calls_replayed > 0
    with read_connection(world.warehouse) as con:
        replayed = con.execute(
            "SELECT count(*), count(DISTINCT case_source) FROM backtest_results "
            "WHERE run_id = ? AND replayed AND role = 'baseline'",
            [outcome.run_id],
        ).fetchall()[0]
    assert replayed == (outcome.calls_replayed, 1)  # history only


def test_faults_lose_nothing_and_double_nothing(tmp_path: Path, world: World) -> None:
    faults = {
        "error_rate": 0.2,
        "rate_limit_every": 25,
        "rate_limit_burst": 3,
        "retry_after_s": 0.01,
        "drop_rate": 0.05,
    }
    warehouse = tmp_path / "faults.duckdb"
    import shutil

    shutil.copy(world.warehouse, warehouse)
    with start_simulator(port=0, faults=faults, seed=3) as sim:
        outcome = run_backtest(
            BacktestSettings(candidate="support_router:v1.6.0", replay_baseline=False, history_days=0),
            registry_root=world.registry,
            warehouse=warehouse,
            llm_settings=LLMSettings(
                base_url=sim.base_url, max_attempts=3, backoff_base_s=0.01, backoff_max_s=0.02, max_retry_after_s=0.05
            ),
        )
    with read_connection(warehouse) as con:
        rows = con.execute(
            "SELECT role, status, count(*), count(DISTINCT case_id) FROM backtest_results WHERE run_id = ? "
            "GROUP BY ALL",
            [outcome.run_id],
        ).fetchall()
    per_role: dict[str, int] = {}
    for role, status, n, _distinct in rows:
        # a call the endpoint failed after its retries is not run, never a failed case of the prompt
        assert status in ("ok", "not_run_infra")
        per_role[role] = per_role.get(role, 0) + n
    assert per_role == {"candidate": outcome.cases, "baseline": outcome.cases}
    statuses = {status for _, status, _, _ in rows}
    assert "ok" in statuses  # retries got most calls through
    with read_connection(warehouse) as con:
        judged = con.execute(
            "SELECT count(*) FROM backtest_results WHERE run_id = ? AND status = 'not_run_infra' "
            "AND (passed IS NOT NULL OR task_correct IS NOT NULL)",
            [outcome.run_id],
        ).fetchone()
    assert judged == (0,)
    assert outcome.status == ("incomplete" if "not_run_infra" in statuses else "complete")


def test_budget_is_never_exceeded(tmp_path: Path, world: World) -> None:
    import shutil

    def backtest(name: str, max_tokens: int | None):
        warehouse = tmp_path / f"{name}.duckdb"
        shutil.copy(world.warehouse, warehouse)
        with start_simulator(port=0, seed=9) as sim:
            return warehouse, run_backtest(
                BacktestSettings(
                    candidate="summarizer:v1.1.0", replay_baseline=False, history_days=0, max_tokens=max_tokens
                ),
                registry_root=world.registry,
                warehouse=warehouse,
                llm_settings=LLMSettings(base_url=sim.base_url),
            )

    # The golden set (so the tokens a whole run needs) depends on the generated history: measure it, then halve.
    unbounded_warehouse, unbounded = backtest("unbounded", None)
    with read_connection(unbounded_warehouse) as con:
        [(needed,)] = con.execute(
            "SELECT spent_tokens FROM backtest_runs WHERE run_id = ?", [unbounded.run_id]
        ).fetchall()
    assert unbounded.status == "complete" and needed > 1_000
    budget = needed // 2
    warehouse, outcome = backtest("budget", budget)
    assert outcome.status == "budget_exhausted" and outcome.calls_not_run > 0
    with read_connection(warehouse) as con:
        spent, not_run = con.execute(
            "SELECT sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0)) FILTER (WHERE NOT cached), "
            "count(*) FILTER (WHERE status = 'not_run_budget') FROM backtest_results WHERE run_id = ?",
            [outcome.run_id],
        ).fetchall()[0]
        run_spent = con.execute(
            "SELECT spent_tokens, status FROM backtest_runs WHERE run_id = ?", [outcome.run_id]
        ).fetchall()[0]
    assert 0 < spent <= budget
    assert not_run == outcome.calls_not_run
    assert run_spent == (spent, "budget_exhausted")


def test_running_a_budgeted_run_again_spends_nothing_past_its_budget(tmp_path: Path, world: World) -> None:
    """The budget is per run (its id), across runs of it: the second run of a run that used up its
    budget (as a resume after a kill does) starts from what the first one paid."""
    import shutil

    warehouse = tmp_path / "again.duckdb"
    shutil.copy(world.warehouse, warehouse)
    budget = 3000
    settings = BacktestSettings(candidate="summarizer:v1.1.0", replay_baseline=False, history_days=0, max_tokens=budget)
    with start_simulator(port=0, seed=9) as sim:
        llm = LLMSettings(base_url=sim.base_url)
        first = run_backtest(settings, registry_root=world.registry, warehouse=warehouse, llm_settings=llm)
        billed_first = sim.stats()["billed_tokens"]
        again = run_backtest(settings, registry_root=world.registry, warehouse=warehouse, llm_settings=llm)
        billed = sim.stats()["billed_tokens"]
    assert first.status == again.status == "budget_exhausted" and again.run_id == first.run_id
    assert 0 < billed_first <= billed <= budget  # as the endpoint bills it, both runs together
    assert again.calls_cached == first.calls_made
    with read_connection(warehouse) as con:
        [(spent,)] = con.execute("SELECT spent_tokens FROM backtest_runs WHERE run_id = ?", [again.run_id]).fetchall()
    assert spent == billed  # the run's record counts what the first run paid too


def test_a_rerun_replaces_the_run_and_keeps_rows_it_reproduces(tmp_path: Path, world: World, simulator) -> None:
    import shutil

    warehouse = tmp_path / "rerun.duckdb"
    shutil.copy(world.warehouse, warehouse)
    settings = BacktestSettings(candidate="support_router:v1.6.0", history_days=0)
    llm = LLMSettings(base_url=simulator.base_url)

    def run():
        outcome = run_backtest(settings, registry_root=world.registry, warehouse=warehouse, llm_settings=llm)
        with read_connection(warehouse) as con:
            results = con.execute(
                "SELECT count(*), bool_and(cached) FROM backtest_results WHERE run_id = ?", [outcome.run_id]
            ).fetchall()[0]
            run_row = con.execute(
                "SELECT count(*), max(calls_cached), max(results_hash) FROM backtest_runs WHERE run_id = ?",
                [outcome.run_id],
            ).fetchall()[0]
        return outcome, results, run_row

    first, first_rows, first_run = run()
    assert first_rows[0] > 0
    again, again_rows, again_run = run()  # fully cached: the same rows, one run record, now saying cached
    assert again.run_id == first.run_id and again.calls_made == 0 and again.results_kept
    assert again_rows == first_rows and again_run == (1, again.calls_cached, first_run[2])
    assert again.summary == first.summary
    # Rows that differ (here: edited in place, as a change of the checks would) are rewritten.
    with write_transaction(warehouse) as con:
        con.execute(
            "UPDATE backtest_results SET passed = NOT passed WHERE run_id = ? AND role = 'candidate'", [first.run_id]
        )
        con.execute("UPDATE backtest_runs SET results_hash = 'stale' WHERE run_id = ?", [first.run_id])
    third, third_rows, third_run = run()
    assert not third.results_kept and third_rows == (first_rows[0], True)  # rewritten, from the cache
    assert third_run[2] == first_run[2]
    with read_connection(warehouse) as con:
        passed = con.execute(
            "SELECT avg(CAST(passed AS DOUBLE)) FROM backtest_results WHERE run_id = ? AND role = 'candidate'",
            [first.run_id],
        ).fetchall()[0][0]
    assert passed == pytest.approx(first.summary["candidate"]["passed"])


def test_history_is_replayed_by_prompt_id_whatever_the_app_calls_its_workflow(
    tmp_path: Path, world: World, simulator
) -> None:
    # An app whose workflow is named after the product, not after the prompt it runs.
    warehouse = tmp_path / "helpdesk.duckdb"
    import shutil

    shutil.copy(world.warehouse, warehouse)
    with write_transaction(warehouse) as con:
        con.execute("UPDATE traces SET workflow = 'helpdesk_app' WHERE prompt_id = 'support_router'")
        recorded = con.execute(
            "SELECT count(*) FROM traces WHERE prompt_id = 'support_router' AND workflow = 'support_router'"
        ).fetchone()[0]
    assert recorded == 0
    outcome = run_backtest(
        BacktestSettings(candidate="support_router:v1.6.0", dataset="none", history_size=30),
        registry_root=world.registry,
        warehouse=warehouse,
        llm_settings=LLMSettings(base_url=simulator.base_url, max_attempts=4, backoff_base_s=0.01, backoff_max_s=0.05),
    )
    assert outcome.cases > 0
    # The very inputs a backtest replays when the workflow is named after the prompt.
    sample = {"days": 7, "size": 30, "seed": 0, "as_of": None, "contract": None}
    assert [c.case_id for c in history_cases(warehouse, "support_router", **sample)] == [
        c.case_id for c in history_cases(world.warehouse, "support_router", **sample)
    ]
    with read_connection(warehouse) as con:
        sources = con.execute(
            "SELECT DISTINCT case_source FROM backtest_results WHERE run_id = ?", [outcome.run_id]
        ).fetchall()
    assert sources == [("history",)]

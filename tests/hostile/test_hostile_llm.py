"""Infrastructure failures are not evidence against a prompt: after its retries, a 5xx/429
storm leaves calls "not run" (uncached, so the next run of the same run calls them again),
never failed cases; and a backtest row of such a call counts neither as pass nor as fail.
A budget is per logical run across a kill and a resume, and an answer is durable before it
is counted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from prompt_release.evaluation.backtest import _RowMaker
from prompt_release.llm import Budget, CallRequest, LLMSettings, run_calls_sync
from prompt_release.llm.client import STATUS_NOT_RUN_BUDGET, STATUS_NOT_RUN_INFRA, STATUS_OK, CallResult
from prompt_release.llm.simulator import start_simulator
from prompt_release.warehouse import read_connection
from tests.conftest import REPO_ROOT

ROUTER = "Route the ticket.\n[route] billing: invoice, charge\n[default-route] general\n[format] json"


def _requests(n: int) -> list[CallRequest]:
    return [
        CallRequest(
            model="sim",
            messages=[
                {"role": "system", "content": ROUTER},
                {"role": "user", "content": f"case {i}: my invoice is wrong"},
            ],
            parameters={"temperature": 0},
            package_hash="sha256:abc",
            tag=f"case{i}",
        )
        for i in range(n)
    ]


def test_a_5xx_storm_leaves_calls_not_run_and_the_next_run_calls_them(warehouse):
    settings = LLMSettings(base_url="", backoff_base_s=0.01, backoff_max_s=0.02, max_attempts=3)
    with start_simulator(seed=1, faults={"error_rate": 1.0}) as sim:
        storm = run_calls_sync(
            _requests(20), settings.model_copy(update={"base_url": sim.base_url}), warehouse=warehouse
        )
    assert {r.status for r in storm} == {STATUS_NOT_RUN_INFRA}
    assert all(r.error_type.startswith("http_5") and r.attempts == 3 for r in storm)
    with read_connection(warehouse) as con:
        assert con.execute("SELECT count(*) FROM llm_cache").fetchone() == (0,)
    with start_simulator(seed=1) as sim:
        resumed = run_calls_sync(
            _requests(20), settings.model_copy(update={"base_url": sim.base_url}), warehouse=warehouse
        )
    assert {r.status for r in resumed} == {STATUS_OK}


class _Package:
    version_id, package_hash = "support_router:v1.6.0", "sha256:abc"


class _Case:
    case_id, source, tags, expected = "case_1", "golden", ["billing"], {"kind": "label", "value": {"route": "billing"}}


def test_a_not_run_call_is_neither_a_pass_nor_a_fail_of_the_prompt():
    make_row = _RowMaker("run_1")
    not_run = CallResult("candidate|case_1|0", "key", 0, STATUS_NOT_RUN_INFRA, error_type="http_503", error="503")
    row = make_row("candidate", _Package(), None, _Case(), not_run, replayed=False)
    columns = dict(zip(("status", "error"), row[12:14]))
    assert columns == {"status": STATUS_NOT_RUN_INFRA, "error": "http_503"}
    passed, task_correct = row[21], row[18]
    assert passed is None and task_correct is None


# A budgeted run of 300 calls in its own process: prints how many calls it has counted, as it counts them.
KILLABLE_BUDGETED_RUN = textwrap.dedent("""
    import sys
    from prompt_release.llm import Budget, LLMSettings, run_calls_sync
    from tests.hostile.test_hostile_llm import _requests
    settings = LLMSettings(base_url=sys.argv[1], max_concurrency=8, default_max_tokens=40)
    run_calls_sync(_requests(300), settings, warehouse=sys.argv[2], budget=Budget(max_tokens=int(sys.argv[3])),
                   spend_key="run-1", progress=lambda done, total: print(done, flush=True))
""")


def test_a_killed_and_resumed_run_spends_its_budget_once_and_pays_no_counted_answer_twice(warehouse):
    budget = 2500  # about 95 calls' usage, while a call reserves its worst case (about 110 tokens)
    settings = LLMSettings(backoff_base_s=0.01, backoff_max_s=0.02, max_concurrency=8, default_max_tokens=40)
    # A simulator process of its own on a free 127.0.0.1 port, stopped by its PID on the way out.
    with start_simulator(seed=6, latency_ms=20, subprocess_mode=True) as sim:
        child = subprocess.Popen(
            [sys.executable, "-c", KILLABLE_BUDGETED_RUN, sim.base_url, str(warehouse), str(budget)],
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        counted = 0
        try:
            while counted < 20:
                line = child.stdout.readline()
                if not line:
                    break
                counted = int(line)
        finally:
            # At once: with calls in flight (billed, their answers on the way) and answers just counted.
            child.send_signal(signal.SIGKILL)
            child.wait(10)
            child.stdout.close()
        assert counted >= 20, "the run ended before it could be killed"
        with read_connection(warehouse) as con:
            kept = {
                row[0] for row in con.execute("SELECT request->'messages'->1->>'content' FROM llm_cache").fetchall()
            }
        # Every call the run had counted was already durable in the cache.
        assert len(kept) >= counted
        asked_before = len(sim.requests())
        billed_before = sim.stats()["billed_tokens"]
        assert 0 < billed_before < budget

        resumed = run_calls_sync(
            _requests(300),
            settings.model_copy(update={"base_url": sim.base_url}),
            warehouse=warehouse,
            budget=Budget(max_tokens=budget),
            spend_key="run-1",
        )
        billed = sim.stats()["billed_tokens"]
        asked_again = [entry["last_user"] for entry in sim.requests()[asked_before:]]
    assert sum(r.cached for r in resumed) == len(kept)
    assert {r.status for r in resumed} == {STATUS_OK, STATUS_NOT_RUN_BUDGET}  # the budget bound the run
    assert any(not r.cached and r.status == STATUS_OK for r in resumed)  # and left the resumed run room
    # In total, as the endpoint bills it (answers to calls the kill cut off included), within the budget.
    assert billed <= budget
    # No answer the killed run had received and kept was asked for again.
    assert not kept & set(asked_again)

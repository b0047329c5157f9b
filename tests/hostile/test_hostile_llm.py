"""Infrastructure failures are not evidence against a prompt: after its retries, a 5xx/429
storm leaves calls "not run" (uncached, so the next run of the same run calls them again),
never failed cases; and a backtest row of such a call counts neither as pass nor as fail."""

from __future__ import annotations

from prompt_release.evaluation.backtest import _RowMaker
from prompt_release.llm import CallRequest, LLMSettings, run_calls_sync
from prompt_release.llm.client import STATUS_NOT_RUN_INFRA, STATUS_OK, CallResult
from prompt_release.llm.simulator import start_simulator
from prompt_release.warehouse import read_connection

ROUTER = "Route the ticket.\n[route] billing: invoice, charge\n[default-route] general\n[format] json"


def _requests(n: int) -> list[CallRequest]:
    return [CallRequest(model="sim", messages=[{"role": "system", "content": ROUTER},
                                               {"role": "user", "content": f"case {i}: my invoice is wrong"}],
                        parameters={"temperature": 0}, package_hash="sha256:abc", tag=f"case{i}") for i in range(n)]


def test_a_5xx_storm_leaves_calls_not_run_and_the_next_run_calls_them(warehouse):
    settings = LLMSettings(base_url="", backoff_base_s=0.01, backoff_max_s=0.02, max_attempts=3)
    with start_simulator(seed=1, faults={"error_rate": 1.0}) as sim:
        storm = run_calls_sync(_requests(20), settings.model_copy(update={"base_url": sim.base_url}), warehouse=warehouse)
    assert {r.status for r in storm} == {STATUS_NOT_RUN_INFRA}
    assert all(r.error_type.startswith("http_5") and r.attempts == 3 for r in storm)
    with read_connection(warehouse) as con:
        assert con.execute("SELECT count(*) FROM llm_cache").fetchone() == (0,)
    with start_simulator(seed=1) as sim:
        resumed = run_calls_sync(_requests(20), settings.model_copy(update={"base_url": sim.base_url}), warehouse=warehouse)
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

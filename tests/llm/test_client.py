"""The client against the simulator: faults, resume from cache, budget, secrets."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter

import pytest

from prompt_release.llm import Budget, CallRequest, LLMSettings, ModelPrice, run_calls_sync
from prompt_release.llm.client import STATUS_NOT_RUN_BUDGET, STATUS_OK
from prompt_release.llm.simulator import SIMULATOR_MODEL, start_simulator
from prompt_release.warehouse import read_connection
from tests.conftest import REPO_ROOT

ROUTER = "Route the ticket.\n[route] billing: invoice, charge\n[default-route] general\n[format] json"


def requests(n: int, prefix: str = "case") -> list[CallRequest]:
    return [
        CallRequest(
            model="sim",
            messages=[
                {"role": "system", "content": ROUTER},
                {"role": "user", "content": f"{prefix} {i}: my invoice is wrong"},
            ],
            parameters={"temperature": 0},
            package_hash="sha256:abc",
            tag=f"{prefix}{i}",
        )
        for i in range(n)
    ]


def fast(base_url: str, **kw) -> LLMSettings:
    return LLMSettings(base_url=base_url, backoff_base_s=0.01, backoff_max_s=0.05, **kw)


def test_with_faults_every_call_is_answered_or_an_error_none_lost_none_duplicated(warehouse):
    faults = {
        "error_rate": 0.2,
        "rate_limit_every": 40,
        "rate_limit_burst": 6,
        "retry_after_s": 0.02,
        "drop_rate": 0.05,
        "malformed_rate": 0.03,
    }
    with start_simulator(seed=5, faults=faults) as sim:
        results = run_calls_sync(requests(300), fast(sim.base_url, max_concurrency=16), warehouse=warehouse)
        stats = sim.stats()
        log = sim.requests()
    assert [r.tag for r in results] == [f"case{i}" for i in range(300)]
    assert {r.status for r in results} <= {"ok", "not_run_infra"}
    ok = [r for r in results if r.status == STATUS_OK]
    assert all(r.error_type and r.attempts == 6 for r in results if r.status == "not_run_infra")
    assert len(ok) >= 290 and all(r.output for r in ok)
    assert any(r.attempts > 1 for r in ok)  # faults really happened and were retried
    assert set(stats["faults"]) >= {"rate_limit", "drop", "malformed"}
    # Each case was answered by the server at most once (no duplicate successful calls).
    assert stats["answered"] == len(ok)
    assert len(log) == sum(r.attempts for r in results)
    with read_connection(warehouse) as con:
        rows, keys = con.execute("SELECT count(*), count(DISTINCT cache_key) FROM llm_cache").fetchone()
    assert rows == keys == len(ok)


def test_repeated_samples_are_independent_draws_and_identical_requests_are_called_once(warehouse):
    base = requests(1)[0]
    prose = CallRequest(
        model="sim",
        messages=[
            {"role": "system", "content": ROUTER.replace("json", "prose")},
            {"role": "user", "content": "invoice"},
        ],
    )
    batch = [CallRequest(**{**{f: getattr(prose, f) for f in prose.__slots__}, "sample_index": k}) for k in range(6)]
    with start_simulator(seed=1) as sim:
        results = run_calls_sync([base, base, *batch], fast(sim.base_url), warehouse=warehouse)
        assert sim.stats()["chat_requests"] == 7
    assert results[0].output == results[1].output
    assert len({r.cache_key for r in results[2:]}) == 6
    assert len({r.output for r in results[2:]}) > 1


def test_second_run_is_served_from_the_cache(warehouse):
    with start_simulator(seed=1) as sim:
        settings = fast(sim.base_url)
        first = run_calls_sync(requests(50), settings, warehouse=warehouse)
        second = run_calls_sync(requests(50), settings, warehouse=warehouse)
        assert sim.stats()["chat_requests"] == 50
    assert all(r.cached for r in second) and not any(r.cached for r in first)
    assert [r.output for r in first] == [r.output for r in second]


KILLABLE_RUN = textwrap.dedent("""
    import sys
    from prompt_release.llm import CallRequest, LLMSettings, run_calls_sync
    from tests.llm.test_client import requests
    settings = LLMSettings(base_url=sys.argv[1], max_concurrency=4, cache_flush_rows=5)
    run_calls_sync(requests(600), settings, warehouse=sys.argv[2])
""")


def test_killed_run_resumes_without_repeating_a_completed_call(warehouse):
    with start_simulator(seed=2, latency_ms=40) as sim:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        child = subprocess.Popen(
            [sys.executable, "-c", KILLABLE_RUN, sim.base_url, str(warehouse)], env=env, cwd=REPO_ROOT
        )
        try:
            # Once the child is well under way, slow the simulator to a crawl, so the kill lands midway
            # however loaded the machine is (polling the warehouse alone raced a fast child to the end).
            deadline = time.monotonic() + 60
            while sim.stats()["answered"] < 60 and time.monotonic() < deadline:
                time.sleep(0.02)
            sim.configure(latency_ms=2000)
            done = 0
            while done < 40 and time.monotonic() < deadline:
                time.sleep(0.2)
                if warehouse.exists():
                    with read_connection(warehouse) as con:
                        done = con.execute("SELECT count(*) FROM llm_cache").fetchall()[0][0]
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        assert done >= 40
        with read_connection(warehouse) as con:
            completed = {
                row[0] for row in con.execute("SELECT request->'messages'->1->>'content' FROM llm_cache").fetchall()
            }
        assert 40 <= len(completed) < 600  # killed midway
        sim.reset()
        sim.configure(latency_ms=0)
        results = run_calls_sync(requests(600), fast(sim.base_url), warehouse=warehouse)
        asked_again = [entry["last_user"] for entry in sim.requests()]
    assert not completed & set(asked_again)
    assert Counter(asked_again).most_common(1)[0][1] == 1
    assert all(r.status == STATUS_OK for r in results)
    assert sum(r.cached for r in results) == len(completed)


@pytest.mark.parametrize("faults", [{}, {"drop_rate": 0.2, "error_rate": 0.2}])
def test_budget_is_never_exceeded(warehouse, faults):
    with start_simulator(seed=4, faults=faults) as sim:
        settings = fast(sim.base_url, max_concurrency=8, default_max_tokens=40)
        results = run_calls_sync(requests(200), settings, warehouse=warehouse, budget=Budget(max_tokens=3000))
        answered_by_server = sim.stats()["answered"]
    ran = [r for r in results if r.status == STATUS_OK]
    skipped = [r for r in results if r.status == STATUS_NOT_RUN_BUDGET]
    assert ran and skipped and len(results) == 200
    # Every answer the server gave counts, including ones the client lost to a dropped connection.
    assert sum(r.input_tokens + r.output_tokens for r in ran) <= 3000
    assert answered_by_server >= len(ran)


def test_usd_budget_uses_the_price_table(warehouse):
    price = ModelPrice(input_per_1m=1000.0, output_per_1m=2000.0)  # absurd prices: a tiny budget bites
    with start_simulator(seed=4) as sim:
        settings = fast(sim.base_url, default_max_tokens=20, prices={"sim": price})
        results = run_calls_sync(requests(100), settings, warehouse=warehouse, budget=Budget(max_usd=1.0))
    ran = [r for r in results if r.status == STATUS_OK]
    assert ran and len(ran) < 100
    assert sum(r.cost_usd for r in ran) <= 1.0


def test_api_key_never_appears_in_logs_or_the_warehouse(warehouse, caplog):
    sentinel = "sk-SENTINEL-do-not-store-7f3a9c"
    caplog.set_level(logging.DEBUG)
    with start_simulator(seed=1, faults={"error_rate": 0.3}) as sim:
        settings = fast(sim.base_url, api_key=sentinel)
        results = run_calls_sync(requests(20), settings, warehouse=warehouse)
    assert all(r.status == STATUS_OK for r in results)
    assert sentinel not in caplog.text
    assert sentinel not in repr(settings) and sentinel not in str(results)
    assert sentinel.encode() not in warehouse.read_bytes()
    assert sentinel.encode() not in b"".join(p.read_bytes() for p in warehouse.parent.glob("*.wal"))


def test_from_env_reads_endpoint_and_key(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-key")
    settings = LLMSettings.from_env(max_concurrency=3)
    assert settings.base_url == "http://127.0.0.1:9/v1" and settings.max_concurrency == 3
    assert settings.api_key.get_secret_value() == "sk-env-key" and "sk-env-key" not in repr(settings)


def test_sync_calls_work_inside_a_running_event_loop(tmp_path) -> None:
    # As in a Jupyter notebook or an async app: asyncio.run() alone would be refused here.
    import asyncio

    from prompt_release.llm.client import CallRequest, run_calls_sync
    from prompt_release.llm.settings import LLMSettings
    from prompt_release.llm.simulator import start_simulator

    with start_simulator(port=0) as sim:
        request = CallRequest(
            model="m", messages=[{"role": "system", "content": "[format] prose"}, {"role": "user", "content": "hello"}]
        )

        async def inside_a_loop():
            return run_calls_sync([request], LLMSettings(base_url=sim.base_url), warehouse=tmp_path / "w.duckdb")

        # A thread of its own, so the test does not depend on what else runs in this process.
        import threading

        outcome: dict = {}
        thread = threading.Thread(target=lambda: outcome.update(results=asyncio.run(inside_a_loop())))
        thread.start()
        thread.join(timeout=60)
    [result] = outcome["results"]
    assert result.status == "ok" and result.output


def test_answers_from_one_endpoint_are_never_reused_for_another(warehouse):
    with start_simulator(seed=1) as first:
        answered = run_calls_sync(requests(5), fast(first.base_url), warehouse=warehouse)
        again = run_calls_sync(requests(5), fast(first.base_url), warehouse=warehouse)
    with start_simulator(seed=1) as other:  # same software and model, another address
        elsewhere = run_calls_sync(requests(5), fast(other.base_url), warehouse=warehouse)
        stats = other.stats()
    assert not any(r.cached for r in answered) and all(r.cached for r in again)
    assert not any(r.cached for r in elsewhere) and stats["answered"] == 5
    assert {r.cache_key for r in elsewhere}.isdisjoint(r.cache_key for r in answered)
    assert all(r.served_model for r in elsewhere)


def test_the_endpoint_identity_has_no_credentials_and_names_the_served_model():
    from prompt_release.llm.endpoint import endpoint_identity, normalise_base_url

    assert (
        normalise_base_url("HTTPS://user:secret@API.Example.com:443/v1/?api-key=k1&api-version=2024-06-01")
        == "https://api.example.com/v1?api-version=2024-06-01"
    )
    assert normalise_base_url("http://127.0.0.1:8080/v1/") == "http://127.0.0.1:8080/v1"
    with start_simulator() as sim:
        # The simulator lists one model, so it serves that one whatever the request names (as llama.cpp does).
        identity = endpoint_identity(LLMSettings(base_url=sim.base_url, api_key="sk-secret"), "gpt-anything")
    assert identity.served_model == SIMULATOR_MODEL and "secret" not in identity.key


def test_429_bursts_lower_the_calls_in_flight_and_every_call_still_completes(warehouse):
    faults = {"rate_limit_every": 30, "rate_limit_burst": 10, "retry_after_s": 0.01}
    stats: dict = {}
    with start_simulator(seed=2, faults=faults) as sim:
        results = run_calls_sync(
            # More attempts than a burst is long: once the limit is down to one call in flight, that call
            # may meet the whole burst of 10 refusals alone (6 attempts made this test fail now and then).
            requests(120, "busy"),
            fast(sim.base_url, max_concurrency=16, max_attempts=12),
            warehouse=warehouse,
            stats=stats,
        )
    assert all(r.status == STATUS_OK for r in results)
    assert 1 <= stats["lowest_concurrency"] < 16


def test_a_server_that_never_refuses_keeps_the_configured_concurrency(warehouse):
    stats: dict = {}
    with start_simulator(seed=2) as sim:
        run_calls_sync(requests(40, "calm"), fast(sim.base_url, max_concurrency=8), warehouse=warehouse, stats=stats)
    assert stats["lowest_concurrency"] == 8

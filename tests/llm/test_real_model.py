"""A gate against a real model: llama.cpp (xllamacpp) serving SmolLM2-135M-Instruct on 127.0.0.1.

Every other test answers through the built-in simulator. Here the same gate
runs first on the simulator, then on the real server, on the same few
replayed inputs: the real run must make its own calls (none reused from the
simulator), under its own run and report ids, with usage and latency
recorded, JSON mode sent for a package with a schema, and a verdict whatever
the model writes. `make test` installs the server (the `realmodel` extra) and
fetches the model file (`scripts/local_model.py fetch`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from prompt_release.contracts import checks
from prompt_release.llm.client import CallRequest, run_calls_sync
from prompt_release.llm.settings import LLMSettings
from prompt_release.registry import Registry
from prompt_release.warehouse import read_connection
from tests.conftest import REPO_ROOT, run_cli
from tests.world import World, build_world

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("real_model")]

SCRIPT = REPO_ROOT / "scripts" / "local_model.py"
sys.path.insert(0, str(SCRIPT.parent))
import local_model  # noqa: E402 - the script beside the Makefile, not a package


def _server_or_skip() -> Path:
    missing = []
    if importlib.util.find_spec("xllamacpp") is None:
        missing.append("the realmodel extra (pip install -e '.[realmodel]')")
    model = local_model.CACHE / local_model.MODEL_FILE
    if not model.exists():
        missing.append(f"the model file (python {SCRIPT.relative_to(REPO_ROOT)} fetch)")
    if missing:
        message = "real-model test needs " + " and ".join(missing) + "; `make test` installs both"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI runs `make test`, which installs them: missing means a broken install
        pytest.skip(message)
    return model


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = _server_or_skip()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with log.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, str(SCRIPT), "serve", "--model", str(model), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            start_new_session=True,
        )
    try:
        found: list[str] = []

        def read_address() -> None:
            for line in process.stdout:  # type: ignore[union-attr]
                if line.startswith("listening "):
                    found.append(line.split()[1])
                    return

        reader = threading.Thread(target=read_address, daemon=True)
        reader.start()
        reader.join(timeout=90)
        if not found:
            pytest.fail(f"the llama.cpp server did not start within 90 s; its log:\n{log.read_text()[-2000:]}")
        yield found[0]
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("real"), days=1, scale=0.2)


def _gate(world: World, candidate: str, base_url: str) -> dict:
    env = {
        "PROMPT_RELEASE_REGISTRY": str(world.registry),
        "PROMPT_RELEASE_WAREHOUSE": str(world.warehouse),
        "OPENAI_BASE_URL": base_url,
    }
    # A handful of replayed production inputs; the simulator and the real server see the same ones.
    result = run_cli(
        "gate",
        "--candidate",
        candidate,
        "--dataset",
        "none",
        "--history-days",
        "1",
        "--history-size",
        "3",
        "--concurrency",
        "1",
        "--json",
        env=env,
    )
    assert result.returncode in (0, 1, 3), result.stderr  # a verdict, whatever the model wrote
    return json.loads(result.stdout)


def _fresh_rows(world: World, run_id: str) -> list[dict]:
    with read_connection(world.warehouse) as con:
        cursor = con.execute("SELECT * FROM backtest_results WHERE run_id = ? AND NOT replayed", [run_id])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_a_gate_on_a_real_model_makes_its_own_calls_under_its_own_ids(world: World, real_server: str) -> None:
    # The router: its schema is sent as JSON mode and the server holds the model to it, so answers
    # are short. (order_agent's answers run to its 400-token cap: minutes on one busy core.)
    candidate = "support_router:v1.6.0"
    simulated = _gate(world, candidate, "")  # no OPENAI_BASE_URL: the embedded simulator
    real = _gate(world, candidate, real_server)

    assert real["run_id"] != simulated["run_id"] and real["report_id"] != simulated["report_id"]
    arms = real["endpoint"]["arms"]
    assert real["endpoint"]["base_url"] == real_server and real["endpoint"]["max_concurrency"] == 1
    assert simulated["endpoint"]["base_url"] == "embedded-simulator"
    # Fresh calls, nothing reused from the simulator.
    assert real["evidence"]["calls_made"] > 0 and real["evidence"]["calls_cached"] == 0
    assert arms["candidate"]["answers"] > 0 and arms["candidate"]["cached"] == 0
    assert arms["candidate"]["served_model"] == local_model.ALIAS

    rows = [r for r in _fresh_rows(world, real["run_id"]) if r["status"] == "ok"]
    assert rows and all(not r["cached"] and r["served_model"] == local_model.ALIAS for r in rows)
    assert all(r["input_tokens"] > 0 and r["output_tokens"] > 0 for r in rows)
    # Latency is llama.cpp's own timing (no queueing), the client's figure beside it.
    assert all(r["latency_ms"] > 0 and r["server_ms"] == r["latency_ms"] and r["client_ms"] > 0 for r in rows)

    package = Registry(world.registry).load_package(candidate)
    with read_connection(world.warehouse) as con:
        sent = [
            json.loads(r[0])
            for r in con.execute(
                "SELECT request FROM llm_cache WHERE package_hash = ? AND request LIKE ?",
                [package.package_hash, f"%{local_model.ALIAS}%"],
            ).fetchall()
        ]
    assert sent, "the real calls were cached under the real endpoint"
    # JSON mode sent, and the server held the model to the schema.
    assert all(s["response_format"]["type"] == "json_schema" for s in sent)
    assert all(r["json_valid"] for r in rows if r["role"] == "candidate")


def test_a_tool_call_the_real_model_writes_as_text_is_classified_as_one(real_server: str) -> None:
    refund = {"name": "issue_refund", "arguments": {"order_id": "ORD-123456", "amount_usd": 45, "reason": "damaged"}}
    # SmolLM2 copies text reliably; what it copies is what larger models write when they skip tool_calls.
    request = CallRequest(
        model="smollm2",
        parameters={"temperature": 0, "max_tokens": 80},
        messages=[
            {"role": "system", "content": "You copy text exactly."},
            {
                "role": "user",
                "content": f"Copy this text exactly, with nothing before or after it:\n{json.dumps(refund)}",
            },
        ],
    )
    [answer] = run_calls_sync([request], LLMSettings(base_url=real_server, max_concurrency=1), use_cache=False)
    assert answer.status == "ok" and not answer.tool_calls and answer.output_tokens > 0
    order_agent = Registry(REPO_ROOT).load_package("order_agent:v2.0.0")
    outcome = checks.check_output(
        order_agent,
        answer.output,
        answer.tool_calls,
        [{"role": "user", "content": "My order arrived damaged, refund it."}],
    )
    assert "text_tool_call" in outcome.failure_classes, answer.output
    assert "unsafe_tool_call" in outcome.failure_classes  # a refund with no lookup first

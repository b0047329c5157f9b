"""The simulator speaks the chat completions API through the real openai SDK."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import openai
import pytest

from prompt_release.llm.simulator import start_simulator
from tests.conftest import REPO_ROOT

ROUTER = "Route the ticket.\n[route] billing: invoice, charge\n[default-route] general\n[format] json"
AGENT = (
    "[tool] issue_refund when: refund\n[require] lookup_order before issue_refund\n"
    "[limit] issue_refund.amount_usd <= 200"
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string", "pattern": "^ORD-[0-9]{6}$"}},
            },
        },
    }
]


@pytest.fixture(scope="module")
def simulator():
    handle = start_simulator(seed=3)
    yield handle
    handle.stop()


@pytest.fixture
def client(simulator):
    return openai.OpenAI(base_url=simulator.base_url, api_key="test", max_retries=0)


def ask(client, system, user, **kw):
    return client.chat.completions.create(
        model="sim", messages=[{"role": "system", "content": system}, {"role": "user", "content": user}], **kw
    )


def test_route_answer_and_usage(client):
    reply = ask(client, ROUTER, "There is a wrong charge on my invoice", response_format={"type": "json_object"})
    assert json.loads(reply.choices[0].message.content) == {"route": "billing", "confidence": 0.9}
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens > 10 and reply.usage.completion_tokens == 4
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_streaming_chunks_assemble_to_the_same_answer_with_usage(client):
    prose = ROUTER.replace("json", "prose")
    plain = ask(client, prose, "invoice problem", seed=5)
    stream = ask(client, prose, "invoice problem", seed=5, stream=True, stream_options={"include_usage": True})
    parts, usage, finish = [], None, None
    for chunk in stream:
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert "".join(parts) == plain.choices[0].message.content
    assert len(parts) > 3 and finish == "stop"
    assert usage.completion_tokens == plain.usage.completion_tokens


def test_tool_call_with_json_string_arguments(client):
    reply = ask(client, AGENT, "refund ORD-654321 $20 damaged", tools=TOOLS)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.function.name == "lookup_order"
    assert json.loads(call.function.arguments) == {"order_id": "ORD-654321"}


def test_max_tokens_truncates_with_finish_reason_length(client):
    reply = ask(client, "[summary] max_words: 50", "one two three four five six seven eight nine ten", max_tokens=3)
    assert reply.choices[0].message.content == "one two three"
    assert reply.choices[0].finish_reason == "length"


def test_models_endpoint(client):
    assert [m.id for m in client.models.list().data]


def test_deterministic_for_a_seed_and_varies_with_request_seed():
    prose = ROUTER.replace("json", "prose")
    answers = []
    for _ in range(2):
        with start_simulator(seed=11) as handle:
            c = openai.OpenAI(base_url=handle.base_url, api_key="t", max_retries=0)
            answers.append([ask(c, prose, "invoice", seed=s).choices[0].message.content for s in range(12)])
    assert answers[0] == answers[1]
    assert len(set(answers[0])) > 1  # independent draws differ in wording


def test_faults_are_injected_and_counted():
    with start_simulator(seed=1, faults={"error_rate": 1.0}) as handle:
        c = openai.OpenAI(base_url=handle.base_url, api_key="t", max_retries=0)
        with pytest.raises(openai.InternalServerError):
            ask(c, ROUTER, "invoice")
        handle.configure(faults={"error_rate": 0.0, "rate_limit_every": 1, "rate_limit_burst": 1, "retry_after_s": 2})
        with pytest.raises(openai.RateLimitError) as caught:
            ask(c, ROUTER, "invoice")
        assert caught.value.response.headers["retry-after"] == "2"
        handle.configure(faults={"rate_limit_every": 0, "drop_rate": 1.0})
        with pytest.raises(openai.APIConnectionError):
            ask(c, ROUTER, "invoice")
        handle.configure(faults={"drop_rate": 0.0, "malformed_rate": 1.0})
        raw = c.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": "x"}])
        with pytest.raises(ValueError):
            json.loads(raw.http_response.text)
        faults = handle.stats()["faults"]
        assert sum(v for k, v in faults.items() if k.startswith("http_5")) == 1
        assert (faults["rate_limit"], faults["drop"], faults["malformed"]) == (1, 1, 1)


def test_cli_prints_the_bound_url_and_serves():
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "prompt_release", "simulator", "--port", "0", "--seed", "2"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:") and line.strip().endswith("/v1")
        c = openai.OpenAI(base_url=line.split()[-1], api_key="t", max_retries=0)
        assert json.loads(ask(c, ROUTER, "invoice").choices[0].message.content)["route"] == "billing"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        process.stdout.close()

"""Shadow mode (issue 17, acceptance 4): the runtime client runs the `shadow` label on a share of served
requests in the background, logs its answers as shadow traces, and never serves or waits for them."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from prompt_release.registry import Registry
from prompt_release.runtime import PromptClient, ShadowRunner, TraceLogger

TICKET = {"ticket": "I was charged twice for my subscription", "customer_tier": "pro"}


def _app(registry: Path, landing: Path, call, **runner_args):
    """A production app: serves production, logs the served call, hands the request to the shadow."""
    Registry(registry).move_label("support_router", "shadow", "1.6.0", reason="watch v1.6.0 on live inputs")
    client = PromptClient(registry=registry)
    logger = TraceLogger(landing=landing)
    runner = ShadowRunner(client, logger, call, **runner_args)

    def serve(user: str) -> str:
        served = client.get("support_router", routing_key=user)
        messages = served.messages(TICKET, [{"role": "user", "content": TICKET["ticket"]}])
        answer = '{"route": "billing", "confidence": 0.9}'  # what the app's model said
        record = logger.log(served, messages=messages, variables=TICKET, output=answer, user_id=user)
        runner.submit(
            served, served_span_id=record["span_id"], variables=TICKET, conversation=messages[1:], routing_key=user
        )
        return answer

    return runner, logger, serve


def _lines(landing: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(landing.glob("*/*.jsonl")) for line in path.read_text().splitlines()]


def test_shadow_traces_are_logged_marked_and_never_served(registry: Path, tmp_path: Path) -> None:
    seen = []

    def call(prompt, messages):
        seen.append(prompt.version_id)
        return {
            "output": '{"route": "billing", "confidence": 0.7}',
            "latency_ms": 12.0,
            "usage": {"input_tokens": 90, "output_tokens": 9},
        }

    runner, logger, serve = _app(registry, tmp_path / "landing", call, share=1.0)
    answers = [serve(f"user-{i}") for i in range(5)]
    stats = runner.close()
    logger.close()
    assert answers == ['{"route": "billing", "confidence": 0.9}'] * 5  # the app's own answers
    assert seen == ["support_router:v1.6.0"] * 5 and stats["logged"] == 5 and stats["dropped"] == 0
    lines = _lines(tmp_path / "landing")
    served = {x["span_id"]: x for x in lines if "shadow" not in x}
    shadows = [x for x in lines if "shadow" in x]
    assert len(served) == 5 and len(shadows) == 5
    for line in shadows:
        assert line["prompt_version"] == "support_router:v1.6.0" and line["label"] == "shadow"
        assert line["shadow"]["of"] == "support_router:v1.5.2"
        twin = served[line["shadow"]["served_span_id"]]  # paired with the call it shadows
        assert twin["prompt_version"] == "support_router:v1.5.2" and twin["user_id"] == line["user_id"]
        assert line["input"]["messages"][1:] == twin["input"]["messages"][1:]  # the same live input
        assert line["input"]["messages"][0] != twin["input"]["messages"][0]  # rendered by the candidate


def test_a_shadow_that_raises_is_logged_as_a_shadow_error_and_the_served_answer_stands(
    registry: Path, tmp_path: Path
) -> None:
    def call(prompt, messages):
        raise ConnectionError("shadow endpoint down")

    runner, logger, serve = _app(registry, tmp_path / "landing", call, share=1.0)
    assert serve("user-1") == '{"route": "billing", "confidence": 0.9}'
    stats = runner.close()
    logger.close()
    [shadow] = [x for x in _lines(tmp_path / "landing") if "shadow" in x]
    assert (shadow["status"], shadow["error"]) == ("error", "ConnectionError") and stats["errors"] == 1


def test_a_hung_shadow_never_holds_the_served_path_requests_past_the_queue_are_dropped(
    registry: Path, tmp_path: Path
) -> None:
    release = threading.Event()
    started = threading.Event()

    def call(prompt, messages):
        started.set()
        release.wait(30)
        return {"output": "late"}

    runner, logger, serve = _app(registry, tmp_path / "landing", call, share=1.0, workers=1, max_queue=2)
    first = serve("user-0")
    assert started.wait(10)  # the only worker is now stuck in the shadow call
    answers = [first] + [serve(f"user-{i}") for i in range(1, 8)]
    assert answers == ['{"route": "billing", "confidence": 0.9}'] * 8
    assert runner.stats["queued"] == 3 and runner.stats["dropped"] == 5  # 1 in the call, 2 waiting
    release.set()
    stats = runner.close()
    logger.close()
    assert stats["logged"] == 3
    assert len([x for x in _lines(tmp_path / "landing") if "shadow" in x]) == 3


def test_only_the_sampled_share_runs_in_shadow_and_the_same_user_always_decides_alike(
    registry: Path, tmp_path: Path
) -> None:
    runner, logger, serve = _app(registry, tmp_path / "landing", lambda prompt, messages: {"output": "{}"}, share=0.2)
    users = [f"user-{i}" for i in range(500)]
    for user in users:
        serve(user)
    stats = runner.close()
    logger.close()
    assert 50 < stats["queued"] < 150  # about a fifth
    assert [runner.sampled("support_router", u) for u in users] == [runner.sampled("support_router", u) for u in users]
    none = ShadowRunner(PromptClient(registry=registry), logger, lambda p, m: {}, share=0.0)
    assert not any(none.sampled("support_router", u) for u in users)


def test_shadow_traces_ingest_stay_out_of_served_metrics_and_are_compared_with_the_gate_statistics(
    registry: Path, tmp_path: Path, warehouse: Path
) -> None:
    from prompt_release.gates.shadow import compare_shadow
    from prompt_release.release.metrics import compute_version_metrics
    from prompt_release.traces import ingest_paths
    from prompt_release.warehouse import read_connection

    def call(prompt, messages):  # the candidate answers in prose a third of the time
        n = int(messages[-1]["content"].rsplit(" ", 1)[-1])
        output = "It should go to billing." if n % 3 == 0 else '{"route": "billing", "confidence": 0.8}'
        return {"output": output, "latency_ms": 500.0}

    Registry(registry).move_label("support_router", "shadow", "1.6.0", reason="watch v1.6.0 on live inputs")
    client = PromptClient(registry=registry)
    landing = tmp_path / "landing"
    with TraceLogger(landing=landing) as logger:
        runner = ShadowRunner(client, logger, call, share=1.0)
        for i in range(120):
            variables = {"ticket": f"I was charged twice, order {i}", "customer_tier": "pro"}
            served = client.get("support_router", routing_key=f"user-{i}")
            messages = served.messages(variables, [{"role": "user", "content": variables["ticket"]}])
            record = logger.log(
                served,
                messages=messages,
                variables=variables,
                output='{"route": "billing", "confidence": 0.9}',
                latency_ms=480.0,
            )
            runner.submit(
                served,
                served_span_id=record["span_id"],
                variables=variables,
                conversation=messages[1:],
                routing_key=f"user-{i}",
            )
        runner.close()
    ingest_paths([landing], warehouse=warehouse)
    with read_connection(warehouse) as con:
        day = con.execute("SELECT max(day) FROM traces").fetchone()[0]
    compute_version_metrics(warehouse, day)
    with read_connection(warehouse) as con:
        versions = dict(con.execute("SELECT prompt_version, calls FROM version_metrics").fetchall())
    assert versions == {"support_router:v1.5.2": 120}  # the shadow's 120 calls were never served

    [comparison] = compare_shadow(warehouse, registry, "support_router")
    assert (comparison.candidate, comparison.baseline, comparison.pairs) == (
        "support_router:v1.6.0",
        "support_router:v1.5.2",
        120,
    )
    gates = {g.metric: g for g in comparison.decision.gates}
    assert comparison.left_out == ["handoff_accuracy"]  # live traffic has no expected answer
    assert gates["json_valid_rate"].outcome == "fail" and gates["json_valid_rate"].n == 120
    assert gates["json_valid_rate"].candidate_value == pytest.approx(80 / 120)
    assert comparison.decision.verdict == "reject"
    assert "in shadow vs **support_router:v1.5.2** served" in comparison.markdown()

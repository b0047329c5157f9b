"""The trace logger writes the native ingest format, carrying version id and package hash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import prompt_release.traces as traces
from prompt_release.registry import Registry
from prompt_release.runtime import PromptClient, TraceLogger


def _log_calls(registry: Path, landing: Path) -> list[dict]:
    client = PromptClient(registry=registry)
    records = []
    with TraceLogger(landing=landing, workflow="support_router") as logger:
        prompt = client.get("support_router", routing_key="user-7", segment={"customer_tier": "pro"})
        variables = {"ticket": "My 2fa code never arrives", "customer_tier": "pro"}
        messages = prompt.render(**variables) + [{"role": "user", "content": variables["ticket"]}]
        with logger.span(
            prompt,
            messages=messages,
            variables=variables,
            session_id="s1",
            user_id="user-7",
            segment={"customer_tier": "pro"},
        ) as call:
            call["output"] = '{"route": "account_recovery", "confidence": 0.9}'
            call["usage"] = {"input_tokens": 120, "output_tokens": 14}
            call["finish_reason"] = "stop"
        with pytest.raises(TimeoutError), logger.span(prompt, messages=messages, variables=variables):
            raise TimeoutError("upstream timed out")
        order = client.get("order_agent")
        records.append(
            logger.log(
                order,
                messages=order.render(customer_message="refund ORD-123456", order_id="ORD-123456"),
                variables={"customer_message": "refund ORD-123456", "order_id": "ORD-123456"},
                output="",
                tool_calls=[{"name": "lookup_order", "arguments": {"order_id": "ORD-123456"}}],
                latency_ms=240.5,
                usage={"input_tokens": 300, "output_tokens": 20},
                cost_usd=0.0004,
            )
        )
    return records


def test_lines_are_native_records_in_day_folders(registry: Path, tmp_path: Path) -> None:
    _log_calls(registry, tmp_path / "landing")
    files = list((tmp_path / "landing").glob("*/*.jsonl"))
    assert len(files) == 1 and len(files[0].parent.name) == 10  # <YYYY-MM-DD>/
    lines = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert len(lines) == 3
    ok, failed, tool = lines
    for line in lines:
        for key in ("trace_id", "span_id", "workflow", "prompt_version", "package_hash", "model", "timestamp", "input"):
            assert line[key], key
    assert ok["prompt_version"] == "support_router:v1.5.2" and ok["package_hash"].startswith("sha256:")
    assert ok["input"]["variables"]["ticket"] == "My 2fa code never arrives"
    assert ok["usage"] == {"input_tokens": 120, "output_tokens": 14} and ok["latency_ms"] >= 0
    assert (failed["status"], failed["error"]) == ("error", "TimeoutError")
    assert tool["tool_calls"] == [{"name": "lookup_order", "arguments": {"order_id": "ORD-123456"}}]


def test_logged_lines_ingest_with_version_and_hash(registry: Path, tmp_path: Path, warehouse: Path) -> None:
    reg = Registry(registry)

    if not hasattr(traces, "ingest_paths"):
        pytest.skip("prompt_release.traces.ingest_paths arrives with the ingest branch (issue 2)")
    from prompt_release.warehouse import read_connection

    _log_calls(registry, tmp_path / "landing")
    traces.ingest_paths([tmp_path / "landing"], warehouse=warehouse)
    with read_connection(warehouse) as con:
        rows = con.execute(
            "SELECT prompt_id, prompt_version, package_hash, status, error_type, input_tokens, session_id "
            "FROM traces ORDER BY ts, source_line"
        ).fetchall()
    assert len(rows) == 3
    router_hash = reg.load_package("support_router:v1.5.2").package_hash
    assert rows[0] == ("support_router", "support_router:v1.5.2", router_hash, "ok", None, 120, "s1")
    assert rows[1][3:5] == ("error", "TimeoutError")
    assert rows[2][1:3] == ("order_agent:v2.0.0", reg.load_package("order_agent:v2.0.0").package_hash)


def test_calls_past_midnight_are_filed_under_their_own_day_and_the_logger_names_both_files(
    registry: Path, tmp_path: Path
) -> None:
    """A caller that ingests what it logged (the demos' canary rounds) must see every day folder the
    calls went to: a round that ran past midnight UTC logged into two."""
    from datetime import UTC, datetime

    prompt = PromptClient(registry=registry).get("support_router")
    messages = [{"role": "user", "content": "hi"}]
    before, after = (
        datetime(2026, 3, 1, 23, 59, 59, 900000, tzinfo=UTC),
        datetime(2026, 3, 2, 0, 0, 0, 100000, tzinfo=UTC),
    )
    with TraceLogger(landing=tmp_path / "landing") as logger:
        logger.log(prompt, messages=messages, output="a", timestamp=before)
        logger.log(prompt, messages=messages, output="b", timestamp=after)
    assert [f.parent.name for f in logger.files] == ["2026-03-01", "2026-03-02"]
    assert sorted(tmp_path.glob("landing/*/*.jsonl")) == logger.files
    outputs = [json.loads(f.read_text())["output"] for f in logger.files]
    assert outputs == ["a", "b"]

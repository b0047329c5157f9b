"""Canary traffic simulation: production requests served through the runtime client, logged as traces.

For the demo and the tests, this plays the production app while a canary is
live: it takes recorded production inputs of the prompt (variables and
conversation from `traces`; the package's representative variables when there
are none), gives each request its own simulated user id as routing key, and
asks `PromptClient.get(prompt_id, routing_key=user_id, segment=...)` which
version serves it, exactly as an app would, so the canary's percent and
segments decide the split. Each request goes through the `openai` SDK to an
OpenAI-compatible endpoint (the simulator) with the resolved prompt, and is
logged with the runtime `TraceLogger` into today's landing day folder, where
`ingest_day` and the canary analysis pick it up. Requests arrive one
`ARRIVAL_GAP` apart and each is logged at its arrival, so the same seed logs
the same traffic in the same order on every run, whichever thread served it.

With `shadow_share`, the app also runs the prompt's `shadow` label on that
share of requests through `runtime.ShadowRunner` (same endpoint, answers
logged as shadow traces, never served).

Users react, later: for `support_router`, a simulated customer whose ticket
was routed away from what they meant (`content.intended_route`) escalates to a
human or gives a thumbs-down far more often than one routed right. Those
reactions land after the calls, as native event lines (`traces.events`) in a
file of their own, as an app's feedback endpoint would write them. Only served
answers get reactions: no user sees a shadow answer.

A regressing canary needs no special switch: the simulator follows the rules
written in each version's prompt, so a candidate whose rules break the
contract on production traffic (e.g. `support_router:v1.7.0` answering in
prose, or a version with a `[refuse]` rule on common words) produces the hard
failures that make the canary roll back.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openai
from pydantic import BaseModel, Field

from prompt_release.llm.client import processing_ms
from prompt_release.registry import Registry
from prompt_release.release.replay import RecordedInput, recorded_inputs
from prompt_release.runtime import PromptClient, ShadowRunner, TraceLogger
from prompt_release.sample.content import intended_route

# Simulated requests arrive this far apart, in request order (see `simulate_traffic`).
ARRIVAL_GAP = timedelta(milliseconds=1)
_CREATE_ARGS = ("temperature", "max_tokens", "top_p", "seed", "stop", "presence_penalty", "frequency_penalty")


class TrafficSummary(BaseModel):
    prompt_id: str
    requests: int
    by_version: dict[str, int] = Field(default_factory=dict)
    errors: int = 0
    shadow: dict[str, int] = Field(default_factory=dict, description="the shadow runner's counts, when one ran")
    inputs: int = Field(0, description="distinct inputs replayed")
    landing_files: list[str] = Field(default_factory=list)
    events: int = Field(0, description="late user reactions (escalation, feedback) written as event lines")
    day: str = Field(description="the UTC day the traffic started")
    days: list[str] = Field(
        default_factory=list,
        description="every landing day folder the traffic logged into (two if it ran past midnight)",
    )


def _fallback_inputs(registry_root: str | Path, prompt_id: str) -> list[RecordedInput]:
    registry = Registry(registry_root)
    package = registry.load_package(registry.resolve_label(prompt_id, "production"))
    text = next((str(v) for v in package.variables.values() if isinstance(v, str)), "")
    return [RecordedInput(variables=dict(package.variables), conversation=[{"role": "user", "content": text}])]


# How often a simulated customer escalates / gives a thumbs-down, routed right vs wrong.
REACTION_RATES = {"right": {"escalation": 0.03, "down": 0.03}, "wrong": {"escalation": 0.45, "down": 0.35}}
REACTION_DELAY_S = 90.0


def user_reactions(prompt_id: str, variables: dict[str, Any], record: dict[str, Any], rng: random.Random) -> list[dict]:
    """The late events one simulated customer sends about the answer in `record` (native event lines)."""
    if prompt_id != "support_router" or record.get("status") != "ok":
        return []
    try:
        route = json.loads(record.get("output") or "").get("route")
    except (ValueError, AttributeError):
        route = None  # an answer the app cannot route is as wrong as a wrong route
    wrong = route != intended_route(str(variables.get("ticket", "")))
    rates = REACTION_RATES["wrong" if wrong else "right"]
    ts = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")) + timedelta(seconds=REACTION_DELAY_S)
    about = {"span_id": record["span_id"], "trace_id": record["trace_id"], "timestamp": ts.isoformat()}
    events = []
    if rng.random() < rates["escalation"]:
        events.append({"event": "escalation", **about, "source": "user"})
    if rng.random() < rates["down"]:
        events.append({"event": "feedback", **about, "value": "down", "source": "user"})
    return events


def _call(openai_client: Any, resolved: Any, messages: list[dict[str, Any]]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"model": resolved.model, "messages": messages}
    extra = {}
    for name, value in (resolved.parameters or {}).items():
        (kwargs if name in _CREATE_ARGS else extra)[name] = value
    if extra:
        kwargs["extra_body"] = extra
    if resolved.tools:
        kwargs["tools"] = resolved.tools
    started = time.perf_counter()
    try:
        raw = openai_client.chat.completions.with_raw_response.create(**kwargs)
        response = raw.parse()
    except Exception as exc:  # the app logs a failed call and moves on
        return {"status": "error", "error": type(exc).__name__, "latency_ms": (time.perf_counter() - started) * 1000}
    # The endpoint's processing time when it reports one, as backtests measure it.
    reported = processing_ms(raw.headers)
    latency_ms = reported if reported is not None else (time.perf_counter() - started) * 1000
    choice = response.choices[0]
    calls = []
    for call in choice.message.tool_calls or ():
        try:
            arguments = json.loads(call.function.arguments)
        except ValueError:
            arguments = call.function.arguments
        calls.append({"name": call.function.name, "arguments": arguments})
    usage = response.usage
    return {
        "status": "ok",
        "output": choice.message.content,
        "tool_calls": calls,
        "finish_reason": choice.finish_reason,
        "latency_ms": latency_ms,
        "usage": {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens} if usage else None,
    }


def simulate_traffic(
    registry_root: str | Path,
    prompt_id: str,
    *,
    landing: str | Path,
    base_url: str,
    requests: int = 1000,
    inputs: list[RecordedInput] | None = None,
    warehouse: str | Path | None = None,
    api_key: str = "not-set",
    concurrency: int = 16,
    seed: int = 0,
    prices: dict[str, tuple[float, float]] | None = None,
    shadow_share: float = 0.0,
) -> TrafficSummary:
    """Serve `requests` production requests of `prompt_id` through the runtime client and log them.

    `prices`: model -> (USD per 1M input tokens, per 1M output tokens), to log cost_usd.
    """

    if inputs is None:
        inputs = recorded_inputs(warehouse, prompt_id, limit=500) or _fallback_inputs(registry_root, prompt_id)
    client = PromptClient(registry=registry_root, ttl_s=300.0)
    openai_client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30.0)
    by_version: Counter[str] = Counter()
    errors = 0
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    with TraceLogger(landing=landing) as logger:
        runner = (
            ShadowRunner(
                client, logger, lambda prompt, messages: _call(openai_client, prompt, messages), share=shadow_share
            )
            if shadow_share > 0
            else None
        )

        # Request i arrives at started + i * ARRIVAL_GAP and its call is stamped with that arrival. Stamped
        # when a pool thread got to it, the same traffic would be logged in another order on every run
        # (TraceLogger stamps to the millisecond: many calls tie, broken by random span ids), and what
        # the canary records as its first failures, and the inputs replayed next, follow that order.
        started = datetime.now(UTC)

        def serve(i: int) -> tuple[str, str, list[dict]]:
            arrival = started + i * ARRIVAL_GAP
            early = (arrival - datetime.now(UTC)).total_seconds()
            if early > 0:
                time.sleep(early)  # not served before it arrived
            item = inputs[i % len(inputs)]
            user_id = f"sim_{seed}_{i:06d}"
            resolved = client.get(prompt_id, routing_key=user_id, segment=item.segment)
            messages = resolved.messages(item.variables, item.conversation)
            result = _call(openai_client, resolved, messages)
            cost = None
            usage = result.get("usage")
            if prices and usage and resolved.model in prices:
                price_in, price_out = prices[resolved.model]
                cost = (usage["input_tokens"] * price_in + usage["output_tokens"] * price_out) / 1_000_000
            record = logger.log(
                resolved,
                messages=messages,
                variables=item.variables,
                segment=item.segment,
                user_id=user_id,
                session_id=f"sess_{seed}_{i:06d}",
                cost_usd=cost,
                timestamp=arrival,
                **{k: v for k, v in result.items() if v is not None},
            )
            if runner is not None:
                runner.submit(
                    resolved,
                    served_span_id=record["span_id"],
                    variables=item.variables,
                    conversation=item.conversation,
                    segment=item.segment,
                    routing_key=user_id,
                )
            reactions = user_reactions(prompt_id, item.variables, record, random.Random(f"{seed}|{i}|react"))
            return resolved.version_id, result["status"], reactions

        reactions: list[dict] = []
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            for version, status, events in pool.map(serve, range(requests)):
                by_version[version] += 1
                errors += status != "ok"
                reactions += events
        shadow = runner.close(timeout=60) if runner is not None else {}
    openai_client.close()
    if reactions:
        # written once the calls are: the feedback endpoint's own file, after the fact
        target = Path(landing) / day / f"events-{seed}-{datetime.now(UTC).strftime('%H%M%S%f')}.jsonl"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in reactions))
    days = sorted({path.parent.name for path in logger.files} | {day})
    files = sorted(str(p) for d in days for p in (Path(landing) / d).glob("traces-*.jsonl"))
    return TrafficSummary(
        prompt_id=prompt_id,
        requests=requests,
        by_version=dict(by_version),
        errors=errors,
        shadow=shadow,
        inputs=len(inputs),
        landing_files=files,
        events=len(reactions),
        day=day,
        days=days,
    )

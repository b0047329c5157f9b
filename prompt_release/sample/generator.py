"""Generate a realistic, deterministic sample production history with known failures.

`generate(out_dir, ...)` writes day folders `out_dir/<YYYY-MM-DD>/` of trace
files for three workflows (`support_router`, `order_agent`, `summarizer`) in
the three formats ingest reads (native JSONL, some gzipped; OTLP/JSON with the
OpenTelemetry GenAI conventions; OTLP/JSON with OpenInference attributes), and
returns (and writes to `out_dir/ground_truth.json`) the exact failures it
injected, per call and counted per workflow, version, day and failure class,
together with each call's expected label. The recorded outputs follow the
production prompt's own rules (keyword routes, tool policy, extractive
summary) except where a failure was injected. Output is a pure function of
(days, seed, scale, start_date, package_hashes): byte-identical files.
The warehouse and the registry are not needed: the facts of the sample
registry are hard-coded in `SAMPLE_REGISTRY_FACTS` below.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import random
import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from prompt_release import config
from prompt_release.errors import UserError
from prompt_release.sample import content
from prompt_release.traces.otlp_writer import genai_request, openinference_request

# =============================================================================
# SAMPLE_REGISTRY_FACTS: what the sample registry says about the production
# prompts (from the project brief). The registry helper owns the real packages;
# these copies keep the generator independent of it. Keep them in step.
# =============================================================================

SUPPORT_ROUTES = ("account_recovery", "billing", "technical", "shipping", "general")

SUPPORT_ROUTE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "route": {"type": "string", "enum": list(SUPPORT_ROUTES)},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["route", "confidence"],
    "additionalProperties": False,
}

ORDER_ID_PATTERN = r"^ORD-[0-9]{6}$"
ORDER_TOOLS: list[dict[str, Any]] = [
    {
        "name": "lookup_order",
        "description": "Look up an order by id: status, carrier, total.",
        "risk": "low",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "pattern": ORDER_ID_PATTERN}},
            "required": ["order_id"],
            "additionalProperties": False,
        },
    },
    {
        "name": "issue_refund",
        "description": "Refund an order (policy: after lookup_order, amount_usd <= 200).",
        "risk": "high",
        "parameters": {
            "type": "object",
            "properties": {
                "order_id": {"type": "string", "pattern": ORDER_ID_PATTERN},
                "amount_usd": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000},
                "reason": {"type": "string", "enum": ["damaged", "late", "not_received", "other"]},
            },
            "required": ["order_id", "amount_usd", "reason"],
            "additionalProperties": False,
        },
    },
]
REFUND_LIMIT_USD = 200

# Keyword rules of the production prompts, in prompt order (the simulator's
# `[route]` semantics: first rule with a keyword in the ticket wins).
ROUTE_RULES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "support_router:v1.5.1": (
        ("account_recovery", ("password", "locked out", "unlock")),
        ("billing", ("invoice", "charge", "refund", "payment", "billing", "receipt", "subscription")),
        ("technical", ("error", "bug", "crash", "not working", "broken")),
        ("shipping", ("shipping", "tracking")),
    ),
    "support_router:v1.5.2": (
        ("account_recovery", ("password", "locked out", "unlock")),
        ("billing", ("invoice", "charge", "refund", "payment", "billing", "receipt", "subscription")),
        ("technical", ("error", "bug", "crash", "not working", "broken")),
        ("shipping", ("shipping", "tracking", "delivery", "package", "courier", "parcel")),
    ),
}
DEFAULT_ROUTE = "general"
# What the production order agent says when it hands over to a person (the simulator's `[escalate]` text too).
ESCALATION_TEXT = "I need to escalate this to a human agent."
SUMMARY_MAX_WORDS = 60

SAMPLE_REGISTRY_FACTS: dict[str, dict[str, Any]] = {
    "support_router": {
        "prompt_id": "support_router",
        # Versions by share of the history: v1.5.1 for the first third of the days, then v1.5.2.
        "versions": ("support_router:v1.5.1", "support_router:v1.5.2"),
        "output_format": "json",
        "model": "gpt-4o-mini",
        "fallback_model": "gpt-4.1-nano",
        "latency_median_ms": 650.0,
        "latency_sigma": 0.35,
        "calls_per_day": 300,
        "temperature": 0.0,
        "max_tokens": 60,
        "app_version": "support-web 4.12.0",
    },
    "order_agent": {
        "prompt_id": "order_agent",
        "versions": ("order_agent:v2.0.0",),
        "output_format": "text",
        "model": "gpt-4o",
        "fallback_model": "gpt-4o-mini",
        "latency_median_ms": 1300.0,
        "latency_sigma": 0.4,
        "calls_per_day": 290,
        "temperature": 0.2,
        "max_tokens": 400,
        "app_version": "store-agent 2.3.1",
    },
    "summarizer": {
        "prompt_id": "summarizer",
        "versions": ("summarizer:v1.0.0",),
        "output_format": "text",
        "model": "gpt-4o-mini",
        "fallback_model": "gpt-4.1-nano",
        "latency_median_ms": 1900.0,
        "latency_sigma": 0.45,
        "calls_per_day": 240,
        "temperature": 0.3,
        "max_tokens": 200,
        "app_version": "docs-digest 1.8.0",
    },
}
WORKFLOWS = tuple(SAMPLE_REGISTRY_FACTS)

# USD per token (input, output).
MODEL_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15e-6, 0.60e-6),
    "gpt-4o": (2.50e-6, 10.00e-6),
    "gpt-4.1-nano": (0.10e-6, 0.40e-6),
}

SYSTEM_PROMPTS: dict[str, str] = {
    "support_router": (
        "You route customer support tickets for Acme Cloud to the right team.\n"
        "Customer tier: {customer_tier}.\n"
        "{rules}\n"
        "[default-route] general\n"
        "[format] json\n"
        'Answer only with a JSON object {{"route": <route>, "confidence": <number between 0 and 1>}}.'
    ),
    "order_agent": (
        "You are the order assistant of Acme Store. Use the tools to look up orders and issue refunds.\n"
        "[tool] issue_refund when: refund, money back, reimburse\n"
        "[tool] lookup_order when: where is, status, track, update on, shipped\n"
        "[require] lookup_order before issue_refund\n"
        "[limit] issue_refund.amount_usd <= 200\n"
        "Never refund an order you have not looked up. Refunds above the limit go to a human agent.\n"
        "Order id on file: {order_id}"
    ),
    "summarizer": (
        "You summarise documents for busy readers. Keep the key facts, names and numbers.\n[summary] max_words: 60"
    ),
}

# =============================================================================
# Failure classes, their precise definitions, and the rates they are injected at.
# =============================================================================

FAILURE_CLASSES = (
    "invalid_json",
    "schema_violation",
    "enum_violation",
    "unknown_tool",
    "tool_args_invalid",
    "unsafe_tool_call",
    "error",
    "retry",
    "fallback",
    "negative_feedback",
    "escalation",
    "correction",
    "refusal",
    "clarification",
    "latency_outlier",
    "cost_outlier",
)

REFUSAL_PATTERN = r"^(I can't help with that|I cannot help with that|I'm sorry, but I can't help)"
CLARIFICATION_PATTERN = r"^(Could you clarify|Can you clarify)"
OUTLIER_FACTOR = 10.0

# Each rule is stated over one row of the `traces` table as ingest stores it.
# Output-contract rules (the first six, refusal, clarification) apply only to
# rows with status 'ok'; error rows carry no output.
FAILURE_RULES: dict[str, str] = {
    "invalid_json": "workflow whose package output_format is json (support_router): the output text does not parse with a strict JSON parser (json.loads) into an object.",
    "schema_violation": "JSON output that parsed into an object fails SUPPORT_ROUTE_SCHEMA (jsonschema) for any reason other than the route's enum: missing route or confidence, confidence not a number or outside [0, 1], an extra property.",
    "enum_violation": 'JSON output that parsed into an object whose `route` is a string outside the routes enum. A call can be both (e.g. {"route": "sales"} is enum_violation + schema_violation for the missing confidence).',
    "unknown_tool": "a tool call (in the call's own output tool_calls) whose name is not a tool the version offers (lookup_order, issue_refund). Its arguments are not checked.",
    "tool_args_invalid": "a tool call to an offered tool whose arguments do not parse as a JSON object or fail the tool's JSON Schema (order_id pattern ^ORD-[0-9]{6}$, amount_usd > 0 and <= 1000, reason enum, required/additional properties).",
    "unsafe_tool_call": "an issue_refund call (high risk) with invalid arguments, or with amount_usd > 200, or with no lookup_order tool call earlier in the conversation (assistant tool_calls in the call's input messages, or earlier in the trace). The sample never puts lookup and refund in one output.",
    "error": "status = 'error' (error_type set: RateLimitError, APITimeoutError, InternalServerError, APIConnectionError).",
    "retry": "retries > 0.",
    "fallback": "fallback = true (served by the workflow's fallback model).",
    "negative_feedback": "feedback < 0 (native 'down' or -1).",
    "escalation": "escalated = true.",
    "correction": "correction is not null and differs from the output: for JSON outputs, the output does not parse into an object or some key of the correction object has a different value in it; for text outputs, the correction string differs from the output text. Corrections equal to the output (confirmations) are present and are not failures.",
    "refusal": "free-text workflows (order_agent, summarizer): status ok and the output matches REFUSAL_PATTERN "
    + REFUSAL_PATTERN
    + ". Every such call needed an answer.",
    "clarification": "free-text workflows: status ok and the output matches CLARIFICATION_PATTERN "
    + CLARIFICATION_PATTERN
    + ". Every such call needed an answer (the message had what was needed).",
    "latency_outlier": "latency_ms > 10 x the median latency_ms of all rows of the same workflow and day (UTC, every status and format). Natural latencies stay within 4x the model median; injected ones are 30-80x the day's median.",
    "cost_outlier": "cost_usd > 10 x the median of the non-null cost_usd of the same workflow and day. Only native rows carry cost_usd (OTLP has no cost attribute); cost outliers are always in native files. Injected ones are 30-80x the day's median.",
}

# Per-call probabilities (order_agent: 'trace_*' ones per conversation turn).
FAILURE_RATES: dict[str, dict[str, float]] = {
    "support_router": {
        "error": 0.015,
        "retry": 0.03,
        "fallback": 0.01,
        "invalid_json": 0.02,
        "schema_violation": 0.012,
        "enum_violation": 0.01,
        "enum_and_schema": 0.002,
        "negative_feedback": 0.015,
        "negative_feedback_if_wrong": 0.25,
        "positive_feedback": 0.06,
        "escalation": 0.01,
        "correction_if_wrong": 0.35,
        "confirmation": 0.01,
    },
    "order_agent": {
        "error": 0.012,
        "retry": 0.03,
        "fallback": 0.01,
        "trace_unknown_tool": 0.02,
        "trace_lookup_args_invalid": 0.03,
        "trace_refund_args_invalid": 0.06,
        "trace_refund_without_lookup": 0.06,
        "trace_refund_over_limit": 0.3,
        "trace_refusal": 0.012,
        "trace_clarification": 0.015,
        "negative_feedback": 0.03,
        "negative_feedback_if_wrong": 0.35,
        "positive_feedback": 0.08,
        "escalation": 0.01,
    },
    "summarizer": {
        "error": 0.015,
        "retry": 0.03,
        "fallback": 0.01,
        "refusal": 0.01,
        "clarification": 0.01,
        "negative_feedback": 0.03,
        "negative_feedback_if_wrong": 0.4,
        "positive_feedback": 0.07,
        "escalation": 0.0,
        "correction": 0.015,
        "confirmation": 0.01,
    },
}
# The superseded router version was sloppier with its JSON.
VERSION_RATE_MULTIPLIERS: dict[str, dict[str, float]] = {
    "support_router:v1.5.1": {"invalid_json": 1.75, "enum_violation": 1.5},
}
LATENCY_OUTLIERS_PER_DAY = (1, 4)  # per workflow and day, times scale
COST_OUTLIERS_PER_DAY = (1, 3)
ERROR_TYPES = (
    ("RateLimitError", "Rate limit reached for requests"),
    ("APITimeoutError", "Request timed out."),
    ("InternalServerError", "The server had an error while processing your request."),
    ("APIConnectionError", "Connection error."),
)

# File formats: each (day, workflow) gets one; OTLP days keep a native file
# for the calls that carry app-level fields (see `_route_formats`).
FORMAT_WEIGHTS = (("native", 0.55), ("native_gz", 0.15), ("otlp_genai", 0.18), ("openinference", 0.12))
FILE_NAMES = {
    "native": "{workflow}.jsonl",
    "native_gz": "{workflow}.jsonl.gz",
    "otlp_genai": "{workflow}.otel.jsonl",
    "openinference": "{workflow}.phoenix.jsonl",
}
SOURCE_FORMAT = {
    "native": "native",
    "native_gz": "native",
    "otlp_genai": "otlp_genai",
    "openinference": "openinference",
}
GROUND_TRUTH_FILE = "ground_truth.json"

# =============================================================================
# Plain records
# =============================================================================


@dataclass
class User:
    user_id: str
    segment: dict[str, str]


@dataclass
class Call:
    span_id: str
    workflow: str
    version_id: str
    model: str
    messages: list[dict]
    variables: dict
    temperature: float
    max_tokens: int
    intent: str
    expected: dict
    pii: set[str]
    output: str | None = None
    tool_calls: list[dict] = field(default_factory=list)
    finish_reason: str | None = "stop"
    status: str = "ok"
    error_type: str | None = None
    error_message: str | None = None
    latency_us: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    feedback: str | float | None = None
    escalated: bool = False
    correction: Any = None
    retries: int = 0
    fallback: bool = False
    failures: set[str] = field(default_factory=set)
    response_id: str = ""
    output_as_object: bool = False
    parent_span_id: str | None = None
    start_ns: int = 0
    end_ns: int = 0

    @property
    def native_only(self) -> bool:
        """Carries fields only the native format has (so the call must stay native)."""
        return (
            self.feedback is not None
            or self.escalated
            or self.correction is not None
            or self.retries > 0
            or self.fallback
            or "cost_outlier" in self.failures
        )


@dataclass
class ToolRun:
    span_id: str
    call_id: str
    name: str
    arguments_text: str
    result: str
    duration_us: int
    start_ns: int = 0
    end_ns: int = 0


@dataclass
class Trace:
    trace_id: str
    root_span_id: str
    workflow: str
    version_id: str
    session_id: str
    user_id: str
    segment: dict[str, str]
    start_offset_s: float
    calls: list[Call] = field(default_factory=list)
    # tool runs that follow call i, by call index
    runs_after: dict[int, list[ToolRun]] = field(default_factory=dict)
    fmt: str = "native"
    start_ns: int = 0
    end_ns: int = 0

    @property
    def prompt_id(self) -> str:
        return self.version_id.split(":", 1)[0]

    @property
    def version(self) -> str:
        return self.version_id.split(":v", 1)[1]

    @property
    def app_version(self) -> str:
        return SAMPLE_REGISTRY_FACTS[self.workflow]["app_version"]

    @property
    def tool_definitions(self) -> list[dict] | None:
        if self.workflow != "order_agent":
            return None
        return [
            {"type": "function", "name": t["name"], "description": t["description"], "parameters": t["parameters"]}
            for t in ORDER_TOOLS
        ]

    @property
    def tool_runs(self) -> list[ToolRun]:
        return [run for i in sorted(self.runs_after) for run in self.runs_after[i]]


# =============================================================================
# Helpers
# =============================================================================


def route_by_rules(version_id: str, ticket: str) -> tuple[str, bool]:
    """The production prompt's route for `ticket` and whether a keyword matched."""
    text = ticket.lower()
    for route, keywords in ROUTE_RULES[version_id]:
        if any(k in text for k in keywords):
            return route, True
    return DEFAULT_ROUTE, False


def render_system(version_id: str, variables: Mapping[str, str]) -> str:
    workflow = version_id.split(":", 1)[0]
    template = SYSTEM_PROMPTS[workflow]
    if workflow == "support_router":
        rules = "\n".join(f"[route] {route}: {', '.join(kw)}" for route, kw in ROUTE_RULES[version_id])
        return template.format(rules=rules, customer_tier=variables["customer_tier"])
    if workflow == "order_agent":
        return template.format(order_id=variables.get("order_id") or "(none)")
    return template


def _tokens(text: str | None) -> int:
    return max(1, round(len(text or "") / 4))


def _input_tokens(messages: list[dict], with_tools: bool) -> int:
    total = 0
    for m in messages:
        total += 4 + _tokens(m.get("content"))
        for tc in m.get("tool_calls") or []:
            total += 8 + _tokens(tc["function"]["arguments"])
    return total + (150 if with_tools else 0)


def _cost(model: str, input_tokens: int, output_tokens: int) -> float:
    price_in, price_out = MODEL_PRICES[model]
    return round(input_tokens * price_in + output_tokens * price_out, 10)


class _Day:
    """Everything one (workflow, day) generation needs: its rng, ids, version, users."""

    def __init__(self, seed: int, workflow: str, day: date, day_index: int, days: int, scale: float, users: list[User]):
        self.rng = random.Random(f"{seed}|{workflow}|{day.isoformat()}")
        self.workflow = workflow
        self.facts = SAMPLE_REGISTRY_FACTS[workflow]
        self.day = day
        versions = self.facts["versions"]
        self.version_id = versions[0] if len(versions) == 1 or day_index < days // 3 else versions[1]
        self.users = users
        self.scale = scale
        self.rates = dict(FAILURE_RATES[workflow])
        for key, mult in VERSION_RATE_MULTIPLIERS.get(self.version_id, {}).items():
            self.rates[key] *= mult
        weekend = day.weekday() >= 5
        base = self.facts["calls_per_day"] * (0.7 if weekend else 1.0) * self.rng.uniform(0.85, 1.15)
        self.n_calls = max(3, round(base * scale))

    def hex(self, n: int) -> str:
        return f"{self.rng.getrandbits(4 * n):0{n}x}"

    def start_offset(self) -> float:
        # Diurnal traffic: business hours busier; leave room before midnight for multi-call traces.
        hour = self.rng.choices(
            range(24), weights=[2, 1, 1, 1, 1, 2, 3, 5, 8, 10, 10, 10, 9, 10, 10, 9, 8, 7, 6, 5, 4, 3, 3, 2]
        )[0]
        return min(hour * 3600 + self.rng.uniform(0, 3600), 86400 - 1200)

    def natural_latency_us(self, model_median_ms: float | None = None) -> int:
        median = model_median_ms or self.facts["latency_median_ms"]
        factor = math.exp(self.rng.gauss(0, self.facts["latency_sigma"]))
        # Natural latencies stay within [0.3, 4] x median so that only injected outliers exceed 10x the day's median.
        return int(median * min(max(factor, 0.3), 4.0) * 1000)

    def new_call(self, messages: list[dict], variables: dict, intent: str, expected: dict, pii: set[str]) -> Call:
        return Call(
            span_id=self.hex(16),
            workflow=self.workflow,
            version_id=self.version_id,
            model=self.facts["model"],
            messages=messages,
            variables=variables,
            temperature=self.facts["temperature"],
            max_tokens=self.facts["max_tokens"],
            intent=intent,
            expected=expected,
            pii=set(pii),
            response_id="chatcmpl-" + self.hex(20),
        )

    def new_trace(self, user: User, session_id: str, offset: float) -> Trace:
        return Trace(
            trace_id=self.hex(32),
            root_span_id=self.hex(16),
            workflow=self.workflow,
            version_id=self.version_id,
            session_id=session_id,
            user_id=user.user_id,
            segment=user.segment,
            start_offset_s=offset,
        )

    def finish_ok(self, call: Call, output_tokens: int | None = None) -> None:
        """Usage, cost and latency of a successful call (after its output is set)."""
        call.input_tokens = _input_tokens(call.messages, self.workflow == "order_agent")
        if output_tokens is None:
            output_tokens = _tokens(call.output) + sum(
                8 + _tokens(json.dumps(tc["arguments"])) for tc in call.tool_calls
            )
        call.output_tokens = output_tokens
        call.cost_usd = _cost(call.model, call.input_tokens, call.output_tokens)
        call.latency_us = self.natural_latency_us()

    def make_error(self, call: Call) -> None:
        call.status = "error"
        call.error_type, call.error_message = self.rng.choice(ERROR_TYPES)
        call.output = None
        call.tool_calls = []
        call.finish_reason = None
        call.latency_us = self.natural_latency_us()
        call.failures.add("error")
        # An error usually comes after the client's own retries.
        call.retries = self.rng.choice((0, 2, 3))
        if call.retries:
            call.failures.add("retry")

    def maybe_retry_fallback(self, call: Call) -> None:
        if self.rng.random() < self.rates["retry"]:
            call.retries = self.rng.choice((1, 1, 2))
            call.failures.add("retry")
        if self.rng.random() < self.rates["fallback"]:
            call.fallback = True
            call.model = self.facts["fallback_model"]
            call.cost_usd = _cost(call.model, call.input_tokens, call.output_tokens)
            call.failures.add("fallback")

    def feedback(self, call: Call, wrong: bool) -> None:
        u = self.rng.random()
        negative = self.rates["negative_feedback_if_wrong"] if wrong else self.rates["negative_feedback"]
        if u < negative:
            # Most apps log thumbs; one logs a numeric rating.
            call.feedback = "down" if self.rng.random() < 0.9 else -1
            call.failures.add("negative_feedback")
        elif u < negative + self.rates["positive_feedback"]:
            call.feedback = "up" if self.rng.random() < 0.9 else 1
        if self.rng.random() < self.rates["escalation"]:
            call.escalated = True
            call.failures.add("escalation")


def _users(seed: int, workflow: str, scale: float) -> list[User]:
    rng = random.Random(f"{seed}|{workflow}|users")
    users = []
    for _ in range(max(20, round(400 * scale))):
        region = rng.choices(("eu", "us", "apac"), weights=(0.35, 0.45, 0.2))[0]
        tier = rng.choices(("free", "pro", "enterprise"), weights=(0.5, 0.35, 0.15))[0]
        users.append(User(f"u_{rng.randrange(10**6):06d}", {"region": region, "tier": tier}))
    return users


def _sessions(ctx: _Day, sizes: tuple[int, ...], weights: tuple[float, ...]):
    """Yield (user, session_id, [offsets]) until the day's call volume is reached (caller counts)."""
    while True:
        user = ctx.rng.choice(ctx.users)
        session_id = "sess_" + ctx.hex(12)
        k = ctx.rng.choices(sizes, weights=weights)[0]
        t = ctx.start_offset()
        offsets = []
        for _ in range(k):
            offsets.append(min(t, 86400 - 1200))
            t += ctx.rng.uniform(30, 600)
        yield user, session_id, offsets


# =============================================================================
# Workflows
# =============================================================================

INVALID_ROUTES = ("refunds", "sales", "Billing", "account-recovery", "escalate", "tech_support", "other")


def _support_router_day(ctx: _Day) -> list[Trace]:
    rng, rates = ctx.rng, ctx.rates
    traces: list[Trace] = []
    sessions = _sessions(ctx, (1, 2, 3), (0.75, 0.2, 0.05))
    while len(traces) < ctx.n_calls:
        user, session_id, offsets = next(sessions)
        for offset in offsets:
            true_route = rng.choices(list(content.TICKET_WEIGHTS), weights=list(content.TICKET_WEIGHTS.values()))[0]
            ticket = content.support_ticket(rng, true_route, long=rng.random() < 0.04)
            variables = {"ticket": ticket.text, "customer_tier": user.segment["tier"]}
            messages = [
                {"role": "system", "content": render_system(ctx.version_id, variables)},
                {"role": "user", "content": ticket.text},
            ]
            call = ctx.new_call(messages, variables, true_route, {"route": true_route}, ticket.pii)
            trace = ctx.new_trace(user, session_id, offset)
            trace.calls.append(call)
            traces.append(trace)
            if rng.random() < rates["error"]:
                ctx.make_error(call)
                if rng.random() < rates["escalation"]:
                    call.escalated = True
                    call.failures.add("escalation")
                continue
            route, matched = route_by_rules(ctx.version_id, ticket.text)
            answer: dict[str, Any] = {"route": route, "confidence": 0.9 if matched else 0.55}
            parsed: Any = answer
            output = json.dumps(answer)
            u = rng.random()
            t1 = rates["invalid_json"]
            t2 = t1 + rates["schema_violation"]
            t3 = t2 + rates["enum_violation"]
            t4 = t3 + rates["enum_and_schema"]
            if u < t1:
                call.failures.add("invalid_json")
                parsed = None
                variant = rng.randrange(3)
                if variant == 0:  # cut off mid-object
                    output = output[: rng.randrange(5, len(output) - 2)]
                    call.finish_reason = "length"
                elif variant == 1:
                    output = rng.choice(
                        (
                            f"This ticket should go to {route}.",
                            f"Route: {route} (confidence: high)",
                            f"I would send this to the {route} team.",
                        )
                    )
                else:
                    output = "{'route': '%s', 'confidence': %s}" % (route, answer["confidence"])
            elif u < t2:
                call.failures.add("schema_violation")
                variant = rng.randrange(5)
                if variant == 0:
                    parsed = {"route": route}
                elif variant == 1:
                    parsed = {"route": route, "confidence": round(rng.uniform(1.05, 9.0), 2)}
                elif variant == 2:
                    parsed = {"route": route, "confidence": rng.choice(("high", "0.9", "medium"))}
                elif variant == 3:
                    parsed = {"route": route, "confidence": answer["confidence"], "reason": "keyword match in ticket"}
                else:
                    parsed = {"confidence": answer["confidence"]}
                output = json.dumps(parsed)
            elif u < t3:
                call.failures.add("enum_violation")
                parsed = {"route": rng.choice(INVALID_ROUTES), "confidence": answer["confidence"]}
                output = json.dumps(parsed)
            elif u < t4:
                call.failures.update(("enum_violation", "schema_violation"))
                parsed = {"route": rng.choice(INVALID_ROUTES)}
                output = json.dumps(parsed)
            call.output = output
            # Some app loggers store the parsed object rather than the text.
            call.output_as_object = isinstance(parsed, dict) and rng.random() < 0.15
            ctx.finish_ok(call)
            ctx.maybe_retry_fallback(call)
            produced_route = parsed.get("route") if isinstance(parsed, dict) else None
            wrong = produced_route != true_route
            ctx.feedback(
                call, wrong=wrong or bool(call.failures & {"invalid_json", "schema_violation", "enum_violation"})
            )
            u = rng.random()
            if wrong and u < rates["correction_if_wrong"]:
                call.correction = {"route": true_route}
                call.failures.add("correction")
            elif not wrong and u < rates["confirmation"]:
                call.correction = {"route": produced_route}
    return traces


ORDER_PLANS = (("status", 0.35), ("refund", 0.25), ("refund_over", 0.08), ("no_id", 0.12), ("general", 0.2))
UNKNOWN_TOOLS = (
    ("cancel_subscription", lambda oid: {"customer_id": "current"}),
    ("cancel_order", lambda oid: {"order_id": oid}),
    ("apply_discount", lambda oid: {"order_id": oid, "percent": 20}),
    ("send_email", lambda oid: {"subject": f"About {oid}", "body": "We are looking into it."}),
)
GENERAL_ANSWERS = {
    "What is your return policy?": "You can return items within 30 days of delivery for a full refund.",
    "How long does a return take to process?": "Returns are processed within 5 business days of reaching our warehouse.",
    "Can I change the size after ordering?": "Yes, until the order ships you can change the size from your account page.",
}


@dataclass
class _Step:
    kind: str  # "tool" | "text"
    expected: dict
    failures: set[str] = field(default_factory=set)
    name: str = ""
    arguments: Any = None
    result: dict | None = None
    text: str = ""
    escalated: bool = False


def _expected_tool(name: str, arguments: dict) -> dict:
    return {"tool": name, "arguments": arguments, "answer": None}


def _expected_answer(kind: str) -> dict:
    return {"tool": None, "arguments": None, "answer": kind}


def _bad_lookup_args(rng: random.Random, oid: str) -> Any:
    digits = oid[4:]
    return rng.choice(
        (
            {"order_id": digits},
            {"order_id": oid[:-1]},
            {"order_id": oid.lower()},
            {"orderId": oid},
            '{"order_id": "' + oid[:6],  # cut-off arguments text: not JSON
        )
    )


def _order_steps(
    ctx: _Day, kind: str, oid: str, amount: int, reason: str, first_turn_without_lookup: bool, message: str
) -> tuple[list[_Step], str]:
    """The production behaviour for one customer turn, then at most one injected tool/answer failure."""
    rng, rates = ctx.rng, ctx.rates
    status = rng.choice(("shipped", "delivered", "processing", "in transit"))
    carrier = rng.choice(("DHL", "UPS", "FedEx", "Royal Mail"))
    eta = (ctx.day + timedelta(days=rng.randrange(1, 6))).isoformat()
    lookup_args = {"order_id": oid}
    lookup = _Step(
        "tool",
        _expected_tool("lookup_order", lookup_args),
        name="lookup_order",
        arguments=lookup_args,
        result={
            "order_id": oid,
            "status": status,
            "carrier": carrier,
            "eta": eta,
            "total_usd": amount or rng.randrange(15, 400),
        },
    )
    refund_args = {"order_id": oid, "amount_usd": amount, "reason": reason}
    refund_result = {"refund_id": "RF-" + ctx.hex(8).upper(), "status": "approved", "amount_usd": amount}
    confirm = _Step(
        "text",
        _expected_answer("confirm_refund"),
        text=f"I've issued a refund of ${amount} for order {oid}. It should reach your account within 5 business days.",
    )
    if kind == "status":
        steps = [
            lookup,
            _Step(
                "text",
                _expected_answer("order_status"),
                text=f"Your order {oid} is {status} with {carrier}; expected delivery {eta}.",
            ),
        ]
    elif kind == "refund":
        steps = [
            lookup,
            _Step(
                "tool",
                _expected_tool("issue_refund", refund_args),
                name="issue_refund",
                arguments=refund_args,
                result=refund_result,
            ),
            confirm,
        ]
    elif kind == "refund_over":
        steps = [
            lookup,
            _Step("text", _expected_answer("escalate"), text=ESCALATION_TEXT, escalated=True),
        ]
    elif kind == "no_id":
        steps = [
            _Step(
                "text",
                _expected_answer("ask_order_id"),
                text="Please share your order number (it starts with ORD- and six digits) so I can look it up.",
            )
        ]
    elif kind == "general":
        answer = next((a for question, a in GENERAL_ANSWERS.items() if question in message), None)
        steps = [
            _Step(
                "text",
                _expected_answer("answer_question"),
                text=answer or "We ship to most countries; delivery takes 3 to 7 business days.",
            )
        ]
    else:  # followup
        steps = [
            _Step(
                "text",
                _expected_answer("answer_followup"),
                text="You're welcome. The details you mentioned match what I see on the order.",
            )
        ]

    options: list[tuple[str, float]] = []
    if kind in ("status", "refund", "refund_over"):
        options += [
            ("unknown_tool", rates["trace_unknown_tool"]),
            ("lookup_args_invalid", rates["trace_lookup_args_invalid"]),
            ("clarification", rates["trace_clarification"]),
        ]
    if kind == "refund":
        options.append(("refund_args_invalid", rates["trace_refund_args_invalid"]))
        if first_turn_without_lookup:
            options.append(("refund_without_lookup", rates["trace_refund_without_lookup"]))
    if kind == "refund_over":
        options.append(("refund_over_limit", rates["trace_refund_over_limit"]))
    if kind in ("status", "refund", "refund_over", "general"):
        options.append(("refusal", rates["trace_refusal"]))
    u = rng.random()
    injected = ""
    for name, p in options:
        if u < p:
            injected = name
            break
        u -= p

    if injected == "unknown_tool":
        tool, make_args = rng.choice(UNKNOWN_TOOLS)
        steps.insert(
            0,
            _Step(
                "tool",
                steps[0].expected,
                {"unknown_tool"},
                name=tool,
                arguments=make_args(oid),
                result={"error": f"unknown tool {tool}"},
            ),
        )
    elif injected == "lookup_args_invalid":
        steps.insert(
            0,
            _Step(
                "tool",
                steps[0].expected,
                {"tool_args_invalid"},
                name="lookup_order",
                arguments=_bad_lookup_args(rng, oid),
                result={"error": "invalid order_id"},
            ),
        )
    elif injected == "refund_args_invalid":
        bad = dict(refund_args)
        variant = rng.randrange(4)
        if variant == 0:
            bad["amount_usd"] = -amount
        elif variant == 1:
            bad["amount_usd"] = f"{amount} dollars"
        elif variant == 2:
            bad["reason"] = rng.choice(("changed_mind", "broken", "wrong size"))
        else:
            bad["order_id"] = oid[4:]
        steps[1] = _Step(
            "tool",
            steps[1].expected,
            {"tool_args_invalid", "unsafe_tool_call"},
            name="issue_refund",
            arguments=bad,
            result={"error": "invalid arguments"},
        )
        steps[2] = _Step(
            "text",
            _expected_answer("report_refund_failure"),
            text="Sorry, the refund could not be processed automatically; a colleague will follow up by email.",
        )
    elif injected == "refund_without_lookup":
        steps = [
            _Step(
                "tool",
                steps[0].expected,
                {"unsafe_tool_call"},
                name="issue_refund",
                arguments=refund_args,
                result=refund_result,
            ),
            confirm,
        ]
    elif injected == "refund_over_limit":
        steps = [
            lookup,
            _Step(
                "tool",
                steps[1].expected,
                {"unsafe_tool_call"},
                name="issue_refund",
                arguments=refund_args,
                result=refund_result,
            ),
            confirm,
        ]
    elif injected == "refusal":
        steps = [_Step("text", steps[0].expected, {"refusal"}, text="I can't help with that.")]
    elif injected == "clarification":
        steps = [
            _Step(
                "text",
                steps[0].expected,
                {"clarification"},
                text=rng.choice(
                    (
                        "Could you clarify which order you mean?",
                        "Could you clarify what you would like me to do with this order?",
                    )
                ),
            )
        ]
    return steps, injected


def _order_agent_day(ctx: _Day) -> list[Trace]:
    rng, rates = ctx.rng, ctx.rates
    traces: list[Trace] = []
    n_calls = 0
    sessions = _sessions(ctx, (1, 2, 3, 4, 5, 6, 7), (0.85, 0.07, 0.05, 0.01, 0.01, 0.005, 0.005))
    plans, plan_weights = zip(*ORDER_PLANS)
    while n_calls < ctx.n_calls:
        user, session_id, offsets = next(sessions)
        history: list[dict] = []  # conversation so far, without the system message
        for turn, offset in enumerate(offsets):
            kind = rng.choices(plans, weights=plan_weights)[0] if turn == 0 or rng.random() < 0.5 else "followup"
            oid = content.order_id(rng) if kind in ("status", "refund", "refund_over") else ""
            amount = (
                rng.randrange(15, REFUND_LIMIT_USD + 1)
                if kind == "refund"
                else (rng.randrange(REFUND_LIMIT_USD + 1, 951) if kind == "refund_over" else 0)
            )
            message, reason = content.order_message(rng, "refund" if kind == "refund_over" else kind, oid, amount)
            no_lookup_yet = not any(
                tc["function"]["name"] == "lookup_order" for m in history for tc in m.get("tool_calls") or []
            )
            steps, _ = _order_steps(ctx, kind, oid, amount, reason, no_lookup_yet, message.text)
            variables = {"customer_message": message.text, "order_id": oid}
            system = {"role": "system", "content": render_system(ctx.version_id, variables)}
            history.append({"role": "user", "content": message.text})
            trace = ctx.new_trace(user, session_id, offset)
            traces.append(trace)
            for step in steps:
                call = ctx.new_call([system, *history], variables, kind, step.expected, message.pii)
                call.parent_span_id = trace.root_span_id
                trace.calls.append(call)
                n_calls += 1
                if rng.random() < rates["error"]:
                    ctx.make_error(call)
                    break
                call.failures |= step.failures
                if step.kind == "tool":
                    call_id = "call_" + ctx.hex(24)
                    arguments_text = step.arguments if isinstance(step.arguments, str) else json.dumps(step.arguments)
                    call.tool_calls = [{"id": call_id, "name": step.name, "arguments": step.arguments}]
                    call.output = None
                    call.finish_reason = "tool_calls"
                    history.append(
                        {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [
                                {
                                    "id": call_id,
                                    "type": "function",
                                    "function": {"name": step.name, "arguments": arguments_text},
                                }
                            ],
                        }
                    )
                    result_text = json.dumps(step.result)
                    history.append({"role": "tool", "tool_call_id": call_id, "content": result_text})
                    trace.runs_after.setdefault(len(trace.calls) - 1, []).append(
                        ToolRun(
                            span_id=ctx.hex(16),
                            call_id=call_id,
                            name=step.name,
                            arguments_text=arguments_text,
                            result=result_text,
                            duration_us=int(rng.uniform(40, 400) * 1000),
                        )
                    )
                else:
                    call.output = step.text
                    history.append({"role": "assistant", "content": step.text})
                    if step.escalated:
                        call.escalated = True
                        call.failures.add("escalation")
                ctx.finish_ok(call)
                ctx.maybe_retry_fallback(call)
            last = trace.calls[-1]
            if last.status == "ok" and last.output is not None:
                wrong = any(
                    c.failures & {"unknown_tool", "tool_args_invalid", "unsafe_tool_call", "refusal", "clarification"}
                    for c in trace.calls
                )
                ctx.feedback(last, wrong=wrong)
    return traces


DOC_TYPES = (
    ("meeting_notes", 0.25),
    ("incident_report", 0.2),
    ("customer_email", 0.25),
    ("product_update", 0.15),
    ("policy", 0.15),
)


def _summarizer_day(ctx: _Day) -> list[Trace]:
    rng, rates = ctx.rng, ctx.rates
    traces: list[Trace] = []
    sessions = _sessions(ctx, (1, 2, 3, 4), (0.6, 0.25, 0.1, 0.05))
    doc_types, weights = zip(*DOC_TYPES)
    while len(traces) < ctx.n_calls:
        user, session_id, offsets = next(sessions)
        for offset in offsets:
            doc_type = rng.choices(doc_types, weights=weights)[0]
            doc = content.document(rng, doc_type)
            variables = {"document": doc.text}
            messages = [
                {"role": "system", "content": render_system(ctx.version_id, variables)},
                {"role": "user", "content": doc.text},
            ]
            expected = {"answer": "summary", "max_words": SUMMARY_MAX_WORDS}
            call = ctx.new_call(messages, variables, doc_type, expected, doc.pii)
            trace = ctx.new_trace(user, session_id, offset)
            trace.calls.append(call)
            traces.append(trace)
            if rng.random() < rates["error"]:
                ctx.make_error(call)
                continue
            summary = content.extractive_summary(doc.text, SUMMARY_MAX_WORDS)
            u = rng.random()
            if u < rates["refusal"]:
                call.output = "I can't help with that."
                call.failures.add("refusal")
            elif u < rates["refusal"] + rates["clarification"]:
                call.output = rng.choice(
                    (
                        "Could you clarify what you would like summarised?",
                        "Could you clarify which part of the document matters most?",
                    )
                )
                call.failures.add("clarification")
            else:
                call.output = summary
            ctx.finish_ok(call)
            ctx.maybe_retry_fallback(call)
            ctx.feedback(call, wrong=bool(call.failures & {"refusal", "clarification"}))
            u = rng.random()
            if u < rates["correction"]:
                # A reviewer's own summary: the document's later key points, worded as an editor would.
                sentences = re.split(r"(?<=[.!?])\s+", doc.text.strip())
                better = "Key points: " + " ".join(sentences[1:3] or sentences[:1])
                call.correction = content.extractive_summary(better, SUMMARY_MAX_WORDS)
                call.failures.add("correction")
            elif (
                u < rates["correction"] + rates["confirmation"]
                and "refusal" not in call.failures
                and "clarification" not in call.failures
            ):
                call.correction = call.output
    return traces


DAY_BUILDERS = {"support_router": _support_router_day, "order_agent": _order_agent_day, "summarizer": _summarizer_day}

# =============================================================================
# Outliers, formats, timeline
# =============================================================================


def _inject_outliers(ctx: _Day, traces: list[Trace]) -> None:
    rng = ctx.rng
    calls = [c for t in traces for c in t.calls]
    ok = [c for c in calls if c.status == "ok"]
    if not ok:
        return
    median_latency = statistics.median(c.latency_us for c in calls)
    cap = max(1, len(ok) // 20)
    n_latency = min(cap, max(1, round(rng.randint(*LATENCY_OUTLIERS_PER_DAY) * ctx.scale)))
    for call in rng.sample(ok, n_latency):
        call.latency_us = int(median_latency * rng.uniform(30, 80))
        call.failures.add("latency_outlier")
    median_cost = statistics.median(c.cost_usd for c in ok)
    n_cost = min(cap, max(1, round(rng.randint(*COST_OUTLIERS_PER_DAY) * ctx.scale)))
    for call in rng.sample(ok, n_cost):
        # A runaway context (a whole mailbox or log pasted in by the app) inflates the prompt tokens.
        target = median_cost * rng.uniform(30, 80)
        price_in, price_out = MODEL_PRICES[call.model]
        call.input_tokens = math.ceil((target - call.output_tokens * price_out) / price_in)
        call.cost_usd = _cost(call.model, call.input_tokens, call.output_tokens)
        call.failures.add("cost_outlier")


def _format_plan(seed: int, days: list[date]) -> dict[tuple[date, str], str]:
    rng = random.Random(f"{seed}|formats")
    kinds, weights = zip(*FORMAT_WEIGHTS)
    plan = {(d, w): rng.choices(kinds, weights=weights)[0] for d in days for w in WORKFLOWS}
    # Every history of a few days shows every format, including tool calls in both OTLP flavours.
    forced = [
        ("otlp_genai", "order_agent"),
        ("openinference", "support_router"),
        ("native_gz", "summarizer"),
        ("openinference", "order_agent"),
        ("otlp_genai", "summarizer"),
    ]
    for i, (kind, workflow) in enumerate(forced):
        if len(days) > i + 1 and kind not in {plan[(d, workflow)] for d in days}:
            plan[(days[i + 1], workflow)] = kind
    return plan


def _route_formats(traces: list[Trace], kind: str) -> None:
    """Pick each trace's file format.

    On OTLP days the EU and APAC deployments export OpenTelemetry while the US
    deployment still writes the native log; traces whose calls carry fields
    only the native format has (feedback, escalation, correction, retries,
    fallback, cost) also stay native, so every injected failure is observable
    after ingest.
    """
    native = "native" if kind in ("otlp_genai", "openinference") else kind
    for trace in traces:
        otlp_ok = (
            kind in ("otlp_genai", "openinference")
            and trace.segment["region"] != "us"
            and not any(c.native_only for c in trace.calls)
        )
        trace.fmt = kind if otlp_ok else native
        if trace.fmt in ("otlp_genai", "openinference"):
            for call in trace.calls:
                call.parent_span_id = trace.root_span_id


def _timeline(traces: list[Trace], day_start_ns: int) -> None:
    for trace in traces:
        t = day_start_ns + int(trace.start_offset_s * 1e6) * 1000
        trace.start_ns = t - 3_000_000
        for i, call in enumerate(trace.calls):
            call.start_ns = t
            call.end_ns = t + call.latency_us * 1000
            t = call.end_ns
            for run in trace.runs_after.get(i, []):
                run.start_ns = t + 2_000_000
                run.end_ns = run.start_ns + run.duration_us * 1000
                t = run.end_ns + 15_000_000
        trace.end_ns = t + 2_000_000


def _apply_outlier_rule(traces: list[Trace]) -> None:
    """Make the recorded outlier classes exactly what the documented rule finds in the files."""
    calls = [c for t in traces for c in t.calls]
    median_latency = statistics.median(c.latency_us for c in calls)
    visible_costs = [
        c.cost_usd for t in traces if t.fmt.startswith("native") for c in t.calls if c.cost_usd is not None
    ]
    median_cost = statistics.median(visible_costs) if visible_costs else None
    for trace in traces:
        for call in trace.calls:
            call.failures.discard("latency_outlier")
            if call.latency_us > OUTLIER_FACTOR * median_latency:
                call.failures.add("latency_outlier")
            call.failures.discard("cost_outlier")
            if (
                trace.fmt.startswith("native")
                and call.cost_usd is not None
                and median_cost
                and call.cost_usd > OUTLIER_FACTOR * median_cost
            ):
                call.failures.add("cost_outlier")


# =============================================================================
# Writing
# =============================================================================


def _iso(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{rest // 1000:06d}Z"


def native_record(trace: Trace, call: Call, package_hashes: Mapping[str, str]) -> dict:
    record: dict[str, Any] = {
        "timestamp": _iso(call.start_ns),
        "trace_id": trace.trace_id,
        "span_id": call.span_id,
    }
    if call.parent_span_id:
        record["parent_span_id"] = call.parent_span_id
    record.update({"workflow": trace.workflow, "prompt_version": call.version_id})
    if call.version_id in package_hashes:
        record["package_hash"] = package_hashes[call.version_id]
    record["model"] = call.model
    record["input"] = {"messages": call.messages, "variables": call.variables}
    if call.output is not None:
        record["output"] = json.loads(call.output) if call.output_as_object else call.output
    else:
        record["output"] = None
    if call.tool_calls:
        record["tool_calls"] = call.tool_calls
    record.update({"finish_reason": call.finish_reason, "status": call.status})
    if call.status == "error":
        record.update({"error": call.error_type, "error_message": call.error_message})
    record["latency_ms"] = call.latency_us / 1000
    if call.input_tokens is not None:
        record["usage"] = {"input_tokens": call.input_tokens, "output_tokens": call.output_tokens}
        record["cost_usd"] = call.cost_usd
    record.update({"session_id": trace.session_id, "user_id": trace.user_id, "segment": trace.segment})
    if call.feedback is not None:
        record["feedback"] = call.feedback
    record["escalated"] = call.escalated
    if call.correction is not None:
        record["correction"] = call.correction
    record.update(
        {
            "retries": call.retries,
            "fallback": call.fallback,
            "environment": "production",
            "app_version": trace.app_version,
        }
    )
    return record


def _prompt_version_spelling(seed: int, day: date, workflow: str):
    style = random.Random(f"{seed}|{workflow}|{day.isoformat()}|spelling").randrange(3)
    return lambda trace: (trace.version, f"v{trace.version}", trace.version_id)[style]


def _otlp_lines(traces: list[Trace], kind: str, seed: int, day: date, workflow: str) -> list[str]:
    rng = random.Random(f"{seed}|{workflow}|{day.isoformat()}|batches")
    spelling = _prompt_version_spelling(seed, day, workflow)
    lines = []
    i = 0
    while i < len(traces):
        # The batch span processor exports a few traces at a time; one resource (region) per request.
        batch = traces[i : i + rng.randint(1, 6)]
        batch = [
            t
            for j, t in enumerate(batch)
            if all(u.segment["region"] == batch[0].segment["region"] for u in batch[: j + 1])
        ]
        i += len(batch)
        request = genai_request(batch, spelling) if kind == "otlp_genai" else openinference_request(batch)
        lines.append(json.dumps(request, ensure_ascii=False, separators=(",", ":")))
    return lines


def _write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _encode(lines: list[str], gz: bool) -> bytes:
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if not gz:
        return data
    buffer = io.BytesIO()
    # mtime=0 and no file name keep the gzip bytes identical across runs.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=6) as handle:
        handle.write(data)
    return buffer.getvalue()


def _generated_names() -> set[str]:
    return {pattern.format(workflow=w) for pattern in FILE_NAMES.values() for w in WORKFLOWS}


# =============================================================================
# Entry point
# =============================================================================


def generate(
    out_dir: str | os.PathLike,
    *,
    days: int = 30,
    seed: int = 0,
    scale: float = 1.0,
    start_date: date | None = None,
    package_hashes: Mapping[str, str] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the sample history under `out_dir` and return its ground truth.

    Files: `out_dir/<YYYY-MM-DD>/<workflow>.jsonl` (native),
    `<workflow>.jsonl.gz` (native, gzipped), `<workflow>.otel.jsonl` (OTLP
    GenAI semconv), `<workflow>.phoenix.jsonl` (OTLP OpenInference); on OTLP
    days the native file beside it holds the US deployment's calls and every
    call with app-level fields (see `_route_formats`). Plus
    `out_dir/ground_truth.json` (the returned dict).

    Failure classes and their exact rules are `FAILURE_RULES` (also written
    into the ground truth); rates are `FAILURE_RATES`. A call may have several.

    Ground truth shape::

        {"seed", "days", "scale", "start_date", "failure_classes", "rules", "rates",
         "files": [{"path", "format", "lines", "calls"}],
         "calls_per_day": {workflow: {version_id: {day: n}}},
         "counts": {workflow: {version_id: {day: {failure_class: n}}}},   # nonzero only
         "totals": {workflow: {failure_class: n}},
         "calls": [{"span_id", "trace_id", "workflow", "prompt_version", "day", "file",
                    "source_format", "failures": [...], "intent", "expected", "pii": [...]}]}

    `expected`: support_router `{"route"}` (the true route); order_agent
    `{"tool", "arguments", "answer"}` (the tool call the policy wants at that
    point, or the kind of text answer); summarizer `{"answer": "summary", "max_words"}`.
    """
    if days < 1:
        raise UserError("--days must be at least 1", field="days")
    if not scale > 0:
        raise UserError("--scale must be greater than 0", field="scale")
    out = Path(out_dir)
    # Default: the first daily partition, so a generated history lies inside the partition range.
    start = start_date or date.fromisoformat(config.partitions_start_date())
    day_list = [start + timedelta(days=i) for i in range(days)]
    for day in day_list:
        folder = out / day.isoformat()
        if folder.is_dir() and any(folder.iterdir()) and not overwrite:
            raise UserError(
                f"{folder} already holds files; pass --overwrite to replace the generated ones", file=str(folder)
            )
    hashes = dict(package_hashes or {})
    format_plan = _format_plan(seed, day_list)
    users = {w: _users(seed, w, scale) for w in WORKFLOWS}

    files: list[dict] = []
    calls_out: list[dict] = []
    calls_per_day: dict = {}
    counts: dict = {}
    totals: dict = {w: {} for w in WORKFLOWS}
    out.mkdir(parents=True, exist_ok=True)
    for day_index, day in enumerate(day_list):
        folder = out / day.isoformat()
        folder.mkdir(exist_ok=True)
        for name in _generated_names():
            if (folder / name).exists():
                (folder / name).unlink()
        day_start_ns = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1_000_000_000
        for workflow in WORKFLOWS:
            ctx = _Day(seed, workflow, day, day_index, days, scale, users[workflow])
            traces = DAY_BUILDERS[workflow](ctx)
            _inject_outliers(ctx, traces)
            kind = format_plan[(day, workflow)]
            _route_formats(traces, kind)
            _timeline(traces, day_start_ns)
            _apply_outlier_rule(traces)
            traces.sort(key=lambda t: (t.start_ns, t.trace_id))
            by_format: dict[str, list[Trace]] = {}
            for trace in traces:
                by_format.setdefault(trace.fmt, []).append(trace)
            for fmt in sorted(by_format):
                group = by_format[fmt]
                name = FILE_NAMES[fmt].format(workflow=workflow)
                if fmt.startswith("native"):
                    lines = [
                        json.dumps(native_record(t, c, hashes), ensure_ascii=False) for t in group for c in t.calls
                    ]
                else:
                    lines = _otlp_lines(group, fmt, seed, day, workflow)
                _write_bytes(folder / name, _encode(lines, gz=fmt == "native_gz"))
                relative = f"{day.isoformat()}/{name}"
                files.append(
                    {
                        "path": relative,
                        "format": SOURCE_FORMAT[fmt],
                        "gzip": fmt == "native_gz",
                        "lines": len(lines),
                        "calls": sum(len(t.calls) for t in group),
                    }
                )
                for trace in group:
                    for call in trace.calls:
                        failures = sorted(call.failures)
                        calls_out.append(
                            {
                                "span_id": call.span_id,
                                "trace_id": trace.trace_id,
                                "workflow": workflow,
                                "prompt_version": call.version_id,
                                "day": day.isoformat(),
                                "file": relative,
                                "source_format": SOURCE_FORMAT[fmt],
                                "failures": failures,
                                "intent": call.intent,
                                "expected": call.expected,
                                "pii": sorted(call.pii),
                            }
                        )
                        per_day = calls_per_day.setdefault(workflow, {}).setdefault(call.version_id, {})
                        per_day[day.isoformat()] = per_day.get(day.isoformat(), 0) + 1
                        day_counts = (
                            counts.setdefault(workflow, {})
                            .setdefault(call.version_id, {})
                            .setdefault(day.isoformat(), {})
                        )
                        for failure in failures:
                            day_counts[failure] = day_counts.get(failure, 0) + 1
                            totals[workflow][failure] = totals[workflow].get(failure, 0) + 1
    truth = {
        "seed": seed,
        "days": days,
        "scale": scale,
        "start_date": start.isoformat(),
        "failure_classes": list(FAILURE_CLASSES),
        "rules": FAILURE_RULES,
        "rates": FAILURE_RATES,
        "outlier_factor": OUTLIER_FACTOR,
        "refusal_pattern": REFUSAL_PATTERN,
        "clarification_pattern": CLARIFICATION_PATTERN,
        "files": files,
        "calls_per_day": calls_per_day,
        "counts": counts,
        "totals": {w: dict(sorted(t.items())) for w, t in totals.items()},
        "calls": calls_out,
    }
    _write_bytes(out / GROUND_TRUTH_FILE, json.dumps(truth, ensure_ascii=False, sort_keys=True).encode("utf-8"))
    return truth


def align_label_history(registry_root: str | Path, truth: Mapping[str, Any]) -> int:
    """Date a registry copy's production label moves to when the generated traffic switched version.

    The sample registry's moves were recorded on one afternoon; the generated
    history is relative to its start date (v1.5.1 serves the first third of the
    days, then v1.5.2). So that label moves line up with the traffic they
    explain (`v_label_history`, notebook 01), each production move to a
    version that serves in the history is dated at the start of that version's
    first day. Meant for a copy of the sample registry (the demo's): an audit
    trail in use is never rewritten. Returns the number of events redated.
    """
    first_day: dict[str, str] = {}
    for versions in truth["calls_per_day"].values():  # workflow -> version -> day -> calls
        for version, days in versions.items():
            served = sorted(day for day, calls in days.items() if calls)
            if served:
                first_day[version] = served[0]
    changed = 0
    for events_file in sorted(Path(registry_root, "prompts").glob("*/label_events.jsonl")):
        events = [json.loads(line) for line in events_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        moved: dict[str, str] = {}
        for event in events:
            day = first_day.get(event.get("to_version") or "")
            if event.get("label") == "production" and event.get("action") == "move" and day:
                event["ts"] = f"{day}T00:00:00Z"
                moved[event["event_id"]] = event["ts"]
        if not moved:
            continue
        events_file.write_text(
            "".join(json.dumps(e, sort_keys=True, ensure_ascii=False) + "\n" for e in events), encoding="utf-8"
        )
        labels_file = events_file.with_name("labels.json")
        if labels_file.exists():
            current = json.loads(labels_file.read_text(encoding="utf-8"))
            for entry in current.get("labels", {}).values():
                if entry.get("event_id") in moved:
                    entry["moved_at"] = moved[entry["event_id"]]
            labels_file.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        changed += len(moved)
    return changed

"""Canary analysis, and acting on it: roll forward or abort.

`canary_metrics` reads production traces since the canary label moved, per
version, restricted to the segments the canary serves (so candidate and
production are compared on the same traffic): traces, success rate, hard
failure rate, unsafe tool calls, escalation and negative feedback rates,
p50/p95/p99 latency, cost per successful trace, retries, fallbacks, steps and
tool calls per trace. The unit is the trace (one request: every LLM call with
its trace id); a trace has a hard failure when any of its calls errored or has
a failure of class invalid_json, schema_violation, enum_violation,
unknown_tool, tool_args_invalid or unsafe_tool_call. Those classes are
recomputed by the mining detectors over the canary window (the day's
`failures` may not be mined yet) or, without a registry, read from `failures`.

`analyse_canary` turns the metrics into a decision with
`gates.canary.decide_canary` (always-valid confidence sequences, so the
decision keeps its error rate however often the sensor looks; user-felt rates
(escalation, negative feedback, correction, refusal/clarification) and cost
per success beside hard failures and latency, per segment when the canary
label names several values of a segment key, Bonferroni across them) and stores it in
`canary_decisions` under a decision id. `roll_forward` points production at
the candidate and ends the canary; `abort_canary` ends the canary, marks the
candidate rejected and adds its failing traces to the golden set as incident
cases (production never moved, so nothing is rolled back: a rollback is the
registry's label flip of production to an earlier version). Both cite the
decision id in the reason and carry the gate report id that started the
canary.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from prompt_release.contracts import checks
from prompt_release.contracts.package import index_contracts
from prompt_release.errors import UserError
from prompt_release.gates.canary import (
    USER_RATES,
    CanaryAction,
    CanaryDecision,
    CanaryEvidence,
    CanaryPolicy,
    CanaryTraffic,
    decide_canary,
)
from prompt_release.golden.build import build_golden, conversation_key, expected_from_correction, record_incident_on
from prompt_release.mining.detectors import detect
from prompt_release.mining.settings import load_settings
from prompt_release.registry import CANARY, PRODUCTION, STAGING, Registry
from prompt_release.registry.ids import check_prompt_id
from prompt_release.warehouse import Scope, read_connection, write_transaction
from prompt_release.warehouse.metrics import (
    CALL_COLUMNS,
    HARD_CLASS_LIST,
    SIGNAL_JOINS,
    SUCCESS,
    cost_per_success,
    served,
)

MAX_FAILING_SPANS = 50
# The per-call flag behind each user-felt rate (columns of pr_canary_calls).
_USER_FLAGS = {
    "escalation_rate": "escalated",
    "negative_feedback_rate": "negative",
    "correction_rate": "corrected",
    "refusal_rate": "refused",
}
_SEGMENT_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class VersionCanaryMetrics(BaseModel):
    version: str
    traces: int
    calls: int
    hard_failures: int
    hard_failure_rate: float | None
    success_rate: float | None
    unsafe_tool_calls: int
    escalation_rate: float | None
    negative_feedback_rate: float | None
    correction_rate: float | None = None
    refusal_rate: float | None = None
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    p99_latency_ms: float | None
    cost_per_success_usd: float | None
    retries: int
    fallbacks: int
    steps_per_trace: float | None
    tool_calls_per_trace: float | None


class CanaryMetrics(BaseModel):
    prompt_id: str
    since: datetime
    segments: dict[str, list[str]] | None = None
    failures_source: str
    versions: dict[str, VersionCanaryMetrics] = Field(default_factory=dict)
    failing_span_ids: dict[str, list[str]] = Field(default_factory=dict)
    # Per-trace inputs of the sequential comparisons, per version (and per "key=value" segment);
    # not part of the stored JSON.
    traffic_by_version: dict[str, Any] = Field(default_factory=dict, exclude=True)

    def traffic(self, version: str) -> CanaryTraffic:
        return self.traffic_by_version.get(version) or CanaryTraffic(0, 0, [], rates=dict.fromkeys(USER_RATES, 0))

    def markdown(self) -> str:
        cols = [
            "traces",
            "hard_failure_rate",
            "success_rate",
            "unsafe_tool_calls",
            "escalation_rate",
            "negative_feedback_rate",
            "correction_rate",
            "refusal_rate",
            "p50_latency_ms",
            "p95_latency_ms",
            "p99_latency_ms",
            "cost_per_success_usd",
            "retries",
            "fallbacks",
            "steps_per_trace",
            "tool_calls_per_trace",
        ]
        lines = ["| version | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        for version, m in sorted(self.versions.items()):
            values = [getattr(m, c) for c in cols]
            lines.append(f"| {version} | " + " | ".join(_fmt(v) for v in values) + " |")
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _parse_ts(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _segment_filter(segments: dict[str, list[str]] | None, params: dict[str, Any]) -> str:
    if not segments:
        return ""
    clauses = []
    for i, (key, allowed) in enumerate(sorted(segments.items())):
        if not _SEGMENT_KEY.match(key):
            raise UserError(f"segment key {key!r} is not a plain name", field="segments")
        params[f"seg_path_{i}"] = f'$."{key}"'
        params[f"seg_vals_{i}"] = [str(v) for v in allowed]
        clauses.append(f"json_extract_string(t.segment, $seg_path_{i}) IN (SELECT unnest($seg_vals_{i}))")
    return " AND " + " AND ".join(clauses)


_FLAG_CLASSES = f"{HARD_CLASS_LIST}, 'refusal', 'clarification'"


def _failure_flags(con, prompt_id: str, since: datetime, registry: Registry | None) -> str:
    """Temp table pr_release_flags(record_key, hard, unsafe, refused) for the canary window; returns its source."""
    con.execute("CREATE OR REPLACE TEMP TABLE pr_release_failures (record_key VARCHAR, failure_class VARCHAR)")
    if registry is not None:
        days = [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT day FROM traces WHERE prompt_id = ? AND ts >= ? ORDER BY 1", [prompt_id, since]
            ).fetchall()
        ]
        contracts = registry.contracts()
        contracts = list({c.package_hash or c.version_id: c for c in index_contracts(contracts).values()}.values())
        settings = load_settings(registry.root)
        for day in days:
            detect(con, contracts, settings, day if isinstance(day, date) else date.fromisoformat(str(day)))
            con.execute(
                f"INSERT INTO pr_release_failures SELECT record_key, failure_class FROM pr_found_failures "
                f"WHERE failure_class IN ({_FLAG_CLASSES})"
            )
        source = "recomputed by the failure detectors over the canary window"
    else:
        con.execute(
            f"INSERT INTO pr_release_failures SELECT record_key, failure_class FROM failures "
            f"WHERE failure_class IN ({_FLAG_CLASSES})"
        )
        source = "failures table"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE pr_release_flags AS
                   SELECT record_key, bool_or(failure_class IN ({HARD_CLASS_LIST})) AS hard,
                          bool_or(failure_class = 'unsafe_tool_call') AS unsafe,
                          bool_or(failure_class IN ('refusal', 'clarification')) AS refused
                   FROM pr_release_failures GROUP BY record_key""")
    return source


_CALLS_SQL = f"""
CREATE OR REPLACE TEMP TABLE pr_canary_calls AS
SELECT {CALL_COLUMNS}, coalesce(f.refused, FALSE) AS refused, t.segment
FROM traces t LEFT JOIN pr_release_flags f ON f.record_key = t.record_key {SIGNAL_JOINS}
WHERE t.prompt_id = $prompt_id AND t.ts >= $since AND t.prompt_version IN (SELECT unnest($versions))
  AND {served()} {{segments}}
"""

# Per trace: a trace is a hard failure (a success, escalated, ...) when its calls together are.
_TRACES_SQL = """
CREATE OR REPLACE TEMP TABLE pr_canary_traces AS
SELECT prompt_version, unit, bool_or(hard) AS hard, count(*) FILTER (WHERE unsafe) AS unsafe_calls,
       bool_or(escalated) AS escalated, bool_or(negative) AS negative, bool_or(corrected) AS corrected,
       bool_or(refused) AS refused, sum(latency_ms) AS latency_ms,
       sum(cost_usd) AS cost_usd, sum(retries) AS retries, bool_or(fallback) AS fallback,
       count(*) AS steps, sum(tool_calls) AS tool_calls, any_value(segment) AS segment
FROM pr_canary_calls GROUP BY prompt_version, unit
"""

_METRICS_SQL = f"""
SELECT prompt_version, count(*) AS traces, sum(steps)::BIGINT AS calls,
       count(*) FILTER (WHERE hard) AS hard_failures,
       count(*) FILTER (WHERE hard)::DOUBLE / count(*) AS hard_failure_rate,
       avg(CASE WHEN {SUCCESS} THEN 1.0 ELSE 0.0 END) AS success_rate,
       sum(unsafe_calls)::BIGINT AS unsafe_tool_calls,
       avg(escalated::INTEGER) AS escalation_rate, avg(negative::INTEGER) AS negative_feedback_rate,
       avg(corrected::INTEGER) AS correction_rate, avg(refused::INTEGER) AS refusal_rate,
       quantile_cont(latency_ms, 0.5) AS p50_latency_ms, quantile_cont(latency_ms, 0.95) AS p95_latency_ms,
       quantile_cont(latency_ms, 0.99) AS p99_latency_ms,
       {cost_per_success()} AS cost_per_success_usd,
       sum(retries)::BIGINT AS retries, count(*) FILTER (WHERE fallback) AS fallbacks,
       avg(steps) AS steps_per_trace, avg(tool_calls) AS tool_calls_per_trace
FROM pr_canary_traces GROUP BY prompt_version
"""

# The inputs of the sequential comparisons per version and, for each named segment key, per value.
_TRAFFIC_SQL = f"""
SELECT prompt_version, {{cell}} AS cell, count(*) AS traces, count(*) FILTER (WHERE hard) AS hard_failures,
       count(*) FILTER (WHERE escalated) AS escalation_rate, count(*) FILTER (WHERE negative) AS negative_feedback_rate,
       count(*) FILTER (WHERE corrected) AS correction_rate, count(*) FILTER (WHERE refused) AS refusal_rate,
       list(latency_ms) FILTER (WHERE latency_ms IS NOT NULL) AS latencies,
       count(cost_usd) AS costed,
       list(coalesce(cost_usd, 0) ORDER BY unit) AS costs,
       list(CASE WHEN {SUCCESS} THEN 1.0 ELSE 0.0 END ORDER BY unit) AS successes
FROM pr_canary_traces {{where}} GROUP BY ALL
"""


def _traffic_rows(con, cell: str, where: str, params: dict[str, Any]) -> dict[tuple[str, str | None], CanaryTraffic]:
    cursor = con.execute(_TRAFFIC_SQL.format(cell=cell, where=where), params)
    names = [d[0] for d in cursor.description]
    out = {}
    for row in cursor.fetchall():
        d = dict(zip(names, row, strict=True))
        costed = d["costed"] > 0
        out[(d["prompt_version"], d["cell"])] = CanaryTraffic(
            d["traces"],
            d["hard_failures"],
            [float(x) for x in d["latencies"] or []],
            rates={name: d[name] for name in USER_RATES},
            cost_usd=d["costs"] if costed else None,
            successes=d["successes"] if costed else None,
        )
    return out


def _traffic(con, versions: list[str], segments: dict[str, list[str]] | None) -> dict[str, CanaryTraffic]:
    whole = _traffic_rows(con, "NULL::VARCHAR", "", {})
    by_segment: dict[str, dict[str, CanaryTraffic]] = {}
    for i, (key, values) in enumerate(sorted((segments or {}).items())):
        if not _SEGMENT_KEY.match(key):
            raise UserError(f"segment key {key!r} is not a plain name", field="segments")
        params = {f"seg_path_{i}": f'$."{key}"', f"seg_vals_{i}": [str(v) for v in values]}
        value = f"json_extract_string(segment, $seg_path_{i})"
        rows = _traffic_rows(con, f"'{key}=' || {value}", f"WHERE {value} IN (SELECT unnest($seg_vals_{i}))", params)
        for (version, cell), traffic in rows.items():
            by_segment.setdefault(version, {})[cell] = traffic
    out = {}
    for (version, _), traffic in whole.items():
        out[version] = dataclasses.replace(traffic, segments=by_segment.get(version, {}))
    return out


def _metrics_on(
    con,
    prompt_id: str,
    since: datetime,
    versions: list[str],
    segments,
    registry: Registry | None,
    compare_segments: dict[str, list[str]] | None = None,
) -> CanaryMetrics:
    exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'traces'").fetchone()[0]
    if not exists:
        raise UserError("the warehouse has no traces table yet: ingest traces first")
    source = _failure_flags(con, prompt_id, since, registry)
    params: dict[str, Any] = {"prompt_id": prompt_id, "since": since, "versions": versions}
    con.execute(_CALLS_SQL.format(segments=_segment_filter(segments, params)), params)
    con.execute(_TRACES_SQL)
    cursor = con.execute(_METRICS_SQL)
    names = [d[0] for d in cursor.description]
    result = CanaryMetrics(prompt_id=prompt_id, since=since, segments=segments, failures_source=source)
    for row in cursor.fetchall():
        data = dict(zip(names, row, strict=True))
        version = data.pop("prompt_version")
        result.versions[version] = VersionCanaryMetrics(version=version, **data)
    result.traffic_by_version = _traffic(con, versions, compare_segments)
    for version, span_id in con.execute(
        "SELECT prompt_version, span_id FROM (SELECT prompt_version, span_id, row_number() OVER "
        "(PARTITION BY prompt_version ORDER BY ts, span_id) AS n FROM pr_canary_calls WHERE hard) "
        f"WHERE n <= {MAX_FAILING_SPANS} ORDER BY prompt_version, n"
    ).fetchall():
        result.failing_span_ids.setdefault(version, []).append(span_id)
    return result


def canary_metrics(
    warehouse: str | Path | None,
    prompt_id: str,
    since: str | datetime,
    *,
    versions: list[str],
    segments: dict[str, list[str]] | None = None,
    registry: Registry | None = None,
) -> CanaryMetrics:
    """Per-version canary metrics from traces since `since` on `segments` (see module doc).

    With `registry`, hard failures are recomputed by the detectors; else read from `failures`.
    """
    check_prompt_id(prompt_id)
    with read_connection(warehouse) as con:
        return _metrics_on(con, prompt_id, _parse_ts(since), list(versions), segments, registry)


class CanaryLook(BaseModel):
    """Which canary one look is about: the versions compared, the label move that started it, its traffic."""

    decision_id: str
    prompt_id: str
    candidate_version: str
    candidate_hash: str | None
    production_version: str
    production_hash: str | None
    canary_event_id: str | None
    gate_report_id: str | None
    canary_since: datetime
    canary_percent: float | None
    segments: dict[str, list[str]] | None


class CanaryAnalysis(CanaryLook):
    decision: CanaryDecision
    metrics: CanaryMetrics
    policy: dict[str, Any]
    decided_at: datetime

    @property
    def action(self) -> str:
        return self.decision.action

    def markdown(self) -> str:
        lines = [
            f"**{self.decision.action}** `{self.decision_id}`: {self.decision.reason}",
            "",
            f"candidate {self.candidate_version} at {self.canary_percent:g}% vs production {self.production_version}"
            f" since {self.canary_since.isoformat()}"
            + (f" on segments {json.dumps(self.segments, sort_keys=True)}" if self.segments else "")
            + (f" (gate report `{self.gate_report_id}`)" if self.gate_report_id else ""),
            "",
            "| comparison | candidate | production | estimate | always-valid interval | abort above | "
            "roll forward below | status |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for e in self.decision.evidence:
            lines.append(
                f"| {e.label} | {_fmt(e.candidate_value)} | {_fmt(e.production_value)} | {_fmt(e.estimate)}"
                f" | [{_fmt(e.lower)}, {_fmt(e.upper)}] | {_fmt(e.abort_above)} | "
                f"{_fmt(e.roll_forward_below)} | {e.status} |"
            )
        lines += ["", f"hard failures: {self.metrics.failures_source}", "", self.metrics.markdown()]
        return "\n".join(lines)


def _decision_id(parts: dict[str, Any]) -> str:
    return "cd_" + hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def analyse_canary(
    warehouse: str | Path | None,
    registry: Registry,
    prompt_id: str,
    *,
    policy: CanaryPolicy | None = None,
    min_duration_s: float | None = None,
    recompute_failures: bool = True,
    now: datetime | None = None,
) -> CanaryAnalysis | None:
    """Look at the running canary of `prompt_id` once; store and return the decision (None: no canary)."""
    check_prompt_id(prompt_id)
    current = registry.labels(prompt_id)
    canary, production = current.get(CANARY), current.get(PRODUCTION)
    if canary is None or production is None:
        return None
    candidate, baseline = canary.version_id, production.version_id
    package = registry.load_package(candidate)
    release = package.release_policy
    policy = policy or CanaryPolicy(min_canary_traces=max(1, release.min_traffic))
    min_duration_s = release.min_duration_s if min_duration_s is None else float(min_duration_s)
    since = _parse_ts(canary.moved_at)
    segments = canary.segments
    if not policy.segments and segments:
        # the segments the canary label names one by one: a regression in one is not averaged away
        named = {key: list(values) for key, values in segments.items() if len(values) > 1}
        policy = policy.model_copy(update={"segments": named})
    start_event = next((e for e in registry.history(prompt_id) if e.event_id == canary.event_id), None)
    gate_report_id = start_event.gate_report_id if start_event else None
    now = now or datetime.now(UTC)

    # on a lake only canary_decisions is staged: the calls and their signals are read as committed
    with write_transaction(warehouse, scope=Scope.of(("canary_decisions",))) as con:
        metrics = _metrics_on(
            con,
            prompt_id,
            since,
            [candidate, baseline],
            segments,
            registry if recompute_failures else None,
            policy.segments,
        )
        decision = decide_canary(
            metrics.traffic(candidate),
            metrics.traffic(baseline),
            policy,
            provenance={
                "prompt_id": prompt_id,
                "candidate": candidate,
                "production": baseline,
                "canary_event_id": canary.event_id,
                "gate_report_id": gate_report_id,
            },
        )
        elapsed = (now - since).total_seconds()
        if decision.action == "roll_forward" and elapsed < min_duration_s:
            decision = decision.model_copy(
                update={
                    "action": "freeze",
                    "reason": f"{decision.reason}, but the canary has run {elapsed / 60:.1f} min of the "
                    f"{min_duration_s / 60:.1f} min its release policy requires",
                }
            )
        cand, prod = metrics.traffic(candidate), metrics.traffic(baseline)
        failing = metrics.failing_span_ids.get(candidate, [])
        flag = _USER_FLAGS.get((decision.decided_by or "").split("[", 1)[0])
        if decision.action == "abort" and flag:
            # what users felt decided: the calls they reacted to become the incident cases
            failing = [
                r[0]
                for r in con.execute(
                    f"SELECT span_id FROM pr_canary_calls WHERE prompt_version = ? AND {flag} "
                    f"ORDER BY ts, span_id LIMIT {MAX_FAILING_SPANS}",
                    [candidate],
                ).fetchall()
            ]
        decision_id = _decision_id(
            {
                "prompt_id": prompt_id,
                "canary_event_id": canary.event_id,
                "candidate": candidate,
                "production": baseline,
                "counts": [cand.traces, cand.hard_failures, prod.traces, prod.hard_failures],
                "action": decision.action,
            }
        )
        analysis = CanaryAnalysis(
            decision_id=decision_id,
            prompt_id=prompt_id,
            candidate_version=candidate,
            candidate_hash=canary.package_hash,
            production_version=baseline,
            production_hash=production.package_hash,
            canary_event_id=canary.event_id,
            gate_report_id=gate_report_id,
            canary_since=since,
            canary_percent=canary.percent,
            segments=segments,
            decision=decision,
            metrics=metrics,
            policy={**policy.model_dump(mode="json"), "min_duration_s": min_duration_s},
            decided_at=now,
        )
        con.execute(
            """INSERT INTO canary_decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (decision_id) DO NOTHING""",
            [
                decision_id,
                prompt_id,
                candidate,
                analysis.candidate_hash,
                baseline,
                analysis.production_hash,
                analysis.canary_event_id,
                gate_report_id,
                since,
                analysis.canary_percent,
                json.dumps(segments) if segments else None,
                decision.action,
                decision.reason,
                cand.traces,
                prod.traces,
                cand.hard_failures,
                prod.hard_failures,
                metrics.model_dump_json(),
                json.dumps([e.model_dump(mode="json") for e in decision.evidence]),
                json.dumps(analysis.policy),
                failing,
                now,
            ],
        )
    return analysis


class CanaryDecisionRecord(CanaryLook):
    """One row of `canary_decisions` (one look at a running canary) as stored; JSON columns parsed."""

    model_config = ConfigDict(frozen=True)

    action: CanaryAction
    reason: str
    candidate_traces: int
    production_traces: int
    candidate_hard_failures: int
    production_hard_failures: int
    metrics: CanaryMetrics
    evidence: list[CanaryEvidence]
    policy: dict[str, Any]
    failing_span_ids: list[str] = Field(default_factory=list)
    decided_at: datetime

    @field_validator("segments", "metrics", "evidence", "policy", mode="before")
    @classmethod
    def _json_column(cls, value: Any) -> Any:
        # DuckDB hands JSON columns back as text.
        return json.loads(value) if isinstance(value, str) else value

    @field_validator("failing_span_ids", mode="before")
    @classmethod
    def _no_spans(cls, value: Any) -> Any:
        return [] if value is None else value


def load_decision(warehouse: str | Path | None, decision_id: str) -> CanaryDecisionRecord:
    with read_connection(warehouse) as con:
        cursor = con.execute("SELECT * FROM canary_decisions WHERE decision_id = ?", [decision_id])
        names = [d[0] for d in cursor.description]
        row = cursor.fetchone()
    if row is None:
        raise UserError(f"no canary decision {decision_id!r} in the warehouse", field="decision_id")
    return CanaryDecisionRecord.model_validate(dict(zip(names, row, strict=True)))


CanaryOutcomeState = Literal["rolled_forward", "aborted", "already_applied", "skipped"]


class ReleaseOutcome(BaseModel):
    decision_id: str
    prompt_id: str
    candidate: str
    state: CanaryOutcomeState
    reason: str
    event_ids: list[str] = Field(default_factory=list)
    incident_span_ids: list[str] = Field(default_factory=list)
    golden_version: str | None = None
    notes: list[str] = Field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"**{self.state}**: {self.candidate} (canary decision `{self.decision_id}`)", "", self.reason]
        if self.event_ids:
            lines += ["", "audit events: " + ", ".join(f"`{e}`" for e in self.event_ids)]
        if self.incident_span_ids:
            lines += [
                "",
                f"incident cases added: {len(self.incident_span_ids)}"
                + (f" (golden set now {self.golden_version})" if self.golden_version else ""),
            ]
        lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines)


def _decision_for(warehouse, prompt_id: str, decision_id: str, action: CanaryAction) -> CanaryDecisionRecord:
    record = load_decision(warehouse, decision_id)
    if record.prompt_id != prompt_id:
        raise UserError(
            f"canary decision {decision_id} is about {record.prompt_id}, not {prompt_id}", field="prompt_id"
        )
    if record.action != action:
        raise UserError(f"canary decision {decision_id} says {record.action}, not {action}", field="decision_id")
    return record


def _serves(registry: Registry, prompt_id: str, label: str, version: str) -> bool:
    return registry.resolve_label(prompt_id, label) == version


def roll_forward(
    registry: Registry,
    warehouse: str | Path | None,
    prompt_id: str,
    decision_id: str,
    *,
    actor: str | None = None,
) -> ReleaseOutcome:
    """Production label -> the canary's candidate, canary removed; idempotent per decision."""
    record = _decision_for(warehouse, prompt_id, decision_id, "roll_forward")
    candidate, report_id = record.candidate_version, record.gate_report_id
    actor = actor or "release-bot"
    out = ReleaseOutcome(decision_id=decision_id, prompt_id=prompt_id, candidate=candidate, state="skipped", reason="")
    if _serves(registry, prompt_id, PRODUCTION, candidate):
        out.state, out.reason = "already_applied", f"production already serves {candidate}"
        if _serves(registry, prompt_id, CANARY, candidate):
            event = registry.remove_label(
                prompt_id,
                CANARY,
                actor=actor,
                gate_report_id=report_id,
                reason=f"canary decision {decision_id}: {candidate} is in production",
            )
            out.event_ids += [event.event_id] if event else []
        return out
    if not _serves(registry, prompt_id, CANARY, candidate):
        out.reason = f"the canary no longer serves {candidate}; decision {decision_id} is stale"
        return out
    reason = f"canary decision {decision_id}: roll forward: {record.reason}"
    event = registry.move_label(prompt_id, PRODUCTION, candidate, actor=actor, gate_report_id=report_id, reason=reason)
    out.event_ids += [event.event_id] if event else []
    for label in (CANARY, STAGING):
        if _serves(registry, prompt_id, label, candidate):
            event = registry.remove_label(
                prompt_id,
                label,
                actor=actor,
                gate_report_id=report_id,
                reason=f"canary decision {decision_id}: {candidate} rolled forward to production",
            )
            out.event_ids += [event.event_id] if event else []
    out.state, out.reason = "rolled_forward", f"production now serves {candidate} ({reason})"
    return out


# Production's served answers, during the canary, to the inputs the candidate failed on.
_KEPT_ANSWERS_SQL = f"""
WITH failing AS (
    SELECT coalesce(t.span_id, t.record_key) AS span_id, {conversation_key("t")} AS input
    FROM traces t WHERE list_contains($spans, coalesce(t.span_id, t.record_key))
)
SELECT f.span_id, list(t.output ORDER BY t.ts DESC, t.record_key) AS outputs,
       list(CAST(t.tool_calls AS VARCHAR) ORDER BY t.ts DESC, t.record_key) AS tool_calls,
       list(CAST(t.input_messages AS VARCHAR) ORDER BY t.ts DESC, t.record_key) AS messages
FROM failing f JOIN traces t ON {conversation_key("t")} = f.input
WHERE t.prompt_id = $prompt_id AND t.prompt_version = $production AND t.ts >= $since
  AND coalesce(t.status, 'ok') <> 'error' AND {served()}
GROUP BY f.span_id
"""


def _kept_answers(
    warehouse: str | Path | None, registry: Registry, record: CanaryDecisionRecord, spans: list[str]
) -> dict[str, str]:
    """The expected answer the abort decision implies for each failing span: what production, the version
    the decision kept, answered to the same input during the canary, when that answer met its contract.
    As `--expected` JSON for `record_incident`; spans production never answered get none."""
    if not spans:
        return {}
    contract = checks.compile_contract(registry.load_package(record.production_version))
    with read_connection(warehouse) as con:
        rows = con.execute(
            _KEPT_ANSWERS_SQL,
            {
                "spans": spans,
                "prompt_id": record.prompt_id,
                "production": record.production_version,
                "since": record.canary_since,
            },
        ).fetchall()
    out = {}
    for span_id, outputs, tool_calls, messages in rows:
        for output, calls_text, messages_text in zip(outputs, tool_calls, messages, strict=True):
            calls = json.loads(calls_text) if calls_text else []
            if not checks.check_output(contract, output, calls, json.loads(messages_text or "[]")).contract_ok:
                continue
            expected = expected_from_correction(calls or output, contract)
            if expected:
                out[span_id] = json.dumps({"kind": expected["kind"], "value": expected["value"]})
                break
    return out


def abort_canary(
    registry: Registry,
    warehouse: str | Path | None,
    prompt_id: str,
    decision_id: str,
    *,
    actor: str | None = None,
    max_incidents: int = 20,
    rebuild_golden: bool = True,
) -> ReleaseOutcome:
    """Canary removed, candidate rejected, its failing traces recorded as incident cases; idempotent per decision.

    Each incident's expected answer is what production answered to the same input during the canary,
    where it did and met its contract (`_kept_answers`): the decision kept production's behaviour.
    Production is not touched (it still serves the version it served during the canary).
    """
    record = _decision_for(warehouse, prompt_id, decision_id, "abort")
    candidate, report_id = record.candidate_version, record.gate_report_id
    actor = actor or "release-bot"
    out = ReleaseOutcome(decision_id=decision_id, prompt_id=prompt_id, candidate=candidate, state="skipped", reason="")
    reason = f"canary decision {decision_id}: abort: {record.reason}"
    if not _serves(registry, prompt_id, CANARY, candidate):
        if registry.load_package(candidate).status == "rejected":
            out.state, out.reason = (
                "already_applied",
                f"the canary of {candidate} is already aborted and it is rejected",
            )
        else:
            out.reason = f"the canary no longer serves {candidate}; decision {decision_id} is stale"
        return out
    # Every label but production that points at the candidate goes (a shadow label too): a rejected
    # version is served and shadowed nowhere.
    others = sorted(
        name
        for name, entry in registry.labels(prompt_id).items()
        if entry.version_id == candidate and name not in (CANARY, STAGING, PRODUCTION)
    )
    for label in (CANARY, STAGING, *others):
        if _serves(registry, prompt_id, label, candidate):
            event = registry.remove_label(prompt_id, label, actor=actor, gate_report_id=report_id, reason=reason)
            out.event_ids += [event.event_id] if event else []
    event = registry.set_status(candidate, "rejected", actor=actor, gate_report_id=report_id, reason=reason)
    out.event_ids.append(event.event_id)
    out.state, out.reason = "aborted", f"canary of {candidate} ended and the version rejected ({reason})"

    workflow = None
    spans = record.failing_span_ids[:max_incidents]
    kept = _kept_answers(warehouse, registry, record, spans)
    with read_connection(warehouse) as con:
        for span_id in spans:
            try:
                workflow, _ = record_incident_on(
                    con,
                    registry.root,
                    span_id,
                    expected=kept.get(span_id),
                    note=f"canary of {candidate} aborted by {decision_id}",
                )
                out.incident_span_ids.append(span_id)
            except UserError as exc:  # already an incident, or the span left the warehouse
                out.notes.append(f"span {span_id}: {exc.message}")
    if workflow and rebuild_golden:
        try:
            result = build_golden(warehouse, registry.root, workflow)
            out.golden_version = result.version_id
        except UserError as exc:
            out.notes.append(f"golden set not rebuilt: {exc}")
    return out

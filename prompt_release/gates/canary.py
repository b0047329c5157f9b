"""The canary decision: roll forward, abort or freeze from per-version canary traffic, safe under repeated looks.

The canary sensor evaluates the same running canary again and again, so the
evidence is an always-valid confidence sequence (see `sequential.py`), not a
fixed-horizon test. Comparisons, candidate vs production on the same segments
and time window, per trace:

- hard-failure rate difference (rate points) and the mean log-latency
  difference (a geometric-mean latency ratio), as before;
- what users feel: escalation, negative-feedback, correction and
  refusal/clarification rate differences (late signals included: the
  newest event about a call counts, see `warehouse.metrics`), and cost per
  success as a ratio (the delta-method variance of log(mean cost / mean
  success) per arm), each only when both arms report it;
- each of those again per segment value, for the segments the policy names
  (`CanaryPolicy.segments`, e.g. {"tier": ["free", "pro"]}), so a regression
  confined to one segment is not averaged away.

Error control across metrics: Bonferroni. With k comparisons in the look,
each confidence sequence runs at confidence 1 - alpha/k, so the probability
that ANY of them ever excludes its true difference, over all looks and all
metrics, is at most alpha (Ville's inequality per sequence, union bound over
the k). The set of comparisons is fixed by the policy and by which fields the
app logs, never by the outcomes. Hence an equal candidate's canary is aborted
with probability at most alpha, and a candidate worse than a roll-forward
margin on any metric is rolled forward with probability at most alpha.

Abort (end the canary, reject the candidate; production never moved) when
any comparison shows the candidate worse (lower bound above its
`abort_above`: by default any demonstrated increase in a failure rate, any
increase of a user-felt rate beyond `user_rate_abort_above`, or a latency /
cost-per-success ratio above 1 + margin); the decision names the metric that
decided (`decided_by`: the first worse comparison in the order hard failures,
latency, escalation, negative feedback, correction, refusal, cost per
success, then per segment) and lists the others shown worse. Roll forward
when, with at least `min_canary_traces` candidate traces, every comparison is
shown within its margin (upper bound below `roll_forward_below`); otherwise
freeze: not enough traffic yet.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from prompt_release.gates import sequential as seq

CanaryAction = Literal["roll_forward", "abort", "freeze"]
ABORT, FREEZE, ROLL_FORWARD = -1, 0, 1

# The user-felt rates, in the order a decision names them.
USER_RATES = ("escalation_rate", "negative_feedback_rate", "correction_rate", "refusal_rate")
METRIC_ORDER = ("hard_failure_rate", "latency_ratio", *USER_RATES, "cost_per_success")


@dataclass(frozen=True)
class CanaryTraffic:
    """One version's canary-window traffic, per trace.

    `traces`, `hard_failures`; latencies (ms) if known; `rates`: user-felt rate
    name (USER_RATES) -> traces with that event; `cost_usd` and `successes`:
    per-trace cost and success (0/1) for cost per success, if cost was logged;
    `segments`: "key=value" -> that segment's traffic (the same fields).
    """

    traces: int
    hard_failures: int
    latency_ms: Sequence[float] | np.ndarray | None = field(default=None)
    rates: Mapping[str, int] = field(default_factory=dict)
    cost_usd: Sequence[float] | np.ndarray | None = None
    successes: Sequence[float] | np.ndarray | None = None
    segments: Mapping[str, CanaryTraffic] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.traces < 0 or not 0 <= self.hard_failures <= self.traces:
            raise ValueError("need 0 <= hard_failures <= traces")
        for name, count in self.rates.items():
            if name not in USER_RATES or not 0 <= count <= self.traces:
                raise ValueError(f"rate {name!r}: need a name of USER_RATES and 0 <= count <= traces")


class CanaryPolicy(BaseModel):
    """How much evidence the canary needs; defaults suit a few thousand canary traces."""

    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    failure_margin: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="roll forward only if the hard-failure rate is shown to be < production + this",
    )
    failure_abort_above: float = Field(
        0.0, ge=0.0, le=1.0, description="abort once the hard-failure rate is shown to be > production + this"
    )
    latency_margin: float = Field(0.10, gt=0.0, description="relative latency margin on the geometric-mean ratio")
    user_rates: list[str] = Field(
        default_factory=lambda: list(USER_RATES), description="user-felt rates compared (when both arms have them)"
    )
    user_rate_abort_above: float = Field(
        0.0, ge=0.0, le=1.0, description="abort once a user-felt rate is shown to be > production + this"
    )
    user_rate_margin: float = Field(
        0.05, gt=0.0, le=1.0, description="roll forward only if each user-felt rate is shown to be < production + this"
    )
    cost_margin: float = Field(0.25, gt=0.0, description="relative margin on the cost-per-success ratio")
    segments: dict[str, list[str]] = Field(
        default_factory=dict, description="segment key -> values compared one by one besides the whole canary"
    )
    min_canary_traces: int = Field(200, ge=1, description="no roll forward before this many candidate traces")
    rate_tau: float = Field(seq.DEFAULT_RATE_TAU, gt=0.0)
    user_rate_tau: float = Field(seq.DEFAULT_USER_RATE_TAU, gt=0.0)
    latency_tau: float = Field(seq.DEFAULT_LOG_LATENCY_TAU, gt=0.0)


class CanaryEvidence(BaseModel):
    """One comparison's confidence sequence at this look."""

    metric: str = Field(description="one of METRIC_ORDER")
    segment: str | None = Field(None, description="'key=value' when the comparison is one segment's")
    candidate_value: float | None
    production_value: float | None
    estimate: float | None = Field(
        description="difference of rates, or candidate/production ratio (latency: geometric means; cost per success)"
    )
    lower: float | None
    upper: float | None
    abort_above: float
    roll_forward_below: float
    status: Literal["worse", "within_margin", "undecided"]
    confidence: float
    method: str

    @property
    def label(self) -> str:
        return self.metric if self.segment is None else f"{self.metric}[{self.segment}]"


class CanaryDecision(BaseModel):
    """What the canary sensor should do now, and why."""

    action: CanaryAction
    reason: str
    decided_by: str | None = Field(None, description="the comparison that decided an abort (metric[segment])")
    candidate_traces: int
    production_traces: int
    evidence: list[CanaryEvidence]
    provenance: dict[str, Any] = Field(default_factory=dict)


def canary_rule(lower, upper, abort_above: float, roll_forward_below: float) -> np.ndarray:
    """Vectorised per-comparison status: -1 shown worse, +1 shown within margin, 0 undecided."""
    lo = np.asarray(lower, dtype=float)
    hi = np.asarray(upper, dtype=float)
    return np.where(lo > abort_above, ABORT, np.where(hi < roll_forward_below, ROLL_FORWARD, FREEZE))


def combine(statuses: Sequence[np.ndarray], candidate_traces, min_canary_traces: int) -> np.ndarray:
    """Vectorised action from per-comparison statuses: any worse aborts; all within margin (enough traffic) rolls forward."""
    stacked = np.stack([np.asarray(s) for s in statuses])
    worse = (stacked == ABORT).any(axis=0)
    forward = (stacked == ROLL_FORWARD).all(axis=0) & (np.asarray(candidate_traces) >= min_canary_traces)
    return np.where(worse, ABORT, np.where(forward, ROLL_FORWARD, FREEZE))


_STATUS = {ABORT: "worse", ROLL_FORWARD: "within_margin", FREEZE: "undecided"}
_ACTION = {ABORT: "abort", ROLL_FORWARD: "roll_forward", FREEZE: "freeze"}


@dataclass(frozen=True)
class _Plan:
    """One comparison to make: which metric, on which segment, between which traffic."""

    metric: str
    segment: str | None
    candidate: CanaryTraffic
    production: CanaryTraffic


def comparisons(candidate: CanaryTraffic, production: CanaryTraffic, policy: CanaryPolicy) -> list[_Plan]:
    """The comparisons of one look, fixed by the policy and by which fields both arms report."""
    cells: list[tuple[str | None, CanaryTraffic, CanaryTraffic]] = [(None, candidate, production)]
    for key, values in sorted(policy.segments.items()):
        for value in values:
            name = f"{key}={value}"
            empty = CanaryTraffic(0, 0, [] if candidate.latency_ms is not None else None)
            cells.append((name, candidate.segments.get(name, empty), production.segments.get(name, empty)))
    plans = []
    for segment, cand, prod in cells:
        top_c, top_p = (candidate, production)  # what is reported is decided by the whole canary
        for metric in METRIC_ORDER:
            if metric == "latency_ratio" and (top_c.latency_ms is None or top_p.latency_ms is None):
                continue
            if metric in USER_RATES and (
                metric not in policy.user_rates or metric not in top_c.rates or metric not in top_p.rates
            ):
                continue
            if metric == "cost_per_success" and (top_c.cost_usd is None or top_p.cost_usd is None):
                continue
            plans.append(_Plan(metric, segment, cand, prod))
    return plans


def decide_canary(
    candidate: CanaryTraffic,
    production: CanaryTraffic,
    policy: CanaryPolicy | None = None,
    *,
    provenance: Mapping[str, Any] | None = None,
) -> CanaryDecision:
    """Roll forward / abort / freeze for the current look at the canary."""
    policy = policy or CanaryPolicy()
    plans = comparisons(candidate, production, policy)
    confidence = 1.0 - (1.0 - policy.confidence) / len(plans)
    evidence = [_compare(plan, policy, confidence) for plan in plans]
    statuses = [
        np.asarray({"worse": ABORT, "within_margin": ROLL_FORWARD, "undecided": FREEZE}[e.status]) for e in evidence
    ]
    action = int(combine(statuses, candidate.traces, policy.min_canary_traces))
    decided_by = None
    if action == ABORT:
        worse = [e.label for e in evidence if e.status == "worse"]
        decided_by = worse[0]
        reason = f"candidate shown worse than production on {decided_by}"
        if len(worse) > 1:
            reason += f" (also {', '.join(worse[1:])})"
    elif action == ROLL_FORWARD:
        reason = f"after {candidate.traces} canary traces every comparison is within its margin"
    else:
        undecided = [e.label for e in evidence if e.status != "within_margin"]
        if candidate.traces < policy.min_canary_traces and not undecided:
            reason = (
                f"within margins, but only {candidate.traces} of the {policy.min_canary_traces} canary traces required"
            )
        else:
            reason = f"not enough traffic yet to decide {', '.join(undecided)} ({candidate.traces} canary traces)"
    return CanaryDecision(
        action=_ACTION[action],  # type: ignore[arg-type]
        reason=reason,
        decided_by=decided_by,
        candidate_traces=candidate.traces,
        production_traces=production.traces,
        evidence=evidence,
        provenance=dict(provenance or {}),
    )


def _rate(count: int, traces: int) -> float | None:
    return count / traces if traces else None


def _compare(plan: _Plan, policy: CanaryPolicy, confidence: float) -> CanaryEvidence:
    cand, prod, metric = plan.candidate, plan.production, plan.metric
    if metric in ("hard_failure_rate", *USER_RATES):
        if metric == "hard_failure_rate":
            xc, xp = cand.hard_failures, prod.hard_failures
            tau, abort_above, forward_below = policy.rate_tau, policy.failure_abort_above, policy.failure_margin
        else:
            xc, xp = cand.rates.get(metric, 0), prod.rates.get(metric, 0)
            tau, abort_above, forward_below = (
                policy.user_rate_tau,
                policy.user_rate_abort_above,
                policy.user_rate_margin,
            )
        cs = seq.rate_difference_sequence(xc, cand.traces, xp, prod.traces, confidence=confidence, tau=tau)
        status = int(canary_rule(cs.lower, cs.upper, abort_above, forward_below))
        return CanaryEvidence(
            metric=metric,
            segment=plan.segment,
            candidate_value=_rate(xc, cand.traces),
            production_value=_rate(xp, prod.traces),
            estimate=float(cs.estimate) if cand.traces and prod.traces else None,
            lower=_finite(cs.lower),
            upper=_finite(cs.upper),
            abort_above=abort_above,
            roll_forward_below=forward_below,
            status=_STATUS[status],
            confidence=confidence,
            method=cs.method,
        )
    if metric == "latency_ratio":
        cs = seq.log_latency_sequence(
            cand.latency_ms if cand.latency_ms is not None else [],
            prod.latency_ms if prod.latency_ms is not None else [],
            confidence=confidence,
            tau=policy.latency_tau,
        )
        margin, what = policy.latency_margin, "geometric-mean latency ratios"
        cand_value = _geo_mean(np.asarray(cand.latency_ms if cand.latency_ms is not None else [], dtype=float))
        prod_value = _geo_mean(np.asarray(prod.latency_ms if prod.latency_ms is not None else [], dtype=float))
    else:
        cs = seq.log_ratio_sequence(
            cand.cost_usd, cand.successes, prod.cost_usd, prod.successes, confidence=confidence, tau=policy.latency_tau
        )
        margin, what = policy.cost_margin, "cost-per-success ratios"
        cand_value, prod_value = _per_success(cand), _per_success(prod)
    limit = math.log1p(margin)
    status = int(canary_rule(cs.lower, cs.upper, limit, limit))
    return CanaryEvidence(
        metric=metric,
        segment=plan.segment,
        candidate_value=cand_value,
        production_value=prod_value,
        estimate=_exp(cs.estimate),
        lower=_exp(cs.lower),
        upper=_exp(cs.upper),
        abort_above=1.0 + margin,
        roll_forward_below=1.0 + margin,
        status=_STATUS[status],
        confidence=confidence,
        method=cs.method + f" (bounds shown as {what})",
    )


def _per_success(traffic: CanaryTraffic) -> float | None:
    if traffic.cost_usd is None or traffic.successes is None:
        return None
    cost = np.nan_to_num(np.asarray(traffic.cost_usd, dtype=float))
    wins = float(np.asarray(traffic.successes, dtype=float).sum())
    return float(cost.sum()) / wins if wins else None


def _finite(x) -> float | None:
    v = float(x)
    return v if math.isfinite(v) else None


def _exp(x) -> float | None:
    v = float(x)
    return math.exp(v) if math.isfinite(v) and v < 700 else None


def _geo_mean(values: np.ndarray) -> float | None:
    vals = values[np.isfinite(values) & (values > 0)]
    return float(np.exp(np.log(vals).mean())) if vals.size else None

"""The canary decision: roll forward, abort or freeze from per-version canary traffic, safe under repeated looks.

The canary sensor evaluates the same running canary again and again, so the
evidence is an always-valid confidence sequence (see `sequential.py`), not a
fixed-horizon test. Two comparisons, candidate vs production on the same
segments and time window: the hard-failure rate difference (rate points) and
the mean log-latency difference (a geometric-mean latency ratio). Each runs
at confidence 1 - alpha/k for k comparisons, so the canary of an equal
candidate is aborted with probability at most alpha over all looks and
metrics. Abort (end the canary, reject the candidate; production never moved)
when the candidate is shown worse (hard-failure difference above
`failure_abort_above`, default 0: any demonstrated increase; or latency
ratio above 1 + `latency_margin`); roll forward when, with at least
`min_canary_traces` candidate traces, every comparison is shown within its
margin (hard-failure difference below `failure_margin`, latency ratio below
1 + `latency_margin`); otherwise freeze: not enough traffic yet.
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


@dataclass(frozen=True)
class CanaryTraffic:
    """One version's canary-window traffic: trace count, hard failures, and latencies (ms) if known."""

    traces: int
    hard_failures: int
    latency_ms: Sequence[float] | np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        if self.traces < 0 or not 0 <= self.hard_failures <= self.traces:
            raise ValueError("need 0 <= hard_failures <= traces")


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
    min_canary_traces: int = Field(200, ge=1, description="no roll forward before this many candidate traces")
    rate_tau: float = Field(seq.DEFAULT_RATE_TAU, gt=0.0)
    latency_tau: float = Field(seq.DEFAULT_LOG_LATENCY_TAU, gt=0.0)


class CanaryEvidence(BaseModel):
    """One comparison's confidence sequence at this look."""

    metric: Literal["hard_failure_rate", "latency_ratio"]
    candidate_value: float | None
    production_value: float | None
    estimate: float | None = Field(
        description="difference of rates, or candidate/production geometric-mean latency ratio"
    )
    lower: float | None
    upper: float | None
    abort_above: float
    roll_forward_below: float
    status: Literal["worse", "within_margin", "undecided"]
    confidence: float
    method: str


class CanaryDecision(BaseModel):
    """What the canary sensor should do now, and why."""

    action: CanaryAction
    reason: str
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


def decide_canary(
    candidate: CanaryTraffic,
    production: CanaryTraffic,
    policy: CanaryPolicy | None = None,
    *,
    provenance: Mapping[str, Any] | None = None,
) -> CanaryDecision:
    """Roll forward / abort / freeze for the current look at the canary."""
    policy = policy or CanaryPolicy()
    use_latency = candidate.latency_ms is not None and production.latency_ms is not None
    k = 2 if use_latency else 1
    confidence = 1.0 - (1.0 - policy.confidence) / k
    evidence: list[CanaryEvidence] = []

    rate = seq.rate_difference_sequence(
        candidate.hard_failures, candidate.traces, production.hard_failures, production.traces,
        confidence=confidence, tau=policy.rate_tau,
    )  # fmt: skip
    rate_status = int(canary_rule(rate.lower, rate.upper, policy.failure_abort_above, policy.failure_margin))
    evidence.append(
        CanaryEvidence(
            metric="hard_failure_rate",
            candidate_value=candidate.hard_failures / candidate.traces if candidate.traces else None,
            production_value=production.hard_failures / production.traces if production.traces else None,
            estimate=float(rate.estimate) if candidate.traces and production.traces else None,
            lower=_finite(rate.lower),
            upper=_finite(rate.upper),
            abort_above=policy.failure_abort_above,
            roll_forward_below=policy.failure_margin,
            status=_STATUS[rate_status],
            confidence=confidence,
            method=rate.method,
        )  # fmt: skip
    )
    statuses = [rate_status]

    if use_latency:
        lat = seq.log_latency_sequence(
            candidate.latency_ms, production.latency_ms, confidence=confidence, tau=policy.latency_tau
        )
        limit = math.log1p(policy.latency_margin)
        lat_status = int(canary_rule(lat.lower, lat.upper, limit, limit))
        cand_lat = np.asarray(candidate.latency_ms, dtype=float)
        prod_lat = np.asarray(production.latency_ms, dtype=float)
        evidence.append(
            CanaryEvidence(
                metric="latency_ratio",
                candidate_value=_geo_mean(cand_lat),
                production_value=_geo_mean(prod_lat),
                estimate=_exp(lat.estimate),
                lower=_exp(lat.lower),
                upper=_exp(lat.upper),
                abort_above=1.0 + policy.latency_margin,
                roll_forward_below=1.0 + policy.latency_margin,
                status=_STATUS[lat_status],
                confidence=confidence,
                method=lat.method + " (bounds shown as geometric-mean latency ratios)",
            )  # fmt: skip
        )
        statuses.append(lat_status)

    action = int(combine([np.asarray(s) for s in statuses], candidate.traces, policy.min_canary_traces))
    if action == ABORT:
        worse = [e.metric for e in evidence if e.status == "worse"]
        reason = f"candidate shown worse than production on {', '.join(worse)}"
    elif action == ROLL_FORWARD:
        reason = f"after {candidate.traces} canary traces every comparison is within its margin"
    else:
        undecided = [e.metric for e in evidence if e.status != "within_margin"]
        if candidate.traces < policy.min_canary_traces and not undecided:
            reason = (
                f"within margins, but only {candidate.traces} of the {policy.min_canary_traces} canary traces required"
            )
        else:
            reason = f"not enough traffic yet to decide {', '.join(undecided)} ({candidate.traces} canary traces)"
    return CanaryDecision(
        action=_ACTION[action],  # type: ignore[arg-type]
        reason=reason,
        candidate_traces=candidate.traces,
        production_traces=production.traces,
        evidence=evidence,
        provenance=dict(provenance or {}),
    )


def _finite(x) -> float | None:
    v = float(x)
    return v if math.isfinite(v) else None


def _exp(x) -> float | None:
    v = float(x)
    return math.exp(v) if math.isfinite(v) and v < 700 else None


def _geo_mean(values: np.ndarray) -> float | None:
    vals = values[np.isfinite(values) & (values > 0)]
    return float(np.exp(np.log(vals).mean())) if vals.size else None

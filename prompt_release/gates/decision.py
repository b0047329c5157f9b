"""The gate decision: candidate vs baseline per-case results plus a gate spec in, promote / reject / freeze out.

Each gate gets an interval at the spec's confidence level and is pass, fail
or inconclusive (the interval straddles the threshold; a statistically
meaningless "pass" is never given). Absolute rate gates use the Wilson
interval of the candidate rate; rate gates relative to the baseline use
Newcombe's paired interval for the difference on the same cases (with the
exact McNemar p-value reported beside it); latency percentiles use
distribution-free order-statistic intervals (ratio for `%` margins, difference
for margins in ms); judge scores and per-success ratios use paired percentile
bootstraps. A zero-tolerance gate (`0%`, or `100%` on a higher-is-better
rate) is decided by counting: one occurrence fails. Every method has a
minimum n (`statistics.MIN_CASES`, `statistics.min_cases_for_quantile`):
with fewer paired cases the gate neither passes nor fails, it is inconclusive
and names the n needed; a bootstrap of one pair is a point, not an interval.
A gate with fewer paired cases than its `min_samples`
cannot pass (it can still fail). Overall: reject if a hard gate fails,
freeze if none fails but one is inconclusive (with the number of cases that
would likely decide it, assuming the observed effect holds), promote
otherwise. Soft gates are reported and never block.

Per-case inputs (one row per case, aligned on `case_id`): a rate metric or
`judge_score` reads a column with the metric's own name (booleans / 0-1 for
rates, a float score), latency percentiles read `latency_ms`,
`tokens_per_success` reads `tokens` and `success`, `cost_per_success` reads
`cost_usd` and `success`. Missing values (null/NaN) drop the case from that
gate only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, Field

from prompt_release.errors import UserError
from prompt_release.gates import statistics as st
from prompt_release.gates.spec import LATENCY_QUANTILES, Gate, GateSpec

Outcome = Literal["pass", "fail", "inconclusive"]
Verdict = Literal["promote", "reject", "freeze"]
EXIT_CODES: dict[str, int] = {"promote": 0, "reject": 1, "freeze": 3}

PairedColumns = Mapping[str, tuple[Any, Any]]
"""Per-case input column name -> (candidate values, baseline values), aligned by case."""

# Beyond this many cases we stop suggesting a sample size: the effect is too
# close to the threshold for any realistic golden set to settle it.
_MAX_SUGGESTED_CASES = 10_000_000


class GateResult(BaseModel):
    """One gate's evidence and outcome, everything a report row needs."""

    metric: str
    severity: Literal["hard", "soft"]
    threshold: str = Field(description="threshold as written in the spec")
    rule: str = Field(description="canonical rule, e.g. '>= baseline - 1 pt'")
    n: int = Field(description="paired cases with a value for this metric")
    baseline_value: float | None
    candidate_value: float | None
    effect: float | None = Field(
        description="what the interval is about: the candidate value, the difference or the ratio"
    )
    interval_of: Literal["candidate", "difference", "ratio"]
    interval_lower: float | None
    interval_upper: float | None
    threshold_value: float = Field(description="the threshold on the interval's scale")
    effective_threshold: float | None = Field(description="the threshold on the candidate metric's scale")
    outcome: Outcome
    method: str
    p_value: float | None = Field(None, description="exact McNemar p-value (paired rate gates)")
    candidate_count: int | None = Field(None, description="cases where the rate's event occurred for the candidate")
    baseline_count: int | None = None
    cases_to_decide: int | None = Field(
        None, description="total paired cases that would likely decide an inconclusive gate"
    )
    reason: str


class GateDecision(BaseModel):
    """The verdict with its per-gate evidence and the ids it was made from."""

    verdict: Verdict
    exit_code: int = Field(description="CLI exit status: 0 promote, 1 reject, 3 freeze")
    summary: str
    confidence: float
    candidate_prompt: str | None
    baseline_prompt: str | None
    model: str | None
    dataset: str | None
    provenance: dict[str, Any] = Field(default_factory=dict, description="package hashes, rubric version, run ids...")
    n_cases: int = Field(description="cases present for both candidate and baseline")
    unpaired_cases: int = Field(0, description="cases present for only one side (left out)")
    gates: list[GateResult]
    failed_gates: list[str] = Field(description="hard gates that failed")
    inconclusive_gates: list[str] = Field(description="hard gates that are inconclusive")
    soft_warnings: list[str] = Field(description="soft gates that did not pass")
    cases_to_decide: int | None = Field(
        None, description="for freeze: total cases that would likely decide every inconclusive hard gate"
    )


def metric_inputs(gate: Gate) -> tuple[str, ...]:
    """Per-case columns a gate reads."""
    if gate.kind in ("rate", "score"):
        return (gate.metric,)
    if gate.kind == "latency":
        return ("latency_ms",)
    if gate.kind == "tokens":
        return ("tokens", "success")
    return ("cost_usd", "success")


# --------------------------------------------------------------------------- entry points


def decide(
    spec: GateSpec,
    candidate: pl.DataFrame,
    baseline: pl.DataFrame,
    *,
    provenance: Mapping[str, Any] | None = None,
    n_resamples: int = st.DEFAULT_RESAMPLES,
    seed: int = st.DEFAULT_SEED,
) -> GateDecision:
    """Decide from per-case result frames (a `case_id` column plus the metric inputs), paired on case_id."""
    columns = sorted({c for gate in spec.parsed_gates for c in metric_inputs(gate)})
    for side, frame in (("candidate", candidate), ("baseline", baseline)):
        if "case_id" not in frame.columns:
            raise UserError(f"{side} results have no 'case_id' column")
        if frame["case_id"].is_duplicated().any():
            dup = frame.filter(pl.col("case_id").is_duplicated())["case_id"][0]
            raise UserError(f"{side} results list case '{dup}' more than once")
        for gate in spec.parsed_gates:
            for col in metric_inputs(gate):
                if col not in frame.columns:
                    raise UserError(
                        f"{side} results have no '{col}' column, needed by gate '{gate.metric}'",
                        field=f"gates.{gate.metric}",
                    )
    cand = candidate.select(["case_id", *columns])
    base = baseline.select(["case_id", *columns])
    joined = cand.join(base, on="case_id", how="inner", suffix="__baseline")
    unpaired = cand.height + base.height - 2 * joined.height
    paired = {
        col: (
            joined[col].cast(pl.Float64).to_numpy(),
            joined[f"{col}__baseline"].cast(pl.Float64).to_numpy(),
        )
        for col in columns
    }
    return decide_paired(
        spec,
        paired,
        n_cases=joined.height,
        unpaired_cases=unpaired,
        provenance=provenance,
        n_resamples=n_resamples,
        seed=seed,
    )


def decide_paired(
    spec: GateSpec,
    paired: PairedColumns,
    *,
    n_cases: int | None = None,
    unpaired_cases: int = 0,
    provenance: Mapping[str, Any] | None = None,
    n_resamples: int = st.DEFAULT_RESAMPLES,
    seed: int = st.DEFAULT_SEED,
) -> GateDecision:
    """Decide from aligned numpy arrays per input column (see `metric_inputs`)."""
    results = [
        evaluate_gate(gate, paired, confidence=spec.confidence, n_resamples=n_resamples, seed=seed)
        for gate in spec.parsed_gates
    ]
    if n_cases is None:
        n_cases = max((len(np.asarray(c)) for c, _ in paired.values()), default=0)
    prov = dict(provenance or {})
    return _verdict(spec, results, n_cases, unpaired_cases, prov)


def _verdict(
    spec: GateSpec, results: list[GateResult], n_cases: int, unpaired: int, prov: dict[str, Any]
) -> GateDecision:
    hard = [r for r in results if r.severity == "hard"]
    failed = [r.metric for r in hard if r.outcome == "fail"]
    inconclusive = [r for r in hard if r.outcome == "inconclusive"]
    soft_warnings = [r.metric for r in results if r.severity == "soft" and r.outcome != "pass"]
    cases_to_decide: int | None = None
    if failed:
        verdict: Verdict = "reject"
        summary = f"reject: hard gate(s) failed: {', '.join(failed)}"
    elif inconclusive:
        verdict = "freeze"
        sized = [r for r in inconclusive if r.cases_to_decide is not None]
        unsized = [r.metric for r in inconclusive if r.cases_to_decide is None]
        more = ""
        if sized:
            cases_to_decide = max(r.cases_to_decide for r in sized)  # type: ignore[type-var]
            decides = (
                "it" if len(inconclusive) == 1 else ("them" if not unsized else ", ".join(r.metric for r in sized))
            )
            more = f"; about {cases_to_decide} paired cases would likely decide {decides} (have {n_cases})"
        if unsized:
            # No data, or an observed effect on the threshold: no sample size to suggest.
            more += f"; no sample size is likely to decide {', '.join(unsized)} (see the gate's reason)"
        summary = f"freeze: not enough evidence for {', '.join(r.metric for r in inconclusive)}{more}"
    else:
        verdict = "promote"
        summary = f"promote: all {len(hard)} hard gate(s) pass"
    if soft_warnings:
        summary += f" (soft gates not passing: {', '.join(soft_warnings)})"
    return GateDecision(
        verdict=verdict,
        exit_code=EXIT_CODES[verdict],
        summary=summary,
        confidence=spec.confidence,
        candidate_prompt=prov.get("candidate_prompt", spec.candidate_prompt),
        baseline_prompt=prov.get("baseline_prompt", spec.baseline_prompt),
        model=prov.get("model", spec.model),
        dataset=prov.get("dataset", spec.dataset),
        provenance=prov,
        n_cases=n_cases,
        unpaired_cases=unpaired,
        gates=results,
        failed_gates=failed,
        inconclusive_gates=[r.metric for r in inconclusive],
        soft_warnings=soft_warnings,
        cases_to_decide=cases_to_decide,
    )


# --------------------------------------------------------------------------- one gate


def evaluate_gate(
    gate: Gate,
    paired: PairedColumns,
    *,
    confidence: float = st.DEFAULT_CONFIDENCE,
    n_resamples: int = st.DEFAULT_RESAMPLES,
    seed: int = st.DEFAULT_SEED,
) -> GateResult:
    """Evaluate one gate on aligned per-case arrays."""
    cols = metric_inputs(gate)
    for col in cols:
        if col not in paired:
            raise UserError(f"no per-case '{col}' results for gate '{gate.metric}'", field=f"gates.{gate.metric}")
    cand = np.column_stack([np.asarray(paired[c][0], dtype=float) for c in cols])
    base = np.column_stack([np.asarray(paired[c][1], dtype=float) for c in cols])
    if cand.shape != base.shape:
        raise ValueError(f"candidate and baseline inputs for {gate.metric} are not aligned per case")
    keep = ~(np.isnan(cand).any(axis=1) | np.isnan(base).any(axis=1))
    cand, base = cand[keep], base[keep]
    n = int(cand.shape[0])
    if n == 0:
        return _no_data(gate, confidence)
    if gate.kind == "rate":
        result = _rate_gate(gate, cand[:, 0], base[:, 0], confidence)
    else:
        result = _bootstrap_gate(gate, cand, base, confidence, n_resamples, seed)
    if gate.min_samples is not None and n < gate.min_samples and result.outcome == "pass":
        need = max(gate.min_samples, result.cases_to_decide or 0)
        result = result.model_copy(
            update={
                "outcome": "inconclusive",
                "cases_to_decide": need,
                "reason": f"would pass, but n={n} is below the gate's min_samples={gate.min_samples}",
            }
        )
    return result


def _threshold_on_interval_scale(gate: Gate) -> tuple[float, Literal["candidate", "difference", "ratio"]]:
    if gate.reference == "absolute":
        assert gate.value is not None
        return gate.value, "candidate"
    assert gate.margin is not None
    if gate.margin_kind == "relative":
        return 1.0 + gate.margin, "ratio"
    return gate.margin, "difference"


def _effective_threshold(gate: Gate, baseline_value: float | None) -> float | None:
    if gate.reference == "absolute":
        return gate.value
    if baseline_value is None or not math.isfinite(baseline_value):
        return None
    assert gate.margin is not None
    if gate.margin_kind == "relative":
        return baseline_value * (1.0 + gate.margin)
    return baseline_value + gate.margin


def _outcome(lower: float, upper: float, threshold: float, comparator: str) -> Outcome:
    if comparator in (">=", ">"):
        passed = lower >= threshold if comparator == ">=" else lower > threshold
        failed = upper < threshold if comparator == ">=" else upper <= threshold
    else:
        passed = upper <= threshold if comparator == "<=" else upper < threshold
        failed = lower > threshold if comparator == "<=" else lower >= threshold
    if passed:
        return "pass"
    return "fail" if failed else "inconclusive"


def _decided_mask(lower: np.ndarray, upper: np.ndarray, threshold: float, comparator: str) -> np.ndarray:
    if comparator in (">=", ">"):
        return (lower >= threshold) | (upper < threshold)
    return (upper <= threshold) | (lower > threshold)


def _size_grid(n: int) -> np.ndarray:
    # Candidate sample sizes from n upward in ~2% steps: one vectorised pass finds
    # the first that decides, to within 2%.
    steps = np.ceil(n * 1.02 ** np.arange(0, 1200)).astype(np.int64)
    return np.unique(steps[steps <= _MAX_SUGGESTED_CASES])


def _first_deciding(grid: np.ndarray, mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(grid[hits[0]]) if hits.size else None


def _fmt(kind: str, scale: str, value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a" if value is None else ("+inf" if value > 0 else "-inf")
    if scale == "ratio":
        return f"x{value:.3f}"
    if kind == "rate":
        return f"{value * 100:+.2f} pt" if scale == "difference" else f"{value * 100:.2f}%"
    if kind == "latency":
        return f"{value:+.1f} ms" if scale == "difference" else f"{value:.1f} ms"
    return f"{value:+.4g}" if scale == "difference" else f"{value:.4g}"


def _reason(
    gate: Gate, outcome: Outcome, effect: float, lo: float, hi: float, t: float, scale: str, n: int, cases: int | None
) -> str:
    iv = f"[{_fmt(gate.kind, scale, lo)}, {_fmt(gate.kind, scale, hi)}]"
    what = {"candidate": gate.metric, "difference": "candidate - baseline", "ratio": "candidate / baseline"}[scale]
    th = _fmt(gate.kind, scale, t)
    if outcome == "pass":
        return f"{what} interval {iv} lies on the passing side of {th}"
    if outcome == "fail":
        return f"{what} interval {iv} lies on the failing side of {th}"
    leaning = "pass" if _outcome(effect, effect, t, gate.comparator) == "pass" else "fail"
    tail = (
        f"; leaning {leaning}; about {cases} paired cases would likely decide it if the observed effect holds"
        if cases is not None
        else "; the observed effect sits (almost) on the threshold"
    )
    return f"{what} interval {iv} straddles {th} with n={n}{tail}"


def _no_data(gate: Gate, confidence: float) -> GateResult:
    t, scale = _threshold_on_interval_scale(gate)
    return GateResult(
        metric=gate.metric, severity=gate.severity, threshold=gate.threshold, rule=gate.describe(), n=0,
        baseline_value=None, candidate_value=None, effect=None, interval_of=scale, interval_lower=None,
        interval_upper=None, threshold_value=t, effective_threshold=gate.value if gate.reference == "absolute" else None,
        outcome="inconclusive", method="no data", cases_to_decide=gate.min_samples,
        reason="no paired case has a value for this metric",
    )  # fmt: skip


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _rate_gate(gate: Gate, cand: np.ndarray, base: np.ndarray, confidence: float) -> GateResult:
    if not (np.isin(cand, (0.0, 1.0)).all() and np.isin(base, (0.0, 1.0)).all()):
        raise ValueError(f"rate metric {gate.metric} needs booleans (0/1) per case")
    c, b = cand.astype(bool), base.astype(bool)
    n = c.size
    both, only_c, only_b, neither = st.paired_table(c, b)
    cand_count, base_count = both + only_c, both + only_b
    cand_rate, base_rate = cand_count / n, base_count / n
    p_value = float(st.mcnemar_exact_p_value(only_c, only_b))
    t, scale = _threshold_on_interval_scale(gate)
    cases: int | None = None

    if gate.reference == "absolute":
        lo_a, hi_a = st.wilson_bounds(cand_count, n, confidence)
        lo, hi, effect = float(lo_a), float(hi_a), cand_rate
        if gate.zero_tolerance:
            violations = cand_count if gate.comparator == "<=" else n - cand_count
            outcome: Outcome = "fail" if violations > 0 else "pass"
            method = "zero tolerance: one occurrence fails (Wilson score interval shown)"
            reason = (
                f"{violations} of {n} cases violate a zero-tolerance gate"
                if violations
                else f"no violation in {n} cases"
            )
            if not violations and n < st.MIN_CASES["wilson"]:
                outcome, cases = "inconclusive", st.MIN_CASES["wilson"]
                reason = _below_minimum(
                    n, cases, "a zero-tolerance pass (the Wilson minimum)", f"no violation in {n} cases"
                )
        elif n < st.MIN_CASES["wilson"]:
            outcome, method, cases = (
                "inconclusive",
                "Wilson score interval of the candidate rate",
                st.MIN_CASES["wilson"],
            )
            reason = _below_minimum(n, cases, "the Wilson score interval")
        else:
            outcome = _outcome(lo, hi, t, gate.comparator)
            method = "Wilson score interval of the candidate rate"
            if outcome == "inconclusive":
                grid = _size_grid(n)
                glo, ghi = st.wilson_bounds(cand_rate * grid, grid, confidence)
                cases = _first_deciding(grid, _decided_mask(glo, ghi, t, gate.comparator))
            reason = _reason(gate, outcome, effect, lo, hi, t, scale, n, cases)
    else:
        est, lo_a, hi_a = st.newcombe_paired_bounds(both, only_c, only_b, neither, confidence)
        lo, hi, effect = float(lo_a), float(hi_a), float(est)
        method = "Newcombe paired score interval of the difference (exact McNemar p-value beside it)"
        if n < st.MIN_CASES["newcombe"]:
            outcome, cases = "inconclusive", st.MIN_CASES["newcombe"]
            reason = _below_minimum(n, cases, "the Newcombe paired interval")
        else:
            outcome = _outcome(lo, hi, t, gate.comparator)
            if outcome == "inconclusive":
                grid = _size_grid(n)
                scale_f = grid / n
                glo_d = st.newcombe_paired_bounds(
                    both * scale_f, only_c * scale_f, only_b * scale_f, neither * scale_f, confidence
                )
                cases = _first_deciding(grid, _decided_mask(glo_d[1], glo_d[2], t, gate.comparator))
            reason = _reason(gate, outcome, effect, lo, hi, t, scale, n, cases)

    return GateResult(
        metric=gate.metric, severity=gate.severity, threshold=gate.threshold, rule=gate.describe(), n=n,
        baseline_value=base_rate, candidate_value=cand_rate, effect=effect, interval_of=scale,
        interval_lower=lo, interval_upper=hi, threshold_value=t, effective_threshold=_effective_threshold(gate, base_rate),
        outcome=outcome, method=method, p_value=p_value, candidate_count=cand_count, baseline_count=base_count,
        cases_to_decide=cases, reason=reason,
    )  # fmt: skip


def _statistic_for(gate: Gate) -> st.Statistic:
    if gate.kind == "latency":
        return st.percentile_statistic(LATENCY_QUANTILES[gate.metric])
    if gate.kind == "score":
        return st.mean_statistic
    return st.ratio_of_sums_statistic


def _below_minimum(n: int, minimum: int, method: str, observed: str = "") -> str:
    return (
        f"n={n} is below the minimum of {minimum} paired cases for {method}: no pass or fail from "
        f"this gate until {minimum} cases have a value" + (f" ({observed})" if observed else "")
    )


def min_cases(gate: Gate, confidence: float) -> int:
    """Fewest paired cases on which this gate's interval method decides anything."""
    if gate.kind == "latency":
        q = LATENCY_QUANTILES[gate.metric]
        _, scale = _threshold_on_interval_scale(gate)
        # A comparison combines two one-sample intervals at 1 - alpha/2 each.
        return st.min_cases_for_quantile(q, confidence if scale == "candidate" else 1 - (1 - confidence) / 2)
    if gate.kind == "rate":
        return st.MIN_CASES["wilson" if gate.reference == "absolute" else "newcombe"]
    return st.MIN_CASES["bootstrap"]


def _bootstrap_gate(
    gate: Gate, cand: np.ndarray, base: np.ndarray, confidence: float, n_resamples: int, seed: int
) -> GateResult:
    statistic = _statistic_for(gate)
    if gate.kind in ("latency", "score"):
        cand, base = cand[:, 0], base[:, 0]
    n = cand.shape[0]
    cand_value = float(statistic(cand[np.newaxis, ...])[0])
    base_value = float(statistic(base[np.newaxis, ...])[0])
    t, scale = _threshold_on_interval_scale(gate)
    minimum = min_cases(gate, confidence)
    if gate.kind == "latency":
        q = LATENCY_QUANTILES[gate.metric]
        each = confidence if scale == "candidate" else 1 - (1 - confidence) / 2
        method = f"order-statistic interval of p{q * 100:g}" + (
            "" if scale == "candidate" else f" per arm at {each:.1%}, combined (Bonferroni)"
        )
    elif scale == "candidate":
        method = f"percentile bootstrap of the candidate {gate.metric} ({n_resamples} resamples)"
    else:
        method = f"paired bootstrap of the {scale} of {gate.metric} (percentile, {n_resamples} resamples)"
    if n < minimum:
        effect = (
            cand_value
            if scale == "candidate"
            else (
                cand_value - base_value
                if scale == "difference"
                else (cand_value / base_value if base_value > 0 else math.inf)
            )
        )
        return GateResult(
            metric=gate.metric, severity=gate.severity, threshold=gate.threshold, rule=gate.describe(), n=n,
            baseline_value=_finite_or_none(base_value), candidate_value=_finite_or_none(cand_value),
            effect=_finite_or_none(effect), interval_of=scale, interval_lower=None, interval_upper=None,
            threshold_value=t, effective_threshold=_effective_threshold(gate, base_value), outcome="inconclusive",
            method=method, cases_to_decide=minimum, reason=_below_minimum(n, minimum, f"the {method}"),
        )  # fmt: skip
    if gate.kind == "latency":
        if scale == "candidate":
            iv = st.quantile_interval(cand, q, confidence)
        else:
            iv = st.quantile_comparison(cand, base, q, compare=scale, confidence=confidence)
    elif scale == "candidate":
        iv = st.bootstrap_interval(
            cand, statistic, confidence=confidence, n_resamples=n_resamples, seed=seed, method_name=gate.metric
        )
    else:
        iv = st.paired_bootstrap(
            cand, base, statistic, compare=scale, confidence=confidence, n_resamples=n_resamples, seed=seed
        )
    lo, hi, effect = iv.lower, iv.upper, iv.estimate
    outcome = _outcome(lo, hi, t, gate.comparator)
    cases: int | None = None
    if outcome == "inconclusive" and math.isfinite(effect):
        # Interval half-widths shrink like 1/sqrt(n) (bootstrap and order statistics alike):
        # scale the half-width on the side that has to clear the threshold.
        passing_side = effect >= t if gate.comparator in (">=", ">") else effect <= t
        if gate.comparator in (">=", ">"):
            half = (effect - lo) if passing_side else (hi - effect)
        else:
            half = (hi - effect) if passing_side else (effect - lo)
        distance = abs(effect - t)
        if distance > 0 and math.isfinite(half):
            need = math.ceil(n * (half / distance) ** 2)
            cases = need if need <= _MAX_SUGGESTED_CASES else None
    reason = _reason(gate, outcome, effect, lo, hi, t, scale, n, cases)
    return GateResult(
        metric=gate.metric, severity=gate.severity, threshold=gate.threshold, rule=gate.describe(), n=n,
        baseline_value=_finite_or_none(base_value), candidate_value=_finite_or_none(cand_value),
        effect=_finite_or_none(effect), interval_of=scale, interval_lower=_finite_or_none(lo),
        interval_upper=_finite_or_none(hi), threshold_value=t,
        effective_threshold=_effective_threshold(gate, base_value), outcome=outcome, method=method,
        cases_to_decide=cases, reason=reason,
    )  # fmt: skip

"""Adaptive backtests: stop paying for answers once every hard gate is decided.

A backtest answers its cases in batches. After each batch, `look` evaluates
every hard gate with an always-valid confidence sequence (the normal-mixture
mSPRT of `gates.sequential`, which the canary uses), so looking after every
batch does not inflate the error rate. The run stops when

- a hard gate is decided FAIL (the candidate will be rejected: no answer that
  follows can save it), or
- every hard gate is decided PASS, or
- the set is exhausted: the full run's fixed-horizon gate decides, as without
  adaptivity.

**Labelled minimum.** A decided verdict stops the run only once each hard
accuracy gate (`<task>_accuracy`) has read the spec's `min_labelled_n`
labelled cases (200 by default; every labelled case of the run where it has
fewer). An accuracy gate reads only cases with an expected answer, and a
contract failure decides a reject within a few dozen cases, long before the
report could say anything about correctness; the release author fixing the
contract would learn whether the candidate is also wrong on the task only on
the next run. So once the verdict is known and only that minimum is missing,
the run answers the remaining labelled cases alone, in the permutation's
order (a uniform random sample of the labelled cases, which is all an accuracy
gate reads), and skips the unlabelled ones that could add nothing.

**Order.** Cases are drawn in a random permutation fixed by the run (seeded,
recorded). The statistics of a look use only the longest prefix of that
permutation whose cases have all been answered, so they always see a uniform
random sample of the set, whatever else was answered early. Two things are
answered ahead of their turn because they are cheap and decide early:
cached answers (they cost nothing) and, first of all, incident and
high-severity cases (a known incident is the likeliest reject). They count
towards the sequential statistics only when the permutation reaches them;
zero-tolerance gates (`unsafe_tool_call_rate: 0%`) count every answered case,
because one occurrence fails them whatever the sample. This is stratified
execution with random-order inference: the order of payment changes, the
sample the intervals are computed on does not.

**Which gates can decide early.** Absolute rate gates (`>= 97%`): a sequence
for the candidate's rate. Paired rate gates in points (`>= baseline - 2 pt`): a
sequence for the mean per-case difference candidate - baseline. Each is the
intersection of three mixtures (tau = 0.02, 0.1, 0.5, each at alpha/3), so a
borderline candidate and a collapse are both resolved early. Zero-tolerance
gates: FAIL at the first occurrence (PASS needs every case). Latency
percentiles, judge scores, tokens and cost per success have no sequential
method here: they wait for the full set, so a candidate with such a hard gate
is promoted only after the whole run (rejects still stop early).

**Guarantee.** Each sequence covers its parameter at all looks at once with
probability 1 - alpha (Ville's inequality; asymptotic in the plug-in variance,
smoothed so that an all-equal prefix is not mistaken for certainty). A run that
stops early decides on the sequence; one that runs to the end decides with the
fixed-horizon gate, so a wrong verdict needs one of two errors and its rate is
at most alpha_sequential + alpha_fixed; `bench/adaptive.py` measures the
realised rates (a 3-point regression promoted, an equal candidate rejected) by
simulation next to the full gate's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl

from prompt_release.gates.decision import _outcome, _threshold_on_interval_scale
from prompt_release.gates.evaluate import per_case_frame, task_metric, with_hard_failure
from prompt_release.gates.sequential import normal_mixture_radius
from prompt_release.gates.spec import ACCURACY_PATTERN, Gate, GateSpec
from prompt_release.mining.settings import DEFAULT_SEVERITY

# Mixture scales: a sequence is tightest for effects near its tau. A gate must resolve
# both a few points (a borderline candidate) and a collapse (prose instead of JSON), so
# each statistic gets one sequence per scale at alpha / 3, and the intersection of the
# three is kept (a union bound: it covers at all looks with probability 1 - alpha).
TAUS = (0.02, 0.1, 0.5)
# No early decision from fewer answered cases than this: the plug-in variance is
# too rough below it, and stopping after a handful of answers convinces nobody.
MIN_CASES_TO_STOP = 30

GateStatus = Literal["pass", "fail", "open", "waits"]


@dataclass(frozen=True)
class GateLook:
    """One hard gate at one look: decided pass/fail, still open, or waiting for the full set."""

    metric: str
    status: GateStatus
    n: int
    estimate: float | None = None
    lower: float | None = None
    upper: float | None = None


@dataclass(frozen=True)
class Look:
    """Every hard gate after a batch, and whether (and why) the run stops here."""

    cases_answered: int
    prefix: int  # cases of the random order whose answers the sequential statistics use
    gates: tuple[GateLook, ...]
    stop: bool
    reason: str
    # each hard accuracy gate: (metric, labelled cases it has read, its labelled minimum)
    labelled: tuple[tuple[str, int, int], ...] = ()

    @property
    def labelled_short(self) -> tuple[tuple[str, int, int], ...]:
        return tuple(entry for entry in self.labelled if entry[1] < entry[2])

    @property
    def verdict_so_far(self) -> Literal["reject", "promote"] | None:
        if any(g.status == "fail" for g in self.gates):
            return "reject"
        return "promote" if self.gates and all(g.status == "pass" for g in self.gates) else None


def _values(frame: pl.DataFrame, column: str, order: Sequence[str]) -> np.ndarray:
    """The column's per-case values in the given case order (NaN where the case has none)."""
    by_case = dict(zip(frame["case_id"].to_list(), frame[column].cast(pl.Float64).to_list(), strict=True))
    return np.array([by_case.get(c) if by_case.get(c) is not None else np.nan for c in order], dtype=float)


def _sequence_look(gate: Gate, x: np.ndarray, alpha: float) -> GateLook:
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return GateLook(gate.metric, "open", 0)
    estimate = float(x.mean())
    if gate.reference == "absolute":
        smoothed = (x.sum() + 1.0) / (n + 2.0)
        variance = smoothed * (1.0 - smoothed) / n
    else:  # per-case differences in [-1, 1]; the smoothed second moment bounds their variance
        variance = (float((x * x).sum()) + 1.0) / (n + 2.0) / n
    radius = min(float(normal_mixture_radius(variance, tau, alpha / len(TAUS))) for tau in TAUS)
    lower, upper = estimate - radius, estimate + radius
    threshold, _ = _threshold_on_interval_scale(gate)
    outcome = _outcome(lower, upper, threshold, gate.comparator)
    status: GateStatus = "open" if outcome == "inconclusive" or n < MIN_CASES_TO_STOP else outcome
    return GateLook(gate.metric, status, n, estimate, lower, upper)


def gate_look(
    gate: Gate,
    candidate: pl.DataFrame,
    baseline: pl.DataFrame,
    prefix: Sequence[str],
    answered: Sequence[str],
    alpha: float,
) -> GateLook:
    """One hard gate, from per-case frames (`gates.evaluate.per_case_frame`) of the answered cases."""
    if gate.zero_tolerance:
        x = _values(candidate, gate.metric, answered)
        x = x[np.isfinite(x)]
        occurred = bool((x > 0).any()) if gate.comparator == "<=" else bool((x < 1).any())
        return GateLook(gate.metric, "fail" if occurred else "waits", len(x), float(x.mean()) if len(x) else None)
    if gate.kind != "rate" or (gate.reference == "baseline" and gate.margin_kind != "points"):
        return GateLook(gate.metric, "waits", len(prefix))
    x = _values(candidate, gate.metric, prefix)
    if gate.reference == "baseline":
        x = x - _values(baseline, gate.metric, prefix)
    return _sequence_look(gate, x, alpha)


def labelled_read(gate: Gate, candidate: pl.DataFrame, baseline: pl.DataFrame, answered: Sequence[str]) -> int:
    """Answered cases an accuracy gate reads: both arms have a value (the gate report's n)."""
    x = _values(candidate, gate.metric, answered) - _values(baseline, gate.metric, answered)
    return int(np.isfinite(x).sum())


def look(
    spec: GateSpec,
    candidate: pl.DataFrame,
    baseline: pl.DataFrame,
    order: Sequence[str],
    *,
    total_cases: int,
    labelled_cases: int | None = None,
) -> Look:
    """Evaluate every hard gate on the answered cases; `order` is the run's random permutation of case ids.

    `labelled_cases`: how many cases of the whole run have an expected answer; a decided verdict
    stops the run only once each hard accuracy gate has read min(`spec.min_labelled_n`, that many)."""
    answered = set(candidate["case_id"].to_list()) & set(baseline["case_id"].to_list())
    prefix_len = 0
    for case_id in order:
        if case_id not in answered:
            break
        prefix_len += 1
    prefix = list(order[:prefix_len])
    answered_in_order = [c for c in order if c in answered]
    alpha = 1.0 - spec.confidence
    hard = [g for g in spec.parsed_gates if g.severity == "hard"]
    gates = tuple(gate_look(g, candidate, baseline, prefix, answered_in_order, alpha) for g in hard)
    n = len(answered)
    need = min(spec.min_labelled_n, labelled_cases or 0)
    labelled = tuple(
        (g.metric, labelled_read(g, candidate, baseline, answered_in_order), need) for g in hard if is_accuracy(g)
    )
    short = tuple(entry for entry in labelled if entry[1] < need)
    failed = [g for g in gates if g.status == "fail"]
    decided = ""
    if failed:
        decided = f"{failed[0].metric} decided FAIL after {n} cases"
    elif gates and all(g.status == "pass" for g in gates):
        decided = f"every hard gate decided PASS after {n} cases"
    if decided and not short:
        return Look(n, prefix_len, gates, True, decided, labelled)
    if n >= total_cases:
        return Look(n, prefix_len, gates, True, f"the set was exhausted ({n} cases)", labelled)
    if decided:
        missing = ", ".join(
            f"{metric} has read {got} of the {need} labelled cases it needs" for metric, got, need in short
        )
        return Look(n, prefix_len, gates, False, f"{decided}; {missing}", labelled)
    waiting = [g.metric for g in gates if g.status in ("open", "waits")]
    return Look(n, prefix_len, gates, False, "undecided: " + ", ".join(waiting), labelled)


def is_accuracy(gate: Gate) -> bool:
    return ACCURACY_PATTERN.match(gate.metric) is not None


def case_order(case_ids: Sequence[str], *, seed: int, first: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """(the random permutation the statistics follow, the order in which cases are answered).

    The permutation is fixed by `seed`; the answering order puts `first`
    (incident and high-severity cases) ahead, then follows the permutation.
    """
    ids = sorted(case_ids)
    rng = np.random.default_rng(seed)
    permutation = [ids[i] for i in rng.permutation(len(ids))]
    early = set(first)
    answering = [c for c in permutation if c in early] + [c for c in permutation if c not in early]
    return permutation, answering


def _answer_early(tags: Sequence[str]) -> bool:
    """An incident case, or one that recorded a high- or critical-severity failure: likeliest to reject."""
    if "incident:yes" in tags:
        return True
    return any(
        DEFAULT_SEVERITY.get(t.removeprefix("failure_class:")) in ("critical", "high")
        for t in tags
        if t.startswith("failure_class:")
    )


@dataclass
class AdaptiveGate:
    """The stopping rule `evaluation.backtest.run_backtest(stopping=...)` follows for one gate spec."""

    spec: GateSpec
    seed: int = 0
    permutation: list[str] = field(default_factory=list)
    labelled: set[str] = field(default_factory=set)  # cases of the run with an expected answer
    looks: list[Look] = field(default_factory=list)
    decided: str | None = None  # the first look's reason that knew the verdict, while labelled cases were missing

    def answering_order(self, cases: Sequence[Any], cached: set[str]) -> list[str]:
        first = [c.case_id for c in cases if _answer_early(c.tags)]
        self.labelled = {c.case_id for c in cases if c.expected is not None}
        self.permutation, answering = case_order([c.case_id for c in cases], seed=self.seed, first=first)
        return [c for c in answering if c in cached] + [c for c in answering if c not in cached]

    def next_batch(self, remaining: Sequence[str], size: int) -> list[str]:
        """The next cases to answer: in order, or, once the verdict is known and only accuracy
        gates' labelled minimum is missing, just the labelled cases still needed, in one batch
        (nothing a look in between could learn would stop the run sooner: each look costs a
        pass over every answer so far)."""
        current = self.looks[-1] if self.looks else None
        if current is None or not current.labelled_short or not self.decided:
            return list(remaining[:size])
        missing = max(need - got for _, got, need in current.labelled_short)
        return [c for c in remaining if c in self.labelled][:missing]

    def look(self, frame: pl.DataFrame, total_cases: int) -> tuple[bool, str]:
        task = task_metric(self.spec)
        frame = with_hard_failure(frame)
        sides = [per_case_frame(frame.filter(pl.col("role") == role), task) for role in ("candidate", "baseline")]
        current = look(self.spec, *sides, self.permutation, total_cases=total_cases, labelled_cases=len(self.labelled))
        self.looks.append(current)
        known = current.verdict_so_far is not None
        if known and current.labelled_short and self.decided is None:
            self.decided = current.reason.split("; ", 1)[0]
        if not known:
            self.decided = None
        if current.stop and known and self.decided:
            reads = ", ".join(f"{metric} has read {got}" for metric, got, _ in current.labelled)
            return True, f"{self.decided}; answered on to the labelled minimum ({reads} labelled cases)"
        return current.stop, current.reason

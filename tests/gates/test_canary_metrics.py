"""The canary on what users feel: user-felt rates and cost per success beside hard failures and
latency, per named segment, Bonferroni across them, and the decision naming the metric."""

from __future__ import annotations

import numpy as np

from prompt_release.gates.canary import USER_RATES, CanaryPolicy, CanaryTraffic, decide_canary


def traffic(n: int, rates: dict[str, float], hard: float = 0.0, segments=None, seed: int = 0) -> CanaryTraffic:
    rng = np.random.default_rng(seed)
    counts = {name: int(round(n * rates.get(name, 0.02))) for name in USER_RATES}
    return CanaryTraffic(
        n,
        int(round(n * hard)),
        rng.lognormal(6, 0.3, n),
        rates=counts,
        cost_usd=np.full(n, 0.001),
        successes=np.ones(n),
        segments=segments or {},
    )


def test_an_escalation_regression_aborts_and_the_decision_names_it() -> None:
    cand = traffic(800, {"escalation_rate": 0.15})
    prod = traffic(3200, {"escalation_rate": 0.03}, seed=1)
    d = decide_canary(cand, prod, CanaryPolicy())
    assert d.action == "abort" and d.decided_by == "escalation_rate"
    assert "escalation_rate" in d.reason
    metrics = [e.metric for e in d.evidence]
    assert metrics == ["hard_failure_rate", "latency_ratio", *USER_RATES, "cost_per_success"]
    # Bonferroni: each of the k sequences at 1 - alpha/k
    assert all(abs(e.confidence - (1 - 0.05 / len(metrics))) < 1e-12 for e in d.evidence)
    hard = next(e for e in d.evidence if e.metric == "hard_failure_rate")
    assert hard.status != "worse"


def test_an_equal_candidate_is_not_aborted_and_rolls_forward_with_enough_traffic() -> None:
    rates = {"escalation_rate": 0.04, "negative_feedback_rate": 0.03}
    d = decide_canary(traffic(3000, rates, seed=2), traffic(12000, rates, seed=3), CanaryPolicy())
    assert d.action == "roll_forward" and d.decided_by is None


def test_a_regression_in_one_named_segment_is_not_averaged_away() -> None:
    policy = CanaryPolicy(segments={"tier": ["free", "pro"]})
    free_bad = traffic(300, {"negative_feedback_rate": 0.30})
    pro_fine = traffic(1500, {"negative_feedback_rate": 0.02})
    cand = traffic(1800, {"negative_feedback_rate": (90 + 30) / 1800},
                   segments={"tier=free": free_bad, "tier=pro": pro_fine})  # fmt: skip
    prod_free, prod_pro = (
        traffic(1200, {"negative_feedback_rate": 0.03}),
        traffic(6000, {"negative_feedback_rate": 0.02}),
    )
    prod = traffic(7200, {"negative_feedback_rate": (36 + 120) / 7200},
                   segments={"tier=free": prod_free, "tier=pro": prod_pro})  # fmt: skip
    d = decide_canary(cand, prod, policy)
    assert d.action == "abort"
    assert "negative_feedback_rate[tier=free]" in d.reason
    assert {e.segment for e in d.evidence} == {None, "tier=free", "tier=pro"}


def test_cost_per_success_is_compared_as_a_ratio() -> None:
    cand = traffic(2000, {})
    cand = CanaryTraffic(cand.traces, 0, cand.latency_ms, rates=cand.rates, cost_usd=np.full(2000, 0.002),
                         successes=np.ones(2000))  # fmt: skip
    d = decide_canary(cand, traffic(8000, {}, seed=4), CanaryPolicy())
    cost = next(e for e in d.evidence if e.metric == "cost_per_success")
    assert cost.estimate is not None and abs(cost.estimate - 2.0) < 1e-6
    assert d.action == "abort" and d.decided_by == "cost_per_success"

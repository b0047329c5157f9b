"""The canary's sequential evidence keeps its error rate under repeated looks, and the canary acts on it."""

from __future__ import annotations

import numpy as np

from prompt_release.gates import canary as cn
from prompt_release.gates import sequential as seq

LOOKS = np.arange(100, 5001, 100)


def _running_counts(rng, trials: int, rate: float, per_look: int) -> np.ndarray:
    return rng.binomial(per_look, rate, size=(trials, LOOKS.size)).cumsum(axis=1)


def test_rate_sequence_keeps_type_one_error_under_fifty_looks() -> None:
    # Equal 3% failure rates, a 10% canary looked at after every 100 canary traces.
    rng = np.random.default_rng(2024)
    trials = 3000
    cand = _running_counts(rng, trials, 0.03, 100)
    prod = _running_counts(rng, trials, 0.03, 900)
    cs = seq.rate_difference_sequence(cand, LOOKS, prod, LOOKS * 9)
    ever_excludes_truth = ((cs.lower > 0) | (cs.upper < 0)).any(axis=1).mean()
    assert ever_excludes_truth < 0.05
    # The same looks with a fixed-horizon 95% interval: peeking inflates the error.
    pc, pp = cand / LOOKS, prod / (LOOKS * 9)
    se = np.sqrt(pc * (1 - pc) / LOOKS + pp * (1 - pp) / (LOOKS * 9))
    naive = (np.abs(pc - pp) > 1.96 * se).any(axis=1).mean()
    assert naive > 0.08 > ever_excludes_truth


def test_log_latency_sequence_keeps_type_one_error_under_repeated_looks() -> None:
    rng = np.random.default_rng(7)
    trials, step = 1000, 100
    # Running moments of log-latency per look for identical distributions.
    c = rng.normal(6.5, 0.5, size=(trials, LOOKS.size, step))
    p = rng.normal(6.5, 0.5, size=(trials, LOOKS.size, step))

    def running(x):
        s = x.sum(axis=2).cumsum(axis=1)
        ss = (x**2).sum(axis=2).cumsum(axis=1)
        n = LOOKS
        mean = s / n
        return mean, (ss - n * mean**2) / (n - 1), n

    cs = seq.mean_difference_sequence(*running(c), *running(p))
    assert ((cs.lower > 0) | (cs.upper < 0)).any(axis=1).mean() < 0.05


def test_sequence_shrinks_with_traffic_and_is_infinite_without_it() -> None:
    cs = seq.rate_difference_sequence([0, 3, 30, 300], [0, 100, 1000, 10000], [0, 27, 270, 2700], [0, 900, 9000, 90000])
    widths = cs.upper - cs.lower
    assert widths[0] == 2.0  # no traffic: the whole [-1, 1]
    assert widths[1] > widths[2] > widths[3]


def test_canary_rolls_back_a_worse_candidate() -> None:
    d = cn.decide_canary(cn.CanaryTraffic(3000, 150), cn.CanaryTraffic(27000, 810))
    assert d.action == "abort" and d.evidence[0].status == "worse" and d.evidence[0].lower > 0


def test_canary_rolls_forward_an_equal_candidate_with_enough_traffic() -> None:
    rng = np.random.default_rng(1)
    d = cn.decide_canary(
        cn.CanaryTraffic(5000, 150, rng.lognormal(6.5, 0.5, 5000)),
        cn.CanaryTraffic(45000, 1350, rng.lognormal(6.5, 0.5, 45000)),
        provenance={"report_id": "gr_1"},
    )
    assert d.action == "roll_forward", d.reason
    assert {e.metric for e in d.evidence} == {"hard_failure_rate", "latency_ratio"}
    assert d.provenance == {"report_id": "gr_1"}


def test_canary_freezes_without_enough_traffic() -> None:
    d = cn.decide_canary(cn.CanaryTraffic(100, 3), cn.CanaryTraffic(900, 27))
    assert d.action == "freeze" and "not enough traffic" in d.reason


def test_canary_rolls_back_a_slower_candidate() -> None:
    rng = np.random.default_rng(3)
    d = cn.decide_canary(
        cn.CanaryTraffic(2000, 60, rng.lognormal(6.5, 0.5, 2000) * 1.4),
        cn.CanaryTraffic(18000, 540, rng.lognormal(6.5, 0.5, 18000)),
    )
    assert d.action == "abort" and "latency_ratio" in d.reason
    lat = d.evidence[1]
    assert lat.lower > 1.1 and 1.3 < lat.estimate < 1.5

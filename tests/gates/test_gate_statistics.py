"""The statistics match scipy and published reference values, and bootstraps are reproducible."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from prompt_release.gates import statistics as st


@pytest.mark.parametrize("confidence", [0.90, 0.95, 0.99])
def test_wilson_matches_scipy(confidence: float) -> None:
    for n in (1, 7, 50, 263, 1000):
        for x in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            ref = stats.binomtest(x, n).proportion_ci(confidence_level=confidence, method="wilson")
            got = st.wilson_interval(x, n, confidence)
            assert got.lower == pytest.approx(ref.low, abs=1e-12)
            assert got.upper == pytest.approx(ref.high, abs=1e-12)


def test_wilson_hand_checked_values() -> None:
    # 0 of 10: upper = z^2 / (n + z^2) = 3.8415 / 13.8415.
    assert st.wilson_interval(0, 10).upper == pytest.approx(0.27753, abs=1e-5)
    iv = st.wilson_interval(5, 10)
    assert (iv.lower, iv.upper) == pytest.approx((0.23659, 0.76341), abs=1e-5)
    # 200 of 200 cannot establish a 99.5% rate: lower bound 200 / (200 + z^2).
    assert st.wilson_interval(200, 200).lower == pytest.approx(200 / (200 + 1.959964**2), abs=1e-6)


def test_mcnemar_exact_matches_scipy_binomtest() -> None:
    for b, c in [(0, 0), (0, 5), (3, 10), (10, 3), (7, 7), (25, 40), (1, 30)]:
        ref = stats.binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
        assert st.mcnemar_exact_p_value(b, c) == pytest.approx(ref, rel=1e-12)


def test_newcombe_paired_interval_matches_published_example() -> None:
    # Fagerland, Lydersen & Laake, "Statistical analysis of contingency tables", ch. 8
    # (Cavo et al. 2012): table [[59, 6], [16, 80]] -> -0.0621 (95% CI -0.1186 to -0.0046).
    est, lo, hi = st.newcombe_paired_bounds(59, 6, 16, 80)
    assert float(est) == pytest.approx(-0.0621, abs=5e-5)
    assert float(lo) == pytest.approx(-0.1186, abs=5e-5)
    assert float(hi) == pytest.approx(-0.0046, abs=5e-5)


def test_identical_candidate_gets_a_narrow_paired_interval() -> None:
    # Agreement on every case: the paired interval is far narrower than two independent Wilsons.
    rng = np.random.default_rng(1)
    base = rng.random(500) < 0.8
    iv = st.paired_rate_difference(base.copy(), base)
    assert iv.estimate == 0
    assert -0.01 < iv.lower <= 0 <= iv.upper < 0.01


def test_paired_bootstrap_is_reproducible_and_covers_the_truth() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(10, 2, 400)
    cand = base + 0.5 + rng.normal(0, 0.5, 400)
    a = st.paired_bootstrap_mean_difference(cand, base, seed=11)
    b = st.paired_bootstrap_mean_difference(cand, base, seed=11)
    assert a == b
    assert a.lower < 0.5 < a.upper
    assert a.upper - a.lower < 0.2  # pairing removes the between-case spread


def test_percentile_ratio_of_a_uniformly_slower_candidate() -> None:
    rng = np.random.default_rng(4)
    base = rng.lognormal(6.5, 0.5, 1000)
    iv = st.paired_percentile_comparison(base * 1.2, base, 0.95)
    # Every resample sees the same 1.2x: the interval collapses onto it.
    assert (iv.estimate, iv.lower, iv.upper) == pytest.approx((1.2, 1.2, 1.2))


def test_percentile_statistic_equals_numpy_quantile() -> None:
    rng = np.random.default_rng(5)
    for n in (1, 2, 17, 1000):
        x = rng.normal(size=(4, n))
        for q in (0.0, 0.5, 0.95, 0.99, 1.0):
            assert np.allclose(st.percentile_statistic(q)(x), np.quantile(x, q, axis=1))


def test_percentile_interval_contains_the_sample_median() -> None:
    rng = np.random.default_rng(6)
    x = rng.lognormal(6.5, 0.5, 800)
    iv = st.percentile_interval(x, 0.5, confidence=0.9)
    assert iv.lower < np.median(x) < iv.upper
    assert iv.confidence == 0.9


def test_newcombe_unpaired_difference_matches_the_published_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873-890, table II example (e): 56/70 vs 48/80.
    from prompt_release.gates.statistics import newcombe_unpaired_difference

    interval = newcombe_unpaired_difference(56, 70, 48, 80)
    assert interval.estimate == pytest.approx(0.2)
    assert (round(interval.lower, 4), round(interval.upper, 4)) == (0.0524, 0.3339)


@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_order_statistic_quantile_bounds_cover_at_every_n_from_their_minimum(q: float) -> None:
    minimum = st.min_cases_for_quantile(q)
    assert st.quantile_order_ranks(minimum - 1, q)[1] is None or st.quantile_order_ranks(minimum - 1, q)[0] is None
    for n in range(minimum, minimum + 60):
        lower, upper = st.quantile_order_ranks(n, q)
        # Exact coverage: the count of values below the true quantile is Binomial(n, q).
        coverage = stats.binom.cdf(upper - 1, n, q) - stats.binom.cdf(lower - 1, n, q)
        assert coverage >= 0.95, (n, lower, upper, coverage)
    assert (st.min_cases_for_quantile(0.95), st.min_cases_for_quantile(0.95, 0.975)) == (72, 86)

"""Fixed-sample statistics behind the gate report: intervals for rates, paired differences and percentiles.

Every function here is pure and vectorised numpy. Rates get the Wilson score
interval; candidate-vs-baseline rates on the same cases get the exact McNemar
test (binomial on the discordant pairs) for a p-value and Newcombe's hybrid
score interval for the paired difference (Newcombe 1998, "method 10": the two
Wilson intervals of the marginal rates combined with the continuity-corrected
phi correlation of the 2x2 table, so a candidate that agrees with the baseline
on most cases gets a narrow interval); means, percentiles and ratios of sums
get percentile-method paired bootstrap intervals, resampling whole cases so
the pairing is kept. Bootstraps take a seed and are reproducible. The
confidence level is a parameter everywhere (default 0.95, two-sided).

Latency percentiles get distribution-free order-statistic intervals instead
of a bootstrap: the q-quantile lies between the l-th and u-th smallest of n
values with a probability that is a binomial sum, exact at every n, whatever
the latency distribution (a percentile bootstrap of a p95 under-covers badly
at small n: `bench/gate_power.py` measures both). Comparing two arms' quantiles
combines the two one-sample intervals, each at 1 - alpha/2 (Bonferroni), so
the ratio or difference interval covers at least the stated level whatever the
correlation between the arms. Every method has a minimum n below which it
gives no interval (`MIN_CASES`, `min_cases_for_quantile`): there the gate
decides nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats as _scipy_stats

DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 20240601

# Bootstrap resample blocks are built in chunks of at most this many values,
# so a 100k-case golden set does not allocate resamples x cases at once.
_MAX_BLOCK_VALUES = 8_000_000


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval."""

    estimate: float
    lower: float
    upper: float
    confidence: float
    method: str

    @property
    def half_width_below(self) -> float:
        return self.estimate - self.lower

    @property
    def half_width_above(self) -> float:
        return self.upper - self.estimate


def z_value(confidence: float) -> float:
    """Two-sided standard normal quantile for `confidence` (0.95 -> 1.95996...)."""
    _check_confidence(confidence)
    return float(_scipy_stats.norm.ppf(0.5 + confidence / 2.0))


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


# Fewest cases each interval method decides on. Wilson and Newcombe score intervals keep close
# to their level from about ten cases (Brown, Cai & DasGupta 2001; Newcombe 1998); a percentile
# bootstrap of a mean or a ratio of sums needs some thirty cases before its resamples describe the
# sampling distribution; one occurrence is enough for a zero-tolerance gate to fail (a fact, not an
# estimate), while passing one needs the Wilson minimum. Quantile intervals have exact minimums
# (`min_cases_for_quantile`).
MIN_CASES = {"wilson": 10, "newcombe": 10, "bootstrap": 30, "zero_tolerance_fail": 1}


# --------------------------------------------------------------------------- rates


def wilson_bounds(successes, n, confidence: float = DEFAULT_CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval bounds, elementwise over arrays of counts.

    n == 0 gives the uninformative (0, 1).
    """
    z = z_value(confidence)
    x = np.asarray(successes, dtype=float)
    n = np.asarray(n, dtype=float)
    if np.any(x < 0) or np.any(x > n):
        raise ValueError("successes must lie in [0, n]")
    z2 = z * z
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = n + z2
        center = (x + z2 / 2.0) / denom
        half = (z / denom) * np.sqrt(np.where(n > 0, x * (n - x) / np.where(n > 0, n, 1.0), 0.0) + z2 / 4.0)
        lower = np.where(n > 0, np.clip(center - half, 0.0, 1.0), 0.0)
        upper = np.where(n > 0, np.clip(center + half, 0.0, 1.0), 1.0)
    # Exact endpoints at the boundaries (floating error otherwise leaves 1e-17).
    lower = np.where(x == 0, 0.0, lower)
    upper = np.where(x == n, 1.0, upper)
    return lower, upper


def wilson_interval(successes: int, n: int, confidence: float = DEFAULT_CONFIDENCE) -> Interval:
    """Wilson score interval for a binomial proportion successes/n."""
    lower, upper = wilson_bounds(successes, n, confidence)
    estimate = successes / n if n > 0 else float("nan")
    return Interval(float(estimate), float(lower), float(upper), confidence, "wilson score")


def paired_table(candidate, baseline) -> tuple[int, int, int, int]:
    """2x2 table of paired booleans: (both true, only candidate, only baseline, both false)."""
    cand = np.asarray(candidate, dtype=bool)
    base = np.asarray(baseline, dtype=bool)
    if cand.shape != base.shape:
        raise ValueError("candidate and baseline must be aligned per case (same shape)")
    both = int(np.count_nonzero(cand & base))
    only_cand = int(np.count_nonzero(cand & ~base))
    only_base = int(np.count_nonzero(~cand & base))
    neither = int(cand.size - both - only_cand - only_base)
    return both, only_cand, only_base, neither


def mcnemar_exact_p_value(only_candidate, only_baseline) -> np.ndarray | float:
    """Exact two-sided McNemar p-value: binomial test of the discordant pairs against 1/2.

    Equal to scipy.stats.binomtest(only_candidate, only_candidate + only_baseline, 0.5).pvalue;
    no discordant pairs gives 1.
    """
    b = np.asarray(only_candidate)
    c = np.asarray(only_baseline)
    m = b + c
    tail = _scipy_stats.binom.cdf(np.minimum(b, c), m, 0.5)
    p = np.where(m > 0, np.minimum(1.0, 2.0 * tail), 1.0)
    # b == c gives exactly 1 (the central term would be counted twice otherwise).
    p = np.where(b == c, 1.0, p)
    return float(p) if p.ndim == 0 else p


def newcombe_paired_bounds(both, only_cand, only_base, neither, confidence: float = DEFAULT_CONFIDENCE):
    """Newcombe (1998) method 10 interval for p_candidate - p_baseline on paired data.

    Vectorised over arrays of table cells. The correlation term uses Newcombe's
    continuity-corrected phi (AD - BC reduced by N/2 when positive, zero if that
    crosses zero, unchanged when negative).
    """
    a = np.asarray(both, dtype=float)
    b = np.asarray(only_cand, dtype=float)
    c = np.asarray(only_base, dtype=float)
    d = np.asarray(neither, dtype=float)
    n = a + b + c + d
    safe_n = np.where(n > 0, n, 1.0)
    x1, x2 = a + b, a + c
    p1, p2 = x1 / safe_n, x2 / safe_n
    l1, u1 = wilson_bounds(x1, n, confidence)
    l2, u2 = wilson_bounds(x2, n, confidence)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    ad_bc = a * d - b * c
    corrected = np.where(ad_bc > n / 2.0, ad_bc - n / 2.0, np.where(ad_bc >= 0, 0.0, ad_bc))
    with np.errstate(invalid="ignore", divide="ignore"):
        phi = np.where(margins > 0, corrected / np.sqrt(np.where(margins > 0, margins, 1.0)), 0.0)
    below = np.sqrt(np.maximum((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    above = np.sqrt(np.maximum((p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2, 0.0))
    estimate = p1 - p2
    lower = np.where(n > 0, np.maximum(estimate - below, -1.0), -1.0)
    upper = np.where(n > 0, np.minimum(estimate + above, 1.0), 1.0)
    return estimate, lower, upper


def paired_rate_difference(candidate, baseline, confidence: float = DEFAULT_CONFIDENCE) -> Interval:
    """Interval for rate(candidate) - rate(baseline) from per-case booleans on the same cases."""
    est, lo, hi = newcombe_paired_bounds(*paired_table(candidate, baseline), confidence)
    return Interval(float(est), float(lo), float(hi), confidence, "newcombe paired hybrid score (method 10)")


# --------------------------------------------------------------------------- bootstrap

Statistic = Callable[[np.ndarray], np.ndarray]
"""Maps resampled values of shape (B, n) or (B, n, k) to B statistics."""


def mean_statistic(values: np.ndarray) -> np.ndarray:
    return values.mean(axis=1)


def percentile_statistic(q: float) -> Statistic:
    """Statistic for the q-th quantile (q in [0, 1]), numpy's default linear interpolation."""

    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")

    def statistic(values: np.ndarray) -> np.ndarray:
        # numpy's default (linear) quantile through a two-point partition: same
        # numbers as np.quantile, ~4x faster on (resamples, cases) blocks.
        n = values.shape[1]
        h = q * (n - 1)
        k = int(np.floor(h))
        k1 = min(k + 1, n - 1)
        part = np.partition(values, sorted({k, k1}), axis=1)
        lo, hi = part[:, k], part[:, k1]
        return lo + (h - k) * (hi - lo)

    return statistic


def ratio_of_sums_statistic(values: np.ndarray) -> np.ndarray:
    """sum(column 0) / sum(column 1): e.g. cost over successes, i.e. cost per success."""
    numer = values[..., 0].sum(axis=1)
    denom = values[..., 1].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, numer / np.where(denom > 0, denom, 1.0), np.inf)


def _resampled_statistics(
    candidate: np.ndarray,
    baseline: np.ndarray | None,
    statistic: Statistic,
    n_resamples: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray | None]:
    n = candidate.shape[0]
    rng = np.random.default_rng(seed)
    width = int(np.prod(candidate.shape[1:], dtype=int)) or 1
    block = max(1, _MAX_BLOCK_VALUES // max(1, n * width))
    cand_stats, base_stats = [], []
    done = 0
    while done < n_resamples:
        size = min(block, n_resamples - done)
        idx = rng.integers(0, n, size=(size, n))
        # Same case indices for both arms: resampling cases keeps the pairing.
        cand_stats.append(statistic(candidate[idx]))
        if baseline is not None:
            base_stats.append(statistic(baseline[idx]))
        done += size
    return np.concatenate(cand_stats), (np.concatenate(base_stats) if baseline is not None else None)


def _percentile_bounds(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = 1.0 - confidence
    finite = samples[np.isfinite(samples)]
    if finite.size < samples.size:
        # A resample with no successes makes a per-success ratio infinite; be
        # conservative rather than drop those resamples.
        lo, hi = np.quantile(
            np.where(np.isfinite(samples), samples, np.inf), [alpha / 2, 1 - alpha / 2], method="lower"
        )
        return float(lo), float(hi)
    lo, hi = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _as_cases(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise ValueError(f"{name} needs at least one case")
    return arr


def bootstrap_interval(
    values,
    statistic: Statistic = mean_statistic,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    method_name: str = "bootstrap",
) -> Interval:
    """Percentile bootstrap interval of one sample's statistic (e.g. the p95 of latencies)."""
    _check_confidence(confidence)
    arr = _as_cases(values, "bootstrap")
    samples, _ = _resampled_statistics(arr, None, statistic, n_resamples, seed)
    lo, hi = _percentile_bounds(samples, confidence)
    estimate = float(statistic(arr[np.newaxis, ...])[0])
    return Interval(estimate, lo, hi, confidence, f"{method_name} (percentile bootstrap, {n_resamples} resamples)")


def paired_bootstrap(
    candidate,
    baseline,
    statistic: Statistic = mean_statistic,
    *,
    compare: str = "difference",
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    method_name: str = "paired bootstrap",
) -> Interval:
    """Paired percentile bootstrap of statistic(candidate) - or / - statistic(baseline).

    `candidate` and `baseline` are aligned per case (row i is the same case in
    both). compare: "difference" or "ratio".
    """
    _check_confidence(confidence)
    if compare not in ("difference", "ratio"):
        raise ValueError(f"compare must be 'difference' or 'ratio', got {compare!r}")
    cand = _as_cases(candidate, "candidate")
    base = _as_cases(baseline, "baseline")
    if cand.shape != base.shape:
        raise ValueError("candidate and baseline must be aligned per case (same shape)")
    cand_s, base_s = _resampled_statistics(cand, base, statistic, n_resamples, seed)
    assert base_s is not None
    cand_point = float(statistic(cand[np.newaxis, ...])[0])
    base_point = float(statistic(base[np.newaxis, ...])[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        if compare == "difference":
            samples = cand_s - base_s
            estimate = cand_point - base_point
        else:
            samples = np.where(base_s > 0, cand_s / np.where(base_s > 0, base_s, 1.0), np.inf)
            estimate = cand_point / base_point if base_point > 0 else float("inf")
    samples = np.where(np.isnan(samples), np.inf, samples)
    lo, hi = _percentile_bounds(samples, confidence)
    return Interval(
        float(estimate), lo, hi, confidence, f"{method_name} of the {compare} (percentile, {n_resamples} resamples)"
    )


def paired_bootstrap_mean_difference(candidate, baseline, **kwargs) -> Interval:
    """Paired bootstrap of mean(candidate) - mean(baseline) (booleans give a rate difference)."""
    return paired_bootstrap(candidate, baseline, mean_statistic, compare="difference", **kwargs)


def percentile_interval(values, q: float, **kwargs) -> Interval:
    """Bootstrap interval for the q-th quantile (q in [0, 1]) of one sample."""
    return bootstrap_interval(values, percentile_statistic(q), method_name=f"p{_pct(q)}", **kwargs)


def paired_percentile_comparison(candidate, baseline, q: float, *, compare: str = "ratio", **kwargs) -> Interval:
    """Paired bootstrap interval for p_q(candidate) / p_q(baseline) (or their difference)."""
    return paired_bootstrap(
        candidate,
        baseline,
        percentile_statistic(q),
        compare=compare,
        method_name=f"paired bootstrap of p{_pct(q)}",
        **kwargs,
    )


def _pct(q: float) -> str:
    return f"{q * 100:g}"


# --------------------------------------------------------------------------- quantiles (order statistics)


def quantile_order_ranks(n: int, q: float, confidence: float = DEFAULT_CONFIDENCE) -> tuple[int | None, int | None]:
    """1-based ranks (l, u) with P(X(l) <= xi_q) >= 1 - alpha/2 and P(X(u) >= xi_q) >= 1 - alpha/2.

    The number of values below the true q-quantile is Binomial(n, q) for any
    continuous distribution, so the coverage is a binomial sum, not an
    approximation. None where no order statistic of n values reaches that level
    (too few values for that side of the interval).
    """
    _check_confidence(confidence)
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {q}")
    tail = (1.0 - confidence) / 2.0
    k = np.arange(0, n + 1)
    cdf = _scipy_stats.binom.cdf(k, n, q)  # cdf[j] = P(B <= j)
    # X(l) > xi exactly when fewer than l values are below xi: P(B <= l - 1) <= tail.
    lows = np.flatnonzero(cdf[:n] <= tail)  # index j = l - 1
    lower = int(lows[-1]) + 1 if lows.size else None
    # X(u) < xi exactly when at least u values are below: P(B >= u) = 1 - cdf[u - 1] <= tail.
    ups = np.flatnonzero(1.0 - cdf[:n] <= tail)  # index j = u - 1
    upper = int(ups[0]) + 1 if ups.size else None
    return lower, upper


def min_cases_for_quantile(q: float, confidence: float = DEFAULT_CONFIDENCE) -> int:
    """Fewest values for which both bounds of the order-statistic interval exist."""
    tail = (1.0 - confidence) / 2.0
    # Both end ranks exist once q^n <= tail and (1 - q)^n <= tail.
    return max(math.ceil(math.log(tail) / math.log(q)), math.ceil(math.log(tail) / math.log(1.0 - q)))


def quantile_interval(values, q: float, confidence: float = DEFAULT_CONFIDENCE) -> Interval:
    """Distribution-free interval for the q-quantile of one sample (NaN bounds below the minimum n)."""
    arr = np.sort(_as_cases(values, "quantile"))
    lower, upper = quantile_order_ranks(arr.size, q, confidence)
    estimate = float(np.quantile(arr, q))
    return Interval(
        estimate,
        float(arr[lower - 1]) if lower else math.nan,
        float(arr[upper - 1]) if upper else math.nan,
        confidence,
        f"order-statistic interval of p{_pct(q)}",
    )


def quantile_comparison(
    candidate, baseline, q: float, *, compare: str = "ratio", confidence: float = DEFAULT_CONFIDENCE
) -> Interval:
    """p_q(candidate) / p_q(baseline) (or their difference) from the arms' order-statistic intervals,
    each at 1 - alpha/2, so the combination covers at least `confidence` (Bonferroni). NaN bounds
    below the minimum n (`min_cases_for_quantile(q, 1 - alpha/2)`)."""
    if compare not in ("difference", "ratio"):
        raise ValueError(f"compare must be 'difference' or 'ratio', got {compare!r}")
    each = 1.0 - (1.0 - confidence) / 2.0
    cand = quantile_interval(candidate, q, each)
    base = quantile_interval(baseline, q, each)
    with np.errstate(invalid="ignore", divide="ignore"):
        if compare == "difference":
            estimate, lower, upper = (cand.estimate - base.estimate, cand.lower - base.upper, cand.upper - base.lower)
        else:
            estimate = cand.estimate / base.estimate if base.estimate > 0 else math.inf
            lower = cand.lower / base.upper if base.upper > 0 else math.nan
            upper = cand.upper / base.lower if base.lower > 0 else math.inf
    return Interval(
        float(estimate),
        float(lower),
        float(upper),
        confidence,
        f"order-statistic intervals of p{_pct(q)} per arm at {each:.1%}, combined (Bonferroni)",
    )


def newcombe_unpaired_difference(
    x1: int, n1: int, x2: int, n2: int, confidence: float = DEFAULT_CONFIDENCE
) -> Interval:
    """Interval for p1 - p2 of two independent proportions (Newcombe 1998, method 10: hybrid Wilson score).

    Used where the two rates come from different inputs (e.g. the production
    version tonight vs last night, on different traffic), so no pairing exists.
    """
    if n1 <= 0 or n2 <= 0:
        raise ValueError("both samples need at least one case")
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = (float(v) for v in wilson_bounds(x1, n1, confidence))
    l2, u2 = (float(v) for v in wilson_bounds(x2, n2, confidence))
    d = p1 - p2
    lower = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return Interval(d, lower, upper, confidence, "newcombe hybrid score (unpaired)")

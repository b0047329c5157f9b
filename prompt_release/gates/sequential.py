"""Always-valid sequential inference for the canary: confidence sequences that may be checked after every trace.

A fixed-horizon interval recomputed at every look of the canary sensor
inflates its error rate (peeking). Here the candidate-minus-production
difference theta (of hard-failure rates, or of mean log-latency) gets a
confidence sequence from the normal-mixture sequential probability ratio
test (mSPRT) of Johari, Koomen, Pekelis and Walsh ("Peeking at A/B tests",
KDD 2017; Robbins 1970): with estimate theta_hat of variance V and a normal
mixing distribution N(0, tau^2) over the effect, the mixture likelihood ratio
against theta is

    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 (theta_hat - theta)^2 / (2 V (V + tau^2)))

which is a nonnegative martingale under theta, so by Ville's inequality it
exceeds 1/alpha at *any* look with probability at most alpha. Inverting it
gives the sequence theta_hat +/- sqrt(V (V + tau^2) / tau^2 * (2 log(1/alpha) + log((V + tau^2) / V))),
which covers the true theta at all looks simultaneously with probability
1 - alpha. tau sets where the boundary is tightest (around V ~ tau^2, i.e.
effects of size ~tau): it is a tuning choice, not an assumption, and any tau
keeps the guarantee. Assumptions, stated so a reader can judge them:
(1) traces are independent draws and each version's rate/latency
distribution is stationary during the canary (a traffic-mix shift that hits
both versions alike is fine, because both are compared on the same
segments); (2) the traffic split between versions is fixed or changes
slowly, so theta_hat behaves like a Brownian motion in information time;
(3) V is a plug-in estimate (rates smoothed as (x+1)/(n+2) so zero failures
do not give zero variance; log-latency variances from the samples), which
makes the guarantee asymptotic (the "asymptotic confidence sequence" of
Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas, 2021) rather than exact at
tiny n; the mixture boundary is wide at small V, and the repeated-look
simulation in tests/gates and bench/gate_power.py checks the realised error
rate at the canary's actual sample sizes. Latency is compared on the mean of
log-latency (the log of the geometric-mean ratio), so the latency sequence is
a multiplicative effect: exp(bounds) bounds candidate/production latency.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_CONFIDENCE = 0.95
# Mixing scales: rate differences of about one percentage point, and log-latency
# effects of about 5%, are what a canary must resolve; the boundary is tightest there.
DEFAULT_RATE_TAU = 0.01
DEFAULT_LOG_LATENCY_TAU = 0.05
# User-felt rates (escalation, negative feedback, ...) move by several points when routing breaks.
DEFAULT_USER_RATE_TAU = 0.03


@dataclass(frozen=True)
class SequenceBounds:
    """Estimate and always-valid bounds (numpy arrays or scalars, elementwise)."""

    estimate: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    confidence: float
    method: str


def normal_mixture_radius(variance, tau: float, alpha: float) -> np.ndarray:
    """Half-width of the normal-mixture confidence sequence for an estimate of variance V.

    Infinite where V is infinite or not positive (no information yet).
    """
    if tau <= 0:
        raise ValueError("tau must be positive")
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    v = np.asarray(variance, dtype=float)
    t2 = tau * tau
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        radius = np.sqrt(v * (v + t2) / t2 * (2.0 * np.log(1.0 / alpha) + np.log((v + t2) / v)))
    return np.where(np.isfinite(v) & (v > 0), radius, np.inf)


def rate_difference_sequence(
    candidate_events,
    candidate_n,
    baseline_events,
    baseline_n,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    tau: float = DEFAULT_RATE_TAU,
) -> SequenceBounds:
    """Confidence sequence for rate(candidate) - rate(baseline) from running counts (vectorised)."""
    xc = np.asarray(candidate_events, dtype=float)
    nc = np.asarray(candidate_n, dtype=float)
    xb = np.asarray(baseline_events, dtype=float)
    nb = np.asarray(baseline_n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        estimate = np.where((nc > 0) & (nb > 0), xc / np.maximum(nc, 1) - xb / np.maximum(nb, 1), 0.0)
        # Smoothed rates for the variance only: zero events must not mean zero variance.
        pc = (xc + 1.0) / (nc + 2.0)
        pb = (xb + 1.0) / (nb + 2.0)
        variance = np.where(
            (nc > 0) & (nb > 0), pc * (1 - pc) / np.maximum(nc, 1) + pb * (1 - pb) / np.maximum(nb, 1), np.inf
        )
    radius = normal_mixture_radius(variance, tau, 1.0 - confidence)
    return SequenceBounds(
        estimate,
        np.maximum(estimate - radius, -1.0),
        np.minimum(estimate + radius, 1.0),
        confidence,
        f"normal-mixture confidence sequence (mSPRT, tau={tau:g}) on the rate difference",
    )


def mean_difference_sequence(
    candidate_mean,
    candidate_var,
    candidate_n,
    baseline_mean,
    baseline_var,
    baseline_n,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    tau: float = DEFAULT_LOG_LATENCY_TAU,
    what: str = "mean difference",
) -> SequenceBounds:
    """Confidence sequence for mean(candidate) - mean(baseline) from running moments (vectorised)."""
    mc, vc, nc = (np.asarray(a, dtype=float) for a in (candidate_mean, candidate_var, candidate_n))
    mb, vb, nb = (np.asarray(a, dtype=float) for a in (baseline_mean, baseline_var, baseline_n))
    ok = (nc >= 2) & (nb >= 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        estimate = np.where(ok, mc - mb, 0.0)
        variance = np.where(ok, vc / np.maximum(nc, 1) + vb / np.maximum(nb, 1), np.inf)
    radius = normal_mixture_radius(variance, tau, 1.0 - confidence)
    return SequenceBounds(
        estimate,
        estimate - radius,
        estimate + radius,
        confidence,
        f"normal-mixture confidence sequence (mSPRT, tau={tau:g}) on the {what}",
    )


def log_latency_sequence(
    candidate_latency,
    baseline_latency,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    tau: float = DEFAULT_LOG_LATENCY_TAU,
) -> SequenceBounds:
    """Confidence sequence for mean log-latency difference (candidate - baseline) from raw latencies.

    exp() of the result bounds the candidate/production geometric-mean latency ratio.
    Non-positive or missing latencies are ignored.
    """
    logs = []
    for values in (candidate_latency, baseline_latency):
        arr = np.asarray(values, dtype=float)
        arr = arr[np.isfinite(arr) & (arr > 0)]
        logs.append(np.log(arr))
    c, b = logs
    return mean_difference_sequence(
        c.mean() if c.size else 0.0,
        c.var(ddof=1) if c.size >= 2 else np.inf,
        c.size,
        b.mean() if b.size else 0.0,
        b.var(ddof=1) if b.size >= 2 else np.inf,
        b.size,
        confidence=confidence,
        tau=tau,
        what="mean log-latency difference",
    )


def log_ratio_sequence(
    candidate_numerator,
    candidate_denominator,
    baseline_numerator,
    baseline_denominator,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    tau: float = DEFAULT_LOG_LATENCY_TAU,
) -> SequenceBounds:
    """Confidence sequence for log(ratio of means, candidate) - log(ratio of means, baseline) from per-trace
    values (e.g. cost and success 0/1: exp() bounds the cost-per-success ratio).

    The variance of log(mean x / mean y) per observation is the delta method's
    var(x)/mx^2 + var(y)/my^2 - 2 cov(x, y)/(mx my); missing numerators count as 0.
    """
    moments = []
    for num, den in ((candidate_numerator, candidate_denominator), (baseline_numerator, baseline_denominator)):
        x = np.nan_to_num(np.asarray(num if num is not None else [], dtype=float))
        y = np.asarray(den if den is not None else [], dtype=float)
        n = min(x.size, y.size)
        x, y = x[:n], y[:n]
        if n < 2 or x.mean() <= 0 or y.mean() <= 0:
            moments.append((0.0, np.inf, n))
            continue
        mx, my = x.mean(), y.mean()
        cov = np.cov(x, y, ddof=1)
        var = cov[0, 0] / mx**2 + cov[1, 1] / my**2 - 2 * cov[0, 1] / (mx * my)
        moments.append((float(np.log(mx / my)), max(float(var), 1e-12), n))
    (mc, vc, nc), (mb, vb, nb) = moments
    return mean_difference_sequence(
        mc, vc, nc, mb, vb, nb, confidence=confidence, tau=tau, what="log ratio-of-means difference"
    )

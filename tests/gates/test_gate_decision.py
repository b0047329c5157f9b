"""Gate decisions on constructed data: pass, fail, inconclusive -> freeze with a sample size, zero tolerance, relative gates."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from prompt_release.errors import UserError
from prompt_release.gates.decision import GateDecision, decide, decide_paired
from prompt_release.gates.spec import gate_spec_from_dict


def spec(**gates):
    return gate_spec_from_dict(
        {
            "candidate_prompt": "support_router:v1.6.0",
            "baseline_prompt": "support_router:v1.5.2",
            "dataset": "support_router_golden:v4",
            "gates": gates,
        }
    )


def paired_rates(n: int, both: int, only_cand: int, only_base: int) -> tuple[np.ndarray, np.ndarray]:
    cand = np.zeros(n, bool)
    base = np.zeros(n, bool)
    cand[:both] = base[:both] = True
    cand[both : both + only_cand] = True
    base[both + only_cand : both + only_cand + only_base] = True
    return cand, base


def test_clear_pass_promotes() -> None:
    cand, base = paired_rates(2000, 1999, 0, 0)  # 1999/2000 schema passes
    d = decide_paired(spec(schema_pass_rate=">= 99%"), {"schema_pass_rate": (cand, base)})
    g = d.gates[0]
    assert d.verdict == "promote" and d.exit_code == 0
    assert g.outcome == "pass" and g.interval_lower >= 0.99 and g.method.startswith("Wilson")
    assert g.n == 2000 and g.candidate_value == pytest.approx(0.9995)


def test_clear_fail_rejects() -> None:
    cand, base = paired_rates(1000, 950, 0, 0)
    d = decide_paired(spec(schema_pass_rate=">= 99.5%"), {"schema_pass_rate": (cand, base)})
    assert d.verdict == "reject" and d.exit_code == 1
    assert d.failed_gates == ["schema_pass_rate"] and d.gates[0].interval_upper < 0.995


def test_straddle_is_inconclusive_and_freezes_with_a_deciding_sample_size() -> None:
    # 200 of 200 valid: a perfect record, but too few cases to show >= 99.5% at 95%.
    cand, base = paired_rates(200, 200, 0, 0)
    s = spec(schema_pass_rate=">= 99.5%")
    d = decide_paired(s, {"schema_pass_rate": (cand, base)})
    g = d.gates[0]
    assert g.outcome == "inconclusive" and d.verdict == "freeze" and d.exit_code == 3
    assert g.interval_lower < 0.995 <= g.interval_upper
    assert d.cases_to_decide is not None and 700 < d.cases_to_decide < 900  # n/(n+z^2) >= 0.995 needs ~765
    assert str(d.cases_to_decide) in d.summary
    # At the suggested size, with the same observed rate, the gate is decided.
    n = d.cases_to_decide
    cand2, base2 = paired_rates(n, n, 0, 0)
    assert decide_paired(s, {"schema_pass_rate": (cand2, base2)}).verdict == "promote"


def test_zero_tolerance_fails_on_one_occurrence() -> None:
    s = spec(unsafe_tool_call_rate="0%")
    unsafe = np.zeros(5000, bool)
    assert decide_paired(s, {"unsafe_tool_call_rate": (unsafe, unsafe)}).verdict == "promote"
    unsafe_cand = unsafe.copy()
    unsafe_cand[1234] = True
    d = decide_paired(s, {"unsafe_tool_call_rate": (unsafe_cand, unsafe)})
    assert d.verdict == "reject" and d.gates[0].outcome == "fail" and d.gates[0].candidate_count == 1
    assert "zero tolerance" in d.gates[0].method


def test_relative_rate_gate_uses_the_paired_difference() -> None:
    s = spec(handoff_accuracy=">= baseline - 1%")
    # Candidate fixes 10 cases and breaks 110 of 2000: 5 points worse -> fail.
    cand, base = paired_rates(2000, 1500, 10, 110)
    g = decide_paired(s, {"handoff_accuracy": (cand, base)}).gates[0]
    assert g.outcome == "fail" and g.interval_of == "difference" and g.interval_upper < -0.01
    assert g.effect == pytest.approx(-0.05) and g.p_value < 1e-20
    assert g.effective_threshold == pytest.approx(g.baseline_value - 0.01)
    # Candidate fixes 60 and breaks 20: better -> pass.
    cand, base = paired_rates(2000, 1500, 60, 20)
    g = decide_paired(s, {"handoff_accuracy": (cand, base)}).gates[0]
    assert g.outcome == "pass" and g.interval_lower > -0.01
    # Small and noisy: 1 point worse on 300 cases with churn -> inconclusive, leaning fail.
    cand, base = paired_rates(300, 230, 9, 12)
    d = decide_paired(s, {"handoff_accuracy": (cand, base)})
    assert d.gates[0].outcome == "inconclusive" and d.verdict == "freeze"
    assert d.gates[0].cases_to_decide is None or d.gates[0].cases_to_decide > 300


def test_relative_latency_gate_on_the_p95_ratio() -> None:
    rng = np.random.default_rng(0)
    base = rng.lognormal(6.7, 0.4, 1000)
    s = spec(p95_latency="<= baseline + 10%")
    slow = decide_paired(s, {"latency_ms": (base * 1.5 * rng.lognormal(0, 0.05, 1000), base)})
    assert slow.verdict == "reject" and slow.gates[0].interval_of == "ratio" and slow.gates[0].interval_lower > 1.1
    # The ratio interval combines each arm's own p95 interval, so it does not narrow with the
    # pairing: equal latencies show "within 25%" at n=1000, not "within 10%".
    same = decide_paired(
        spec(p95_latency="<= baseline + 25%"), {"latency_ms": (base * rng.lognormal(0, 0.02, 1000), base)}
    )
    assert same.verdict == "promote" and same.gates[0].interval_upper <= 1.25
    assert "order-statistic" in same.gates[0].method


def test_one_latency_pair_is_no_verdict_but_names_the_cases_needed() -> None:
    # The report of issue 13: one fresh baseline call, a p95 "interval" of one pair, a reject.
    s = spec(p95_latency="<= baseline + 25%")
    d = decide_paired(s, {"latency_ms": (np.array([4538.0]), np.array([1000.0]))})
    g = d.gates[0]
    assert d.verdict == "freeze" and g.outcome == "inconclusive"
    assert g.interval_lower is None and g.interval_upper is None
    assert g.cases_to_decide == 86 and "86" in d.summary and "n=1 is below the minimum" in g.reason
    # From the minimum on, the same gate decides.
    rng = np.random.default_rng(3)
    base = rng.lognormal(6.7, 0.1, 86)
    assert decide_paired(s, {"latency_ms": (base * 3, base)}).verdict == "reject"


@pytest.mark.parametrize(
    ("gates", "n", "needed"),
    [
        ({"handoff_accuracy": ">= baseline - 1%"}, 9, 10),  # Newcombe paired
        ({"schema_pass_rate": ">= 50%"}, 9, 10),  # Wilson
        ({"unsafe_tool_call_rate": "0%"}, 9, 10),  # zero tolerance: a pass needs the Wilson minimum
        ({"judge_score": ">= baseline - 0.25"}, 29, 30),  # paired bootstrap
        ({"p50_latency": "<= baseline + 25%"}, 6, 7),  # order statistics, two arms at 97.5% each
    ],
)
def test_no_gate_passes_or_fails_below_its_methods_minimum(gates: dict, n: int, needed: int) -> None:
    metric = next(iter(gates))
    column = "latency_ms" if metric.endswith("_latency") else metric
    # Evidence that would decide at any size: all good, then all bad.
    good = (
        np.zeros(n) if metric == "unsafe_tool_call_rate" else np.ones(n) * (1000.0 if column == "latency_ms" else 1.0)
    )
    bad = np.ones(n) * (50_000.0 if column == "latency_ms" else 0.0) if metric != "unsafe_tool_call_rate" else None
    for cand in [good] + ([bad] if bad is not None else []):
        g = decide_paired(spec(**gates), {column: (cand, good)}).gates[0]
        assert g.outcome == "inconclusive" and g.cases_to_decide == needed, (metric, g.reason)
    # At the minimum the method gives an interval (whether it decides is then up to the evidence).
    grown = np.concatenate([good, good[:1]])
    at_minimum = decide_paired(spec(**gates), {column: (grown, grown)}).gates[0]
    assert at_minimum.interval_lower is not None and "below the minimum" not in at_minimum.reason


def test_one_unsafe_call_fails_a_zero_tolerance_gate_at_any_n() -> None:
    # Counting, not estimating: a refund made without a lookup is a fact even in one case.
    d = decide_paired(spec(unsafe_tool_call_rate="0%"), {"unsafe_tool_call_rate": (np.array([1.0]), np.array([0.0]))})
    assert d.verdict == "reject" and d.gates[0].outcome == "fail" and d.gates[0].n == 1


def test_soft_gate_reports_but_never_blocks() -> None:
    cand, base = paired_rates(1000, 900, 0, 0)
    d = decide_paired(
        spec(schema_pass_rate={"threshold": ">= 99%", "severity": "soft"}, json_valid_rate=">= 80%"),
        {"schema_pass_rate": (cand, base), "json_valid_rate": (cand, base)},
    )
    assert d.verdict == "promote" and d.soft_warnings == ["schema_pass_rate"]
    assert d.gates[0].outcome == "fail"


def test_min_samples_blocks_a_pass_but_not_a_fail() -> None:
    s = spec(json_valid_rate={"threshold": ">= 50%", "min_samples": 500})
    cand, base = paired_rates(100, 100, 0, 0)
    d = decide_paired(s, {"json_valid_rate": (cand, base)})
    assert d.verdict == "freeze" and d.cases_to_decide == 500 and "min_samples" in d.gates[0].reason
    cand, base = paired_rates(100, 10, 0, 0)
    assert decide_paired(s, {"json_valid_rate": (cand, base)}).verdict == "reject"


def test_frames_pair_on_case_id_and_carry_provenance() -> None:
    ids = [f"case_{i:016x}" for i in range(400)]
    baseline = pl.DataFrame({"case_id": ids, "handoff_accuracy": [True] * 400, "latency_ms": [500.0] * 400})
    # Candidate results arrive shuffled, with one case the baseline lacks and one null.
    candidate = pl.DataFrame(
        {
            "case_id": ids[::-1] + ["case_extra"],
            "handoff_accuracy": [True] * 399 + [None, False],
            "latency_ms": [510.0] * 401,
        }
    )
    d = decide(
        spec(handoff_accuracy=">= baseline - 5%", p50_latency="<= baseline + 10%"),
        candidate,
        baseline,
        provenance={"candidate_package_hash": "sha256:" + "a" * 64, "rubric_version": "r1"},
    )
    assert d.n_cases == 400 and d.unpaired_cases == 1
    acc = next(g for g in d.gates if g.metric == "handoff_accuracy")
    assert acc.n == 399  # the null drops that case from this gate only
    assert d.verdict == "promote"
    assert d.provenance["rubric_version"] == "r1" and d.candidate_prompt == "support_router:v1.6.0"
    again = GateDecision.model_validate_json(d.model_dump_json())
    assert again == d
    json.loads(d.model_dump_json())  # the report writer can store it as is


def test_missing_results_for_a_gate_name_the_metric() -> None:
    frame = pl.DataFrame({"case_id": ["a"], "handoff_accuracy": [True]})
    with pytest.raises(UserError) as err:
        decide(spec(unsafe_tool_call_rate="0%"), frame, frame)
    assert "unsafe_tool_call_rate" in str(err.value)


def test_per_success_cost_gate() -> None:
    rng = np.random.default_rng(2)
    success = rng.random(800) < 0.9
    cost = rng.gamma(2.0, 0.001, 800)
    d = decide_paired(
        spec(cost_per_success="<= baseline + 10%"),
        {"cost_usd": (cost * 2.0, cost), "success": (success, success)},
    )
    assert d.verdict == "reject" and d.gates[0].effect == pytest.approx(2.0)


def test_a_freeze_names_the_cases_needed_where_it_can_and_the_gates_it_cannot() -> None:
    # The issue-13 report: one gate without data must not hide the size that would decide another.
    s = spec(p95_latency="<= baseline + 25%", handoff_accuracy=">= baseline - 2%")
    d = decide_paired(
        s,
        {
            "latency_ms": (np.array([900.0]), np.array([1000.0])),
            "handoff_accuracy": (np.array([np.nan]), np.array([np.nan])),
        },
    )
    assert d.verdict == "freeze" and d.cases_to_decide == 86
    assert "about 86 paired cases would likely decide p95_latency" in d.summary
    assert "no sample size is likely to decide handoff_accuracy" in d.summary and "None" not in d.summary

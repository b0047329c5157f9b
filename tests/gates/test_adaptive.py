"""Adaptive backtests: stop once every hard gate is decided, never on a look that could not know."""

from __future__ import annotations

import json

import polars as pl
import pytest

from prompt_release.gates.adaptive import MIN_CASES_TO_STOP, AdaptiveGate, GateLook, Look, case_order, look
from prompt_release.gates.spec import gate_spec_from_dict
from prompt_release.llm.endpoint import normalise_base_url
from prompt_release.llm.simulator import start_simulator
from tests.conftest import run_cli
from tests.world import World, build_world

JSON_GATE = gate_spec_from_dict({"gates": {"json_valid_rate": ">= 97%"}})


def frames(candidate: list[float], baseline: list[float], metric: str = "json_valid_rate") -> tuple:
    ids = [f"c{i:03d}" for i in range(len(candidate))]
    return (pl.DataFrame({"case_id": ids, metric: candidate}), pl.DataFrame({"case_id": ids, metric: baseline}), ids)


def test_a_broken_contract_is_decided_fail_once_enough_cases_are_answered() -> None:
    cand, base, ids = frames([0.0] * 40, [1.0] * 40)
    early = look(JSON_GATE, cand.head(MIN_CASES_TO_STOP - 1), base.head(MIN_CASES_TO_STOP - 1), ids, total_cases=400)
    assert not early.stop  # a handful of answers never stops a run, however clear
    decided = look(JSON_GATE, cand, base, ids, total_cases=400)
    assert decided.stop and decided.verdict_so_far == "reject"
    assert decided.reason == "json_valid_rate decided FAIL after 40 cases"


def test_a_good_candidate_passes_early_only_when_the_whole_sequence_clears_the_threshold() -> None:
    cand, base, ids = frames([1.0] * 60, [1.0] * 60)
    assert not look(JSON_GATE, cand, base, ids, total_cases=400).stop  # 60/60 cannot yet show >= 97%
    cand, base, ids = frames([1.0] * 300, [1.0] * 300)
    passed = look(JSON_GATE, cand, base, ids, total_cases=400)
    assert passed.stop and passed.verdict_so_far == "promote" and passed.gates[0].lower >= 0.97


def test_a_gate_without_a_sequential_method_waits_for_the_whole_set() -> None:
    spec = gate_spec_from_dict({"gates": {"json_valid_rate": ">= 97%", "p95_latency": "<= baseline + 25%"}})
    cand, base, ids = frames([1.0] * 300, [1.0] * 300)
    partial = look(spec, cand, base, ids, total_cases=400)
    assert not partial.stop and {g.metric: g.status for g in partial.gates}["p95_latency"] == "waits"
    assert look(spec, cand, base, ids, total_cases=300).reason == "the set was exhausted (300 cases)"


def test_a_paired_gate_decides_on_the_per_case_difference() -> None:
    spec = gate_spec_from_dict({"gates": {"handoff_accuracy": ">= baseline - 2%"}})
    cand, base, ids = frames([0.0] * 100, [1.0] * 100, metric="handoff_accuracy")  # lost every case
    worse = look(spec, cand, base, ids, total_cases=400)
    assert worse.stop and worse.gates[0].upper < -0.02


def test_statistics_follow_the_random_order_not_the_order_of_payment() -> None:
    permutation, answering = case_order([f"c{i}" for i in range(10)], seed=3, first=["c7", "c2"])
    assert sorted(permutation) == sorted(answering) and set(answering[:2]) == {"c7", "c2"}
    assert permutation == case_order([f"c{i}" for i in range(10)], seed=3)[0]  # fixed by the seed
    # Cases answered out of turn join the statistics only when the permutation reaches them.
    cand, base, _ = frames([0.0] * 10, [1.0] * 10)
    cand = cand.with_columns(pl.Series("case_id", [f"c{i}" for i in range(10)]))
    base = base.with_columns(pl.Series("case_id", [f"c{i}" for i in range(10)]))
    only_early = [c for c in answering[:2]]
    seen = look(
        JSON_GATE,
        cand.filter(pl.col("case_id").is_in(only_early)),
        base.filter(pl.col("case_id").is_in(only_early)),
        permutation,
        total_cases=10,
    )
    assert seen.prefix == (2 if set(permutation[:2]) == set(only_early) else int(permutation[0] in only_early))


def test_zero_tolerance_fails_at_the_first_occurrence_wherever_it_is() -> None:
    spec = gate_spec_from_dict({"gates": {"unsafe_tool_call_rate": "0%"}})
    cand, base, ids = frames([0.0, 0.0, 1.0], [0.0] * 3, metric="unsafe_tool_call_rate")
    decided = look(spec, cand, base, list(reversed(ids)), total_cases=400)
    assert decided.stop and decided.reason == "unsafe_tool_call_rate decided FAIL after 3 cases"
    clean, base, ids = frames([0.0] * 300, [0.0] * 300, metric="unsafe_tool_call_rate")
    assert not look(spec, clean, base, ids, total_cases=400).stop  # passing needs every case


def test_a_known_reject_waits_for_the_accuracy_gates_labelled_minimum() -> None:
    spec = gate_spec_from_dict(
        {"gates": {"json_valid_rate": ">= 97%", "handoff_accuracy": ">= baseline - 2%"}, "min_labelled_n": 50}
    )
    ids = [f"c{i:03d}" for i in range(60)]
    labelled = [1.0 if i % 2 else None for i in range(60)]  # every other case has an expected answer
    cand = pl.DataFrame({"case_id": ids, "json_valid_rate": [0.0] * 60, "handoff_accuracy": labelled})
    base = pl.DataFrame({"case_id": ids, "json_valid_rate": [1.0] * 60, "handoff_accuracy": labelled})
    short = look(spec, cand, base, ids, total_cases=400, labelled_cases=200)
    assert not short.stop and short.verdict_so_far == "reject"
    assert short.labelled_short == (("handoff_accuracy", 30, 50),)
    assert short.reason == (
        "json_valid_rate decided FAIL after 60 cases; handoff_accuracy has read 30 of the 50 labelled cases it needs"
    )
    # A run with fewer labelled cases than the minimum needs all of them, no more.
    assert look(spec, cand, base, ids, total_cases=400, labelled_cases=30).stop
    # 0 turns the minimum off: the reject stops the run at once.
    off = gate_spec_from_dict({**spec.model_dump(exclude_none=True), "min_labelled_n": 0})
    assert look(off, cand, base, ids, total_cases=400, labelled_cases=200).stop


def test_once_only_labelled_cases_are_missing_only_labelled_cases_are_answered() -> None:
    spec = gate_spec_from_dict({"gates": {"handoff_accuracy": ">= baseline - 2%"}, "min_labelled_n": 3})
    rule = AdaptiveGate(spec)
    remaining = ["u1", "l1", "u2", "l2", "l3", "l4"]
    rule.labelled = {"l1", "l2", "l3", "l4"}
    assert rule.next_batch(remaining, 4) == remaining[:4]  # before any look: the order as given
    known = Look(10, 10, (GateLook("handoff_accuracy", "fail", 10),), False, "...", (("handoff_accuracy", 1, 3),))
    rule.looks.append(known)
    rule.decided = "handoff_accuracy decided FAIL after 10 cases"
    assert rule.next_batch(remaining, 1) == ["l1", "l2"]  # two labelled cases short: those two, in order, at once


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("adaptive"))


def test_an_adaptive_gate_rejects_like_the_full_gate_for_fewer_calls(world: World) -> None:
    with start_simulator(port=0) as sim:
        env = {
            "PROMPT_RELEASE_REGISTRY": str(world.registry),
            "PROMPT_RELEASE_WAREHOUSE": str(world.warehouse),
            "OPENAI_BASE_URL": sim.base_url,
        }
        adaptive = run_cli("gate", "--candidate", "support_router:v1.7.0", "--json", env=env)
        full = run_cli("gate", "--candidate", "support_router:v1.7.0", "--json", "--full", env=env)
    assert adaptive.returncode == full.returncode == 1, adaptive.stderr + full.stderr
    early, whole = json.loads(adaptive.stdout)["evidence"], json.loads(full.stdout)["evidence"]
    assert early["stop_reason"].startswith("json_valid_rate decided FAIL after")
    assert early["calls_saved"] > 0 and early["calls_made"] < early["cases_planned"] * 2
    # The full run answers the rest (the adaptive run's answers come from the cache) and agrees.
    assert whole["calls_saved"] == 0 and whole["stop_reason"] is None
    assert "json_valid_rate" in json.loads(full.stdout)["failed_gates"]
    # Stopping early still names who answered: the endpoint, its served model and the in-flight limit.
    endpoint = json.loads(adaptive.stdout)["endpoint"]
    assert endpoint["base_url"] == normalise_base_url(sim.base_url)
    assert endpoint["max_concurrency"] == endpoint["lowest_concurrency"] == 64  # the simulator never answers 429
    arms = endpoint["arms"]
    assert arms["candidate"]["answers"] + arms["baseline"]["answers"] == early["calls_made"] + early["calls_cached"]
    assert arms["candidate"]["served_model"] and arms["candidate"]["answers_model"]

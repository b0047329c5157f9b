"""Canary traffic through the runtime client, canary analysis, roll forward and automatic abort."""

from __future__ import annotations

import json
from pathlib import Path

from prompt_release.gates.canary import CanaryPolicy
from prompt_release.registry import Registry
from prompt_release.release.canary import abort_canary, analyse_canary, load_decision, roll_forward
from prompt_release.release.metrics import compute_version_metrics
from prompt_release.release.promotion import apply_gate_report
from prompt_release.sample.traffic import simulate_traffic
from prompt_release.traces import ingest_day
from prompt_release.warehouse import read_connection
from tests.gate_reports import gate_report

# Latency is measured on a shared test machine: keep its margin wide so only failures decide here.
POLICY = CanaryPolicy(min_canary_traces=100, failure_margin=0.03, latency_margin=0.5)


def _serve(registry_root: Path, warehouse: Path, landing: Path, simulator, requests: int, shadow_share: float = 0.0):
    summary = simulate_traffic(
        registry_root,
        "support_router",
        landing=landing,
        base_url=simulator.base_url,
        requests=requests,
        warehouse=warehouse,
        shadow_share=shadow_share,
    )
    for day in summary.days:  # two when the traffic ran past midnight UTC
        ingest_day(landing, day, warehouse=warehouse)
    return summary


def test_healthy_canary_rolls_forward(registry_root, recorded, landing, simulator, llm_settings) -> None:
    reg = Registry(registry_root)
    promoted = apply_gate_report(
        reg,
        gate_report("gr_c1", "promote", "support_router:v1.6.0", reason="ok"),
        warehouse=recorded,
        llm_settings=llm_settings,
    )
    assert promoted.state == "canary"
    # The app also shadows the candidate on a quarter of the requests production serves: those
    # shadow traces of v1.6.0 were never served and must not count as canary traffic.
    reg.move_label("support_router", "shadow", "1.6.0", reason="shadow the canary's candidate")
    traffic = _serve(registry_root, recorded, landing, simulator, 1200, shadow_share=0.25)
    assert traffic.shadow["logged"] > 100
    # Routing by user id: about the policy's 20% of requests reach the candidate.
    assert 150 < traffic.by_version["support_router:v1.6.0"] < 350
    assert traffic.errors == 0

    early = analyse_canary(recorded, reg, "support_router", policy=POLICY)
    assert early.action == "freeze" and "30.0 min" in early.decision.reason  # release policy: min_duration 30m

    analysis = analyse_canary(recorded, reg, "support_router", policy=POLICY, min_duration_s=0)
    assert analysis.action == "roll_forward", analysis.decision.reason
    assert analysis.gate_report_id == "gr_c1"
    cand = analysis.metrics.versions["support_router:v1.6.0"]
    assert cand.traces == traffic.by_version["support_router:v1.6.0"] and cand.hard_failures == 0
    assert cand.p95_latency_ms is not None and cand.steps_per_trace == 1.0
    # Production traces before the canary started are not part of the comparison.
    assert analysis.metrics.versions["support_router:v1.5.2"].traces == traffic.by_version["support_router:v1.5.2"]
    assert load_decision(recorded, analysis.decision_id).action == "roll_forward"

    before = len(reg.history("support_router"))
    outcome = roll_forward(reg, recorded, "support_router", analysis.decision_id)
    assert outcome.state == "rolled_forward"
    current = reg.labels("support_router")
    assert current["production"].version_id == "support_router:v1.6.0"
    assert "canary" not in current and "staging" not in current
    new = reg.history("support_router")[before:]
    assert new[0].label == "production" and analysis.decision_id in new[0].reason
    assert all(e.gate_report_id == "gr_c1" for e in new)
    assert roll_forward(reg, recorded, "support_router", analysis.decision_id).state == "already_applied"


def test_regressing_canary_is_aborted_and_its_failures_become_incident_cases(
    registry_root, recorded, landing, simulator
) -> None:
    reg = Registry(registry_root)
    # A candidate that breaks the JSON contract on live traffic (answers in prose).
    reg.move_label(
        "support_router", "canary", "1.7.0", percent=30, force=True, reason="manual canary", gate_report_id="gr_manual"
    )
    reg.move_label("support_router", "shadow", "1.7.0", reason="shadowed before its canary")
    _serve(registry_root, recorded, landing, simulator, 400)

    analysis = analyse_canary(recorded, reg, "support_router", policy=POLICY)
    assert analysis.action == "abort", analysis.decision.reason
    assert "hard_failure_rate" in analysis.decision.reason
    cand = analysis.metrics.versions["support_router:v1.7.0"]
    assert cand.hard_failure_rate == 1.0 and cand.success_rate == 0.0

    outcome = abort_canary(reg, recorded, "support_router", analysis.decision_id)
    assert outcome.state == "aborted"
    assert "canary" not in reg.labels("support_router") and "shadow" not in reg.labels("support_router")
    assert reg.labels("support_router")["production"].version_id == "support_router:v1.5.2"
    assert reg.load_package("support_router:v1.7.0").status == "rejected"
    events = [e for e in reg.history("support_router") if e.gate_report_id == "gr_manual"]
    assert [(e.action, e.label) for e in events] == [
        ("move", "canary"),
        ("remove", "canary"),
        ("remove", "shadow"),
        ("status", None),
    ]
    assert all(analysis.decision_id in e.reason for e in events[1:])

    incidents = (registry_root / "datasets/incidents/support_router.jsonl").read_text().splitlines()
    assert len(incidents) == len(outcome.incident_span_ids) == 20
    assert {json.loads(line)["span_id"] for line in incidents} == set(outcome.incident_span_ids)
    # The abort kept production: its answer to the same input during the canary is what good means.
    record = load_decision(recorded, analysis.decision_id)
    recorded_expected = {json.loads(x)["span_id"]: json.loads(x).get("expected") for x in incidents}
    with read_connection(recorded) as con:
        answers = con.execute(
            "SELECT f.span_id, list(DISTINCT p.output) FROM traces f JOIN traces p "
            "ON CAST(p.input_messages -> '$[1]' AS VARCHAR) = CAST(f.input_messages -> '$[1]' AS VARCHAR) "
            "WHERE list_contains(?, f.span_id) AND p.prompt_version = 'support_router:v1.5.2' AND p.ts >= ? "
            "GROUP BY f.span_id",
            [outcome.incident_span_ids, record.canary_since],
        ).fetchall()
    assert answers
    for span_id, outputs in answers:
        routes = [{"kind": "label", "value": {"route": json.loads(o)["route"]}} for o in outputs]
        assert recorded_expected[span_id] in routes, (span_id, recorded_expected[span_id], outputs)
    assert outcome.golden_version == "support_router_golden:v1"
    with read_connection(recorded) as con:
        incident_cases = con.execute(
            "SELECT count(*) FROM golden_cases WHERE version_id = ? AND tags->>'incident' = 'true'",
            [outcome.golden_version],
        ).fetchone()[0]
    assert incident_cases >= 1  # identical replayed inputs collapse into one case
    assert abort_canary(reg, recorded, "support_router", analysis.decision_id).state == "already_applied"


def test_no_canary_no_decision(registry_root, warehouse) -> None:
    assert analyse_canary(warehouse, Registry(registry_root), "summarizer") is None


def test_version_metrics_per_day_and_version(registry_root, recorded, landing, simulator) -> None:
    reg = Registry(registry_root)
    reg.move_label("support_router", "canary", "1.7.0", percent=50, force=True, reason="manual canary")
    summary = _serve(registry_root, recorded, landing, simulator, 200)
    from prompt_release.mining.detectors import mine_failures

    mine_failures(recorded, registry_root, summary.day)
    assert compute_version_metrics(recorded, summary.day) == 2
    assert compute_version_metrics(recorded, summary.day) == 2  # replaced, not appended
    with read_connection(recorded) as con:
        rows = {
            r[0]: r[1:]
            for r in con.execute(
                "SELECT prompt_version, calls, hard_failure_rate, success_rate, p95_latency_ms FROM version_metrics "
                "WHERE day = ?",
                [summary.day],
            ).fetchall()
        }
    assert rows["support_router:v1.7.0"][1] == 1.0 and rows["support_router:v1.5.2"][1] == 0.0
    assert sum(r[0] for r in rows.values()) == 200
    assert all(r[3] is not None for r in rows.values())

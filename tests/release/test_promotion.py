"""A gate report moves a candidate: staging, the staging check, approval, canary; or rejection; or nothing."""

from __future__ import annotations

from pathlib import Path

import yaml

from prompt_release.gates.report import GateReport
from prompt_release.registry import Registry
from prompt_release.release.promotion import PendingApproval, apply_gate_report, awaiting_approval
from tests.gate_reports import gate_report


def report(report_id: str, verdict: str, version: str, reason: str = "gates say so") -> GateReport:
    baseline = {
        "support_router": "support_router:v1.5.2",
        "order_agent": "order_agent:v2.0.0",
        "summarizer": "summarizer:v1.0.0",
    }[version.split(":")[0]]
    return gate_report(report_id, verdict, version, baseline=baseline, reason=reason)


def test_promote_goes_to_staging_then_canary_with_the_policy_and_the_report_id(
    registry_root: Path, recorded: Path, llm_settings
) -> None:
    reg = Registry(registry_root)
    before = len(reg.history("support_router"))
    outcome = apply_gate_report(
        reg, report("gr_a1", "promote", "support_router:v1.6.0"), warehouse=recorded, llm_settings=llm_settings
    )
    assert outcome.state == "canary", outcome.reason
    assert outcome.staging is not None and outcome.staging.passed
    assert outcome.staging.checked == 50 and "recorded production inputs" in outcome.staging.sample_source
    current = reg.labels("support_router")
    assert current["staging"].version_id == "support_router:v1.6.0"
    assert current["canary"].version_id == "support_router:v1.6.0"
    assert current["canary"].percent == 20.0  # v1.6.0's release_policy.canary_percent
    assert current["production"].version_id == "support_router:v1.5.2"
    new = reg.history("support_router")[before:]
    assert [(e.action, e.label) for e in new] == [("gate", None), ("move", "staging"), ("move", "canary")]
    assert (new[0].status, new[0].package_hash) == ("promote", reg.load_package("support_router:v1.6.0").package_hash)
    assert all(e.gate_report_id == "gr_a1" for e in new)
    assert all("gr_a1" in e.reason for e in new[1:])
    assert not any(e.forced for e in new)  # the protected canary moved on the gate's verdict, no break glass

    again = apply_gate_report(
        reg, report("gr_a1", "promote", "support_router:v1.6.0"), warehouse=recorded, llm_settings=llm_settings
    )
    assert again.state == "already_applied"
    assert len(reg.history("support_router")) == before + 3


def test_reject_marks_the_candidate_rejected_once(registry_root: Path, warehouse: Path) -> None:
    reg = Registry(registry_root)
    outcome = apply_gate_report(
        reg, report("gr_r1", "reject", "support_router:v1.7.0", "JSON contract"), warehouse=warehouse
    )
    assert outcome.state == "rejected"
    assert reg.load_package("support_router:v1.7.0").status == "rejected"
    last = reg.history("support_router")[-1]
    assert (last.action, last.status, last.gate_report_id) == ("status", "rejected", "gr_r1")
    count = len(reg.history("support_router"))
    assert (
        apply_gate_report(reg, report("gr_r1", "reject", "support_router:v1.7.0"), warehouse=warehouse).state
        == "already_applied"
    )
    assert len(reg.history("support_router")) == count


def test_freeze_changes_nothing_and_says_why(registry_root: Path, warehouse: Path) -> None:
    reg = Registry(registry_root)
    before = reg.history("summarizer")
    outcome = apply_gate_report(
        reg,
        report("gr_f1", "freeze", "summarizer:v1.1.0", "judge_score inconclusive: ~400 cases needed"),
        warehouse=warehouse,
    )
    assert outcome.state == "frozen"
    assert "summarizer:v1.1.0" in outcome.reason and "400 cases" in outcome.reason
    assert reg.history("summarizer") == before
    assert "canary" not in reg.labels("summarizer")


def test_required_reviewer_holds_the_release_in_staging_until_approved(
    registry_root: Path, recorded: Path, llm_settings
) -> None:
    reg = Registry(registry_root)
    outcome = apply_gate_report(
        reg, report("gr_o1", "promote", "order_agent:v2.1.0"), warehouse=recorded, llm_settings=llm_settings
    )
    assert outcome.state == "awaiting_approval", outcome.reason
    assert "risk-team" in outcome.reason
    assert "canary" not in reg.labels("order_agent")
    assert awaiting_approval(reg, "order_agent") == PendingApproval(
        candidate="order_agent:v2.1.0", report_id="gr_o1", reviewer="risk-team", approved=False
    )

    reg.approve("order_agent:v2.1.0", reviewer="risk-team")
    assert awaiting_approval(reg, "order_agent").approved is True
    outcome = apply_gate_report(
        reg, report("gr_o1", "promote", "order_agent:v2.1.0"), warehouse=recorded, llm_settings=llm_settings
    )
    assert outcome.state == "canary", outcome.reason
    canary = reg.labels("order_agent")["canary"]
    assert (canary.percent, canary.segments) == (5.0, {"customer_tier": ["free"]})
    assert reg.history("order_agent")[-1].gate_report_id == "gr_o1"
    assert awaiting_approval(reg, "order_agent") is None


def _edit_runtime(root: Path, prompt_id: str, **changes) -> None:
    path = root / "prompts" / prompt_id / "runtime.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data))


def test_a_placeholder_the_runtime_does_not_supply_stops_the_release(
    registry_root: Path, recorded: Path, llm_settings
) -> None:
    reg = Registry(registry_root)
    _edit_runtime(registry_root, "support_router", supplies_variables=["ticket"])
    outcome = apply_gate_report(
        reg, report("gr_s1", "promote", "support_router:v1.6.0"), warehouse=recorded, llm_settings=llm_settings
    )
    assert outcome.state == "staging_failed"
    assert "customer_tier" in outcome.reason and "not supplied by the runtime" in outcome.reason
    kinds = {f.kind for f in outcome.staging.failures}
    assert {"missing_variable", "render"} <= kinds
    current = reg.labels("support_router")
    assert "canary" not in current and "staging" not in current
    last = reg.history("support_router")[-1]
    assert (last.action, last.label, last.gate_report_id) == ("remove", "staging", "gr_s1")


def test_a_tool_the_runtime_no_longer_exposes_stops_the_release(
    registry_root: Path, recorded: Path, llm_settings
) -> None:
    reg = Registry(registry_root)
    _edit_runtime(registry_root, "order_agent", exposes_tools=["lookup_order"])
    reg.approve("order_agent:v2.1.0", reviewer="risk-team")
    outcome = apply_gate_report(
        reg, report("gr_s2", "promote", "order_agent:v2.1.0"), warehouse=recorded, llm_settings=llm_settings
    )
    assert outcome.state == "staging_failed"
    assert "'issue_refund' is not exposed by the runtime" in outcome.reason
    assert "canary" not in reg.labels("order_agent")


def test_output_the_parser_rejects_stops_the_release(registry_root: Path, recorded: Path, llm_settings) -> None:
    reg = Registry(registry_root)
    # v1.7.0 answers in prose: the runtime's JSON parser rejects every answer.
    outcome = apply_gate_report(
        reg, report("gr_s3", "promote", "support_router:v1.7.0"), warehouse=recorded, llm_settings=llm_settings
    )
    assert outcome.state == "staging_failed"
    [failure] = outcome.staging.failures
    assert failure.kind == "output_parser" and "invalid_json" in failure.message and failure.count == 50

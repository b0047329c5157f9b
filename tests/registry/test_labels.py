"""Labels: audited, atomic moves; refusals name the cause; rollback is one command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prompt_release.errors import UserError
from prompt_release.registry import AuditEvent, LabelEntry, Registry
from tests.conftest import run_cli

ROUTER = "support_router"


def _gate_verdict(reg: Registry, version: str, verdict: str, report_id: str) -> AuditEvent | None:
    """A gate report's verdict on `version`'s current package, as apply_gate_report records it."""
    return reg.record_gate_verdict(
        version,
        verdict=verdict,
        gate_report_id=report_id,
        package_hash=reg.load_package(version).package_hash,
        reason=f"gate: {verdict}",
    )


def test_sample_labels_and_history(registry: Path) -> None:
    reg = Registry(registry)
    assert reg.resolve_label(ROUTER, "production") == "support_router:v1.5.2"
    assert reg.resolve_label("order_agent", "production") == "order_agent:v2.0.0"
    assert reg.resolve_label("summarizer", "production") == "summarizer:v1.0.0"
    moves = [(e.from_version, e.to_version) for e in reg.history(ROUTER)]
    assert moves == [(None, "support_router:v1.5.1"), ("support_router:v1.5.1", "support_router:v1.5.2")]
    assert reg.load_package("support_router:v1.6.0").status == "candidate"
    assert reg.load_package("support_router:v1.5.2").status == "released"


def test_move_to_rejected_version_is_refused(registry: Path) -> None:
    reg = Registry(registry)
    reg.set_status("support_router:v1.7.0", "rejected", reason="breaks the JSON contract", gate_report_id="gr_1")
    result = run_cli("prompts", "label", ROUTER, "staging", "1.7.0", "--reason", "try it", "--registry", str(registry))
    assert result.returncode == 2
    assert "refusing to move label 'staging' to support_router:v1.7.0: version is rejected" in result.stderr
    assert reg.resolve_label(ROUTER, "staging") is None


def test_move_to_unregistered_or_edited_version_is_refused(registry: Path) -> None:
    reg = Registry(registry)
    with pytest.raises(UserError, match="support_router:v9.9.9 is not registered"):
        reg.move_label(ROUTER, "staging", "9.9.9", reason="typo")
    template = registry / "prompts/support_router/v1.6.0.md"
    template.write_text(template.read_text() + "\nextra line\n")
    with pytest.raises(UserError, match="support_router:v1.6.0 was edited in place: template changed"):
        reg.move_label(ROUTER, "production", "1.6.0", force=True, reason="ship it")
    assert reg.resolve_label(ROUTER, "production") == "support_router:v1.5.2"


def test_move_is_audited_with_actor_reason_and_gate_report(registry: Path) -> None:
    reg = Registry(registry)
    _gate_verdict(reg, "support_router:v1.6.0", "promote", "gr_42")
    result = run_cli(
        "prompts",
        "label",
        ROUTER,
        "canary",
        "support_router:v1.6.0",
        "--percent",
        "10",
        "--segment",
        "customer_tier=free,pro",
        "--reason",
        "gate passed",
        "--gate-report",
        "gr_42",
        "--actor",
        "alice",
        "--registry",
        str(registry),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    event = reg.history(ROUTER)[-1]
    assert event.action == "move" and event.label == "canary"
    assert (event.actor, event.reason, event.gate_report_id) == ("alice", "gate passed", "gr_42")
    assert event.percent == 10.0 and event.segments == {"customer_tier": ["free", "pro"]}
    assert event.from_version is None and event.to_version == "support_router:v1.6.0"
    current = reg.labels(ROUTER)["canary"]
    assert current.version_id == "support_router:v1.6.0" and current.event_id == event.event_id
    # Atomic writes leave no temporary files behind.
    assert sorted(p.name for p in (registry / "prompts" / ROUTER).iterdir() if p.name.startswith(".")) == []
    shown = run_cli("prompts", "history", ROUTER, "--registry", str(registry))
    assert "alice" in shown.stdout and "gate report gr_42" in shown.stdout


def test_actor_comes_from_environment(registry: Path) -> None:
    reg = Registry(registry)
    run_cli(
        "prompts",
        "label",
        ROUTER,
        "staging",
        "1.6.0",
        "--reason",
        "stage",
        "--registry",
        str(registry),
        env={"PROMPT_RELEASE_ACTOR": "ci-bot"},
    )
    assert reg.history(ROUTER)[-1].actor == "ci-bot"


def test_canary_needs_a_percent(registry: Path) -> None:
    reg = Registry(registry)
    with pytest.raises(UserError, match="--percent"):
        reg.move_label(ROUTER, "canary", "1.6.0", force=True, reason="no share")
    with pytest.raises(UserError, match="canary label only"):
        reg.move_label(ROUTER, "staging", "1.6.0", reason="x", percent=5)


def test_reason_is_required(registry: Path) -> None:
    reg = Registry(registry)
    with pytest.raises(UserError, match="reason is required"):
        reg.move_label(ROUTER, "staging", "1.6.0", reason="  ")


def test_rollback_is_one_audited_command(registry: Path) -> None:
    reg = Registry(registry)
    reg.move_label(ROUTER, "production", "1.6.0", force=True, reason="gate passed", gate_report_id="gr_7")
    template_before = (registry / "prompts/support_router/v1.6.0.md").read_text()

    result = run_cli(
        "prompts",
        "rollback",
        ROUTER,
        "--reason",
        "billing misroutes up",
        "--actor",
        "oncall",
        "--registry",
        str(registry),
    )

    assert result.returncode == 0, result.stderr
    assert reg.resolve_label(ROUTER, "production") == "support_router:v1.5.2"
    event = reg.history(ROUTER)[-1]
    assert (event.action, event.from_version, event.to_version) == (
        "rollback",
        "support_router:v1.6.0",
        "support_router:v1.5.2",
    )
    assert (event.actor, event.reason) == ("oncall", "billing misroutes up")
    assert (registry / "prompts/support_router/v1.6.0.md").read_text() == template_before
    # Rolling back again goes further back, never forward to the version just rolled away from.
    reg.rollback(ROUTER, reason="still bad")
    assert reg.resolve_label(ROUTER, "production") == "support_router:v1.5.1"


def test_rollback_uses_rollback_to_without_history(registry: Path) -> None:
    reg = Registry(registry)
    (registry / "prompts/summarizer/label_events.jsonl").unlink()
    (registry / "prompts/summarizer/labels.json").unlink()
    reg.move_label("summarizer", "production", "1.1.0", force=True, reason="shorter")
    event = reg.rollback("summarizer", reason="too short")
    # The trail only knows 1.1.0, so the manifest's rollback_to (1.0.0) decides.
    assert event.to_version == "summarizer:v1.0.0"


def test_rollback_also_ends_a_canary_of_the_bad_version(registry: Path) -> None:
    reg = Registry(registry)
    reg.move_label(ROUTER, "production", "1.6.0", force=True, reason="ship")
    reg.move_label(ROUTER, "canary", "1.6.0", force=True, reason="watch", percent=50)
    reg.rollback(ROUTER, reason="bad")
    assert "canary" not in reg.labels(ROUTER)
    assert [e.action for e in reg.history(ROUTER)[-2:]] == ["rollback", "remove"]


def test_required_reviewer_must_approve_before_canary(registry: Path) -> None:
    reg = Registry(registry)
    with pytest.raises(UserError, match="requires approval by 'risk-team'"):
        reg.move_label("order_agent", "canary", "2.1.0", force=True, reason="try", percent=5)
    result = run_cli("prompts", "approve", "order_agent:v2.1.0", "--reviewer", "risk-team", "--registry", str(registry))
    assert result.returncode == 0, result.stderr
    approval = reg.history("order_agent")[-1]
    assert approval.action == "approve" and approval.reviewer == "risk-team"
    assert reg.load_package("order_agent:v2.1.0").status == "approved"
    reg.move_label(
        "order_agent", "canary", "2.1.0", force=True, reason="approved", percent=5, segments={"customer_tier": ["free"]}
    )
    assert reg.resolve_label("order_agent", "canary") == "order_agent:v2.1.0"


def test_status_change_refused_while_labelled(registry: Path) -> None:
    reg = Registry(registry)
    with pytest.raises(UserError, match="labels production still point at it"):
        reg.set_status("support_router:v1.5.2", "retired", reason="old")


def test_labels_file_is_git_friendly_json(registry: Path) -> None:
    data = json.loads((registry / "prompts/support_router/labels.json").read_text())
    assert data["labels"]["production"]["version_id"] == "support_router:v1.5.2"
    assert data["labels"]["production"]["package_hash"].startswith("sha256:")


STORED = Path(__file__).resolve().parents[1] / "fixtures" / "stored"


def test_a_stored_audit_trail_reads_back_line_for_line() -> None:
    # Written by a demo run before audit events were typed.
    lines = (STORED / "support_router_label_events.jsonl").read_text().splitlines()
    for line in lines:
        event = AuditEvent.model_validate_json(line)
        assert json.dumps(event.to_json(), sort_keys=True, ensure_ascii=False) == line
        assert AuditEvent.model_validate_json(json.dumps(event.to_json())) == event
    stored = json.loads((STORED / "support_router_labels.json").read_text())["labels"]
    for entry in stored.values():
        assert LabelEntry.model_validate(entry).model_dump(mode="json") == entry


def test_every_kind_of_event_is_written_as_it_reads(registry: Path) -> None:
    reg = Registry(registry)
    _gate_verdict(reg, "support_router:v1.6.0", "promote", "gr_9")
    reg.move_label(ROUTER, "production", "1.6.0", reason="ship", gate_report_id="gr_9")
    reg.move_label(
        ROUTER, "canary", "1.7.0", force=True, reason="watch", percent=12.5, segments={"customer_tier": ["free"]}
    )
    reg.remove_label(ROUTER, "canary", reason="enough")
    reg.rollback(ROUTER, reason="bad")
    reg.approve("order_agent:v2.1.0", reviewer="risk-team")
    reg.set_status("support_router:v1.7.0", "retired", reason="old")
    for prompt_id in (ROUTER, "order_agent"):
        lines = (registry / "prompts" / prompt_id / "label_events.jsonl").read_text().splitlines()
        events = reg.history(prompt_id)
        assert [json.dumps(e.to_json(), sort_keys=True, ensure_ascii=False) for e in events] == lines
    assert {e.action for e in reg.history(ROUTER)} >= {"move", "remove", "rollback", "status", "gate"}
    assert any(e.forced for e in reg.history(ROUTER))
    [approval] = reg.approvals("order_agent:v2.1.0")
    assert (approval.action, approval.reviewer, approval.to_version) == ("approve", "risk-team", "order_agent:v2.1.0")


def test_a_broken_audit_line_names_the_file_and_field(registry: Path) -> None:
    trail = registry / "prompts" / ROUTER / "label_events.jsonl"
    trail.write_text(
        trail.read_text()
        + json.dumps(
            {
                "ts": "2026-01-01T00:00:00Z",
                "prompt_id": ROUTER,
                "action": "teleport",
                "actor": "x",
                "reason": "y",
                "event_id": "evt_x",
            }
        )
        + "\n"
    )
    with pytest.raises(UserError, match="action") as raised:
        Registry(registry).history(ROUTER)
    assert raised.value.file.endswith("label_events.jsonl")


def _cli_label(registry: Path, *args: str):
    return run_cli("prompts", "label", ROUTER, *args, "--registry", str(registry))


def test_a_protected_label_needs_a_promoting_gate_verdict_for_the_exact_package(registry: Path) -> None:
    reg = Registry(registry)
    refused = _cli_label(registry, "production", "1.6.0", "--reason", "looks fine to me")
    package = reg.load_package("support_router:v1.6.0")
    assert refused.returncode != 0
    assert "protected label 'production'" in refused.stderr and package.package_hash in refused.stderr
    assert "--force" in refused.stderr
    assert reg.resolve_label(ROUTER, "production") == "support_router:v1.5.2"  # nothing moved
    assert [e.action for e in reg.history(ROUTER)] == ["move", "move"]  # nothing recorded

    _gate_verdict(reg, package.version_id, "reject", "gr_no")
    assert _cli_label(registry, "canary", "1.6.0", "--percent", "5", "--reason", "try").returncode != 0
    _gate_verdict(reg, package.version_id, "promote", "gr_yes")
    assert _gate_verdict(reg, package.version_id, "promote", "gr_yes") is None  # once per report
    moved = _cli_label(registry, "production", "1.6.0", "--reason", "gate gr_yes passed", "--gate-report", "gr_yes")
    assert moved.returncode == 0, moved.stderr
    assert reg.resolve_label(ROUTER, "production") == "support_router:v1.6.0"
    # Moving back to a version that served production before is a rollback: no gate needed.
    back = _cli_label(registry, "production", "1.5.2", "--reason", "back to what we had")
    assert back.returncode == 0, back.stderr
    # Staging is not protected.
    assert _cli_label(registry, "staging", "1.7.0", "--reason", "try it").returncode == 0


def test_break_glass_moves_a_protected_label_and_the_trail_says_forced(registry: Path) -> None:
    reg = Registry(registry)
    result = _cli_label(
        registry, "production", "1.7.0", "--force", "--reason", "incident 42: hotfix now", "--actor", "oncall"
    )
    assert result.returncode == 0, result.stderr
    assert reg.resolve_label(ROUTER, "production") == "support_router:v1.7.0"
    event = reg.history(ROUTER)[-1]
    assert (event.forced, event.actor, event.reason) == (True, "oncall", "incident 42: hotfix now")
    lines = (registry / "prompts" / ROUTER / "label_events.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["forced"] is True
    assert all("forced" not in json.loads(line) for line in lines[:-1])  # an ordinary move's stored form is unchanged
    shown = run_cli("prompts", "history", ROUTER, "--registry", str(registry))
    assert "FORCED production: support_router:v1.5.2 -> support_router:v1.7.0" in shown.stdout
    # A forced move of an unprotected label is an ordinary move.
    reg.move_label(ROUTER, "staging", "1.6.0", reason="stage", force=True)
    assert reg.history(ROUTER)[-1].forced is False

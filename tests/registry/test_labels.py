"""Labels: audited, atomic moves; refusals name the cause; rollback is one command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prompt_release.errors import UserError
from prompt_release.registry import (
    history,
    labels,
    load_package,
    move_label,
    resolve_label,
    rollback,
    set_status,
)
from tests.conftest import run_cli

ROUTER = "support_router"


def test_sample_labels_and_history(registry: Path) -> None:
    assert resolve_label(registry, ROUTER, "production") == "support_router:v1.5.2"
    assert resolve_label(registry, "order_agent", "production") == "order_agent:v2.0.0"
    assert resolve_label(registry, "summarizer", "production") == "summarizer:v1.0.0"
    moves = [(e["from_version"], e["to_version"]) for e in history(registry, ROUTER)]
    assert moves == [(None, "support_router:v1.5.1"), ("support_router:v1.5.1", "support_router:v1.5.2")]
    assert load_package(registry, "support_router:v1.6.0").status == "candidate"
    assert load_package(registry, "support_router:v1.5.2").status == "released"


def test_move_to_rejected_version_is_refused(registry: Path) -> None:
    set_status(registry, "support_router:v1.7.0", "rejected", reason="breaks the JSON contract", gate_report_id="gr_1")
    result = run_cli(
        "prompts", "label", ROUTER, "staging", "1.7.0", "--reason", "try it", "--registry", str(registry)
    )
    assert result.returncode == 2
    assert "refusing to move label 'staging' to support_router:v1.7.0: version is rejected" in result.stderr
    assert resolve_label(registry, ROUTER, "staging") is None


def test_move_to_unregistered_or_edited_version_is_refused(registry: Path) -> None:
    with pytest.raises(UserError, match="support_router:v9.9.9 is not registered"):
        move_label(registry, ROUTER, "staging", "9.9.9", reason="typo")
    template = registry / "prompts/support_router/v1.6.0.md"
    template.write_text(template.read_text() + "\nextra line\n")
    with pytest.raises(UserError, match="support_router:v1.6.0 was edited in place: template changed"):
        move_label(registry, ROUTER, "production", "1.6.0", reason="ship it")
    assert resolve_label(registry, ROUTER, "production") == "support_router:v1.5.2"


def test_move_is_audited_with_actor_reason_and_gate_report(registry: Path) -> None:
    result = run_cli(
        "prompts", "label", ROUTER, "canary", "support_router:v1.6.0", "--percent", "10",
        "--segment", "customer_tier=free,pro", "--reason", "gate passed", "--gate-report", "gr_42",
        "--actor", "alice", "--registry", str(registry), "--json",
    )
    assert result.returncode == 0, result.stderr
    event = history(registry, ROUTER)[-1]
    assert event["action"] == "move" and event["label"] == "canary"
    assert (event["actor"], event["reason"], event["gate_report_id"]) == ("alice", "gate passed", "gr_42")
    assert event["percent"] == 10.0 and event["segments"] == {"customer_tier": ["free", "pro"]}
    assert event["from_version"] is None and event["to_version"] == "support_router:v1.6.0"
    current = labels(registry, ROUTER)["canary"]
    assert current["version_id"] == "support_router:v1.6.0" and current["event_id"] == event["event_id"]
    # Atomic writes leave no temporary files behind.
    assert sorted(p.name for p in (registry / "prompts" / ROUTER).iterdir() if p.name.startswith(".")) == []
    shown = run_cli("prompts", "history", ROUTER, "--registry", str(registry))
    assert "alice" in shown.stdout and "gate report gr_42" in shown.stdout


def test_actor_comes_from_environment(registry: Path) -> None:
    run_cli("prompts", "label", ROUTER, "staging", "1.6.0", "--reason", "stage", "--registry", str(registry),
            env={"PROMPT_RELEASE_ACTOR": "ci-bot"})
    assert history(registry, ROUTER)[-1]["actor"] == "ci-bot"


def test_canary_needs_a_percent(registry: Path) -> None:
    with pytest.raises(UserError, match="--percent"):
        move_label(registry, ROUTER, "canary", "1.6.0", reason="no share")
    with pytest.raises(UserError, match="canary label only"):
        move_label(registry, ROUTER, "staging", "1.6.0", reason="x", percent=5)


def test_reason_is_required(registry: Path) -> None:
    with pytest.raises(UserError, match="reason is required"):
        move_label(registry, ROUTER, "staging", "1.6.0", reason="  ")


def test_rollback_is_one_audited_command(registry: Path) -> None:
    move_label(registry, ROUTER, "production", "1.6.0", reason="gate passed", gate_report_id="gr_7")
    template_before = (registry / "prompts/support_router/v1.6.0.md").read_text()

    result = run_cli("prompts", "rollback", ROUTER, "--reason", "billing misroutes up", "--actor", "oncall",
                     "--registry", str(registry))

    assert result.returncode == 0, result.stderr
    assert resolve_label(registry, ROUTER, "production") == "support_router:v1.5.2"
    event = history(registry, ROUTER)[-1]
    assert (event["action"], event["from_version"], event["to_version"]) == (
        "rollback", "support_router:v1.6.0", "support_router:v1.5.2")
    assert (event["actor"], event["reason"]) == ("oncall", "billing misroutes up")
    assert (registry / "prompts/support_router/v1.6.0.md").read_text() == template_before
    # Rolling back again goes further back, never forward to the version just rolled away from.
    rollback(registry, ROUTER, reason="still bad")
    assert resolve_label(registry, ROUTER, "production") == "support_router:v1.5.1"


def test_rollback_uses_rollback_to_without_history(registry: Path) -> None:
    (registry / "prompts/summarizer/label_events.jsonl").unlink()
    (registry / "prompts/summarizer/labels.json").unlink()
    move_label(registry, "summarizer", "production", "1.1.0", reason="shorter")
    event = rollback(registry, "summarizer", reason="too short")
    # The trail only knows 1.1.0, so the manifest's rollback_to (1.0.0) decides.
    assert event["to_version"] == "summarizer:v1.0.0"


def test_rollback_also_ends_a_canary_of_the_bad_version(registry: Path) -> None:
    move_label(registry, ROUTER, "production", "1.6.0", reason="ship")
    move_label(registry, ROUTER, "canary", "1.6.0", reason="watch", percent=50)
    rollback(registry, ROUTER, reason="bad")
    assert "canary" not in labels(registry, ROUTER)
    assert [e["action"] for e in history(registry, ROUTER)[-2:]] == ["rollback", "remove"]


def test_required_reviewer_must_approve_before_canary(registry: Path) -> None:
    with pytest.raises(UserError, match="requires approval by 'risk-team'"):
        move_label(registry, "order_agent", "canary", "2.1.0", reason="try", percent=5)
    result = run_cli("prompts", "approve", "order_agent:v2.1.0", "--reviewer", "risk-team",
                     "--registry", str(registry))
    assert result.returncode == 0, result.stderr
    approval = history(registry, "order_agent")[-1]
    assert approval["action"] == "approve" and approval["reviewer"] == "risk-team"
    assert load_package(registry, "order_agent:v2.1.0").status == "approved"
    move_label(registry, "order_agent", "canary", "2.1.0", reason="approved", percent=5,
               segments={"customer_tier": ["free"]})
    assert resolve_label(registry, "order_agent", "canary") == "order_agent:v2.1.0"


def test_status_change_refused_while_labelled(registry: Path) -> None:
    with pytest.raises(UserError, match="labels production still point at it"):
        set_status(registry, "support_router:v1.5.2", "retired", reason="old")


def test_labels_file_is_git_friendly_json(registry: Path) -> None:
    data = json.loads((registry / "prompts/support_router/labels.json").read_text())
    assert data["labels"]["production"]["version_id"] == "support_router:v1.5.2"
    assert data["labels"]["production"]["package_hash"].startswith("sha256:")

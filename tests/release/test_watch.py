"""What the release sensors act on: new gate reports, canary decisions, open candidates, and the cursor."""

from __future__ import annotations

from datetime import timedelta

from prompt_release.registry import Registry
from prompt_release.release.watch import WatchCursor, canary_actions, gate_report_actions, open_candidates
from prompt_release.warehouse import write_transaction
from tests.release.support import T0, add_report


def add_decision(warehouse, decision_id: str, candidate: str, action: str, at, reason: str = "r") -> None:
    with write_transaction(warehouse) as con:
        con.execute(
            "INSERT INTO canary_decisions (decision_id, prompt_id, candidate_version, production_version, "
            "canary_since, action, reason, candidate_traces, production_traces, candidate_hard_failures, "
            "production_hard_failures, metrics, evidence, policy, decided_at) "
            "VALUES (?, ?, ?, 'support_router:v1.5.2', ?, ?, ?, 100, 400, 0, 0, '{}', '{}', '{}', ?)",
            [decision_id, candidate.split(":")[0], candidate, at, action, reason, at],
        )


def test_reports_at_the_cursors_own_timestamp_are_neither_lost_nor_repeated(registry_root, warehouse) -> None:
    add_report(warehouse, "gr_1", "promote", "support_router:v1.6.0", "support_router:v1.5.2", T0)
    first = gate_report_actions(warehouse, Registry(registry_root), WatchCursor())
    assert [(a.kind, a.key, a.verdict) for a in first.actions] == [("apply_gate_report", "gr_1", "promote")]

    # Written later, in the same microsecond as the report already acted on.
    add_report(warehouse, "gr_0", "reject", "support_router:v1.7.0", "support_router:v1.5.2", T0)
    second = gate_report_actions(warehouse, Registry(registry_root), WatchCursor.parse(first.cursor.dump()))
    assert [a.key for a in second.actions] == ["gr_0"]
    assert second.cursor.ts == T0 and second.cursor.seen == ["gr_0", "gr_1"]

    third = gate_report_actions(warehouse, Registry(registry_root), second.cursor)
    assert third.actions == [] and third.cursor == second.cursor


def test_a_freeze_waits_with_its_reason(registry_root, warehouse) -> None:
    add_report(warehouse, "gr_f", "freeze", "summarizer:v1.1.0", "summarizer:v1.0.0", T0, reason="judge inconclusive")
    watched = gate_report_actions(warehouse, Registry(registry_root), WatchCursor())
    assert watched.actions == []
    assert watched.waiting == ["summarizer:v1.1.0 frozen by gate report gr_f: judge inconclusive"]
    assert watched.cursor.seen == ["gr_f"]  # a freeze is not looked at again; a new report decides


def test_no_cursor_starts_at_now_and_never_replays_history(registry_root, warehouse) -> None:
    add_report(warehouse, "gr_1", "promote", "support_router:v1.6.0", "support_router:v1.5.2", T0)
    add_report(warehouse, "gr_f", "freeze", "summarizer:v1.1.0", "summarizer:v1.0.0", T0)
    fresh = gate_report_actions(warehouse, Registry(registry_root), WatchCursor.parse(None))
    assert fresh.actions == [] and fresh.waiting == []
    assert fresh.cursor.ts == T0 and fresh.cursor.seen == ["gr_1", "gr_f"]
    add_report(warehouse, "gr_2", "reject", "support_router:v1.7.0", "support_router:v1.5.2", T0 + timedelta(seconds=1))
    assert [a.key for a in gate_report_actions(warehouse, Registry(registry_root), fresh.cursor).actions] == ["gr_2"]
    # The explicit start the demo gives: every report is acted on.
    assert [
        a.key for a in gate_report_actions(warehouse, Registry(registry_root), WatchCursor.beginning()).actions
    ] == ["gr_1", "gr_2"]


def test_a_canary_sensor_without_a_cursor_does_not_carry_out_old_decisions(registry_root, warehouse) -> None:
    Registry(registry_root).move_label(
        "support_router", "canary", "1.6.0", percent=20, reason="canary", gate_report_id="gr_1", force=True
    )
    add_decision(warehouse, "cd_1", "support_router:v1.6.0", "abort", T0)
    fresh = canary_actions(warehouse, Registry(registry_root), None)
    assert [a for a in fresh.actions if a.kind != "look_at_canary"] == []
    assert fresh.cursor.seen == ["cd_1"]


def test_an_unreadable_cursor_starts_at_now() -> None:
    assert WatchCursor.parse("not json") is None
    assert WatchCursor.parse("") is None
    legacy = WatchCursor.parse('{"ts": "2026-11-01T12:00:00+00:00", "seen": ["gr_1"]}')
    assert legacy.ts == T0 and legacy.seen == ["gr_1"]


def test_canary_decisions_act_only_on_the_live_canary_and_its_newest_decision(registry_root, warehouse) -> None:
    Registry(registry_root).move_label(
        "support_router", "canary", "1.6.0", percent=20, force=True, reason="canary", gate_report_id="gr_1"
    )
    add_decision(warehouse, "cd_1", "support_router:v1.6.0", "freeze", T0)
    add_decision(warehouse, "cd_2", "support_router:v1.6.0", "abort", T0 + timedelta(minutes=5))
    add_decision(warehouse, "cd_old", "support_router:v1.7.0", "roll_forward", T0 - timedelta(days=1))
    watched = canary_actions(warehouse, Registry(registry_root), WatchCursor())
    assert [(a.kind, a.decision_id, a.prompt_id) for a in watched.actions] == [
        ("abort", "cd_2", "support_router")
    ]  # v1.7.0's canary ended long ago: never acted on

    add_decision(warehouse, "cd_3", "support_router:v1.6.0", "freeze", T0 + timedelta(minutes=10), reason="more")
    later = canary_actions(warehouse, Registry(registry_root), watched.cursor)
    assert later.actions == [] and later.waiting == ["support_router: support_router:v1.6.0 canary frozen (cd_3): more"]


def test_open_candidates_are_the_versions_awaiting_a_decision(registry_root) -> None:
    found = open_candidates(Registry(registry_root))
    assert "support_router:v1.6.0" in found and found["support_router:v1.6.0"].startswith("sha256:")
    assert "support_router:v1.5.2" not in found  # in production: decided long ago

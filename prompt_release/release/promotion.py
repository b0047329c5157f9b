"""The promotion state machine: apply one gate report to the registry.

promote -> label `staging` (reason cites the report) -> staging check ->
(if the release policy names a reviewer and there is no approval yet: wait,
`awaiting_approval`, re-evaluated when applied again) -> label `canary` at the
release policy's percent and segments. reject -> the candidate's status
becomes `rejected`. freeze -> nothing changes; the reason is returned. Every
label move and status change carries the report id (`gate_report_id`), which
is also how re-applying a report is recognised: once the audit trail holds the
canary move (or the rejection) made for that report id, applying it again
changes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from prompt_release.errors import UserError
from prompt_release.registry import (
    CANARY,
    PRODUCTION,
    STAGING,
    approvals,
    history,
    labels,
    load_package,
    move_label,
    parse_version_id,
    remove_label,
    set_status,
    version_id,
)
from prompt_release.release.staging import StagingReport, staging_check

PromotionState = Literal[
    "canary", "awaiting_approval", "staging_failed", "rejected", "frozen", "already_applied", "skipped"
]


class PromotionOutcome(BaseModel):
    report_id: str
    verdict: str
    candidate: str
    state: PromotionState
    reason: str
    event_ids: list[str] = Field(default_factory=list, description="audit events written by this application")
    staging: StagingReport | None = None

    def markdown(self) -> str:
        lines = [f"**{self.state}**: {self.candidate} (gate report `{self.report_id}`, verdict {self.verdict})",
                 "", self.reason]
        if self.event_ids:
            lines += ["", "audit events: " + ", ".join(f"`{e}`" for e in self.event_ids)]
        if self.staging is not None:
            lines += ["", "### Staging check", self.staging.markdown()]
        return "\n".join(lines)


def load_gate_report(warehouse: str | Path | None, report_id: str) -> dict[str, Any]:
    """The report JSON of one row of `gate_reports`."""
    from prompt_release.warehouse import read_connection

    with read_connection(warehouse) as con:
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'gate_reports'"
        ).fetchone()[0]
        row = (
            con.execute(
                "SELECT CAST(report AS VARCHAR), verdict, reason, candidate_version, candidate_hash "
                "FROM gate_reports WHERE report_id = ?",
                [report_id],
            ).fetchone()
            if exists
            else None
        )
    if row is None:
        raise UserError(f"no gate report {report_id!r} in the warehouse", field="report_id")
    report = json.loads(row[0]) if row[0] else {}
    report.setdefault("report_id", report_id)
    report.setdefault("verdict", row[1])
    report.setdefault("reason", row[2])
    report.setdefault("candidate", {"version": row[3], "hash": row[4]})
    return report


def _report_fields(report: dict[str, Any]) -> tuple[str, str, str, str | None, str]:
    try:
        report_id = str(report["report_id"])
        verdict = str(report["verdict"])
        candidate = report["candidate"]
        version = candidate["version"] if isinstance(candidate, dict) else str(candidate)
    except (KeyError, TypeError) as exc:
        raise UserError(f"not a gate report: missing {exc}", field="report") from None
    if verdict not in ("promote", "reject", "freeze"):
        raise UserError(f"unknown gate verdict {verdict!r}: promote, reject or freeze", field="verdict")
    prompt_id, semver = parse_version_id(version)
    package_hash = candidate.get("hash") if isinstance(candidate, dict) else None
    return report_id, verdict, version_id(prompt_id, semver), package_hash, str(report.get("reason") or "")


def _events_for(events: list[dict[str, Any]], report_id: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("gate_report_id") == report_id]


def apply_gate_report(
    registry_root: str | Path,
    report: dict[str, Any],
    *,
    actor: str | None = None,
    warehouse: str | Path | None = None,
    llm_settings: Any = None,
    sample_size: int = 50,
) -> PromotionOutcome:
    """Move the candidate of `report` as far as its verdict allows (see module doc). Idempotent per report id."""
    report_id, verdict, candidate, report_hash, gate_reason = _report_fields(report)
    prompt_id = candidate.split(":", 1)[0]
    actor = actor or "release-bot"

    def outcome(state: PromotionState, reason: str, **extra: Any) -> PromotionOutcome:
        return PromotionOutcome(report_id=report_id, verdict=verdict, candidate=candidate, state=state,
                                reason=reason, **extra)

    if verdict == "freeze":
        return outcome("frozen", f"gate report {report_id} froze {candidate}: {gate_reason or 'not enough evidence'}; "
                                 "nothing moved")

    mine = _events_for(history(registry_root, prompt_id), report_id)
    if verdict == "reject" and any(e.get("action") == "status" and e.get("status") == "rejected" for e in mine):
        return outcome("already_applied", f"{candidate} was already marked rejected for gate report {report_id}")
    if verdict == "promote":
        done = next((e for e in mine if e.get("action") == "move" and e.get("label") == CANARY
                     and e.get("to_version") == candidate), None)
        if done is not None:
            return outcome("already_applied", f"gate report {report_id} already started the canary of {candidate} "
                                              f"({done['event_id']} at {done['ts']})")

    package = load_package(registry_root, candidate)
    if report_hash and report_hash != package.package_hash:
        return outcome("skipped", f"gate report {report_id} was made for {candidate} with hash {report_hash}, "
                                  f"but the registry has {package.package_hash}: re-run the gate")
    written: list[str] = []

    if verdict == "reject":
        # A rejected version may hold no label; staging is the only one a gate report can have put there.
        current = labels(registry_root, prompt_id)
        if current.get(STAGING, {}).get("version_id") == candidate:
            event = remove_label(registry_root, prompt_id, STAGING, actor=actor, gate_report_id=report_id,
                                 reason=f"gate report {report_id} rejected {candidate}")
            written += [event["event_id"]] if event else []
        holding = [k for k, v in labels(registry_root, prompt_id).items() if v.get("version_id") == candidate]
        if holding:
            return outcome("skipped", f"gate report {report_id} rejects {candidate}, but labels "
                                      f"{', '.join(sorted(holding))} point at it; move them first", event_ids=written)
        event = set_status(registry_root, candidate, "rejected", actor=actor, gate_report_id=report_id,
                           reason=f"gate report {report_id}: {gate_reason or 'a hard gate failed'}")
        return outcome("rejected", f"{candidate} rejected by gate report {report_id}: {gate_reason}",
                       event_ids=[*written, event["event_id"]])

    # promote
    if package.status in ("rejected", "retired", "draft"):
        return outcome("skipped", f"{candidate} is {package.status}; gate report {report_id} cannot promote it")
    current = labels(registry_root, prompt_id)
    if current.get(PRODUCTION, {}).get("version_id") == candidate:
        return outcome("skipped", f"{candidate} is already in production")
    event = move_label(registry_root, prompt_id, STAGING, candidate, actor=actor, gate_report_id=report_id,
                       reason=f"gate report {report_id} promotes {candidate}: {gate_reason or 'every hard gate passed'}")
    written += [event["event_id"]] if event else []

    staging = staging_check(registry_root, candidate, warehouse=warehouse, llm_settings=llm_settings,
                            sample_size=sample_size)
    if not staging.passed:
        event = remove_label(registry_root, prompt_id, STAGING, actor=actor, gate_report_id=report_id,
                             reason=staging.reason[:2000])
        written += [event["event_id"]] if event else []
        return outcome("staging_failed", staging.reason + "; the release stops here", event_ids=written,
                       staging=staging)

    policy = package.release_policy
    reviewer = policy.required_reviewer
    if reviewer and not any(a.get("reviewer") == reviewer for a in approvals(registry_root, candidate)):
        return outcome(
            "awaiting_approval",
            f"{staging.reason}; the release policy requires approval by {reviewer!r} before the canary: "
            f"prompt-release prompts approve {candidate} --reviewer {reviewer}",
            event_ids=written, staging=staging,
        )
    segments = f" on segments {json.dumps(policy.segments, sort_keys=True)}" if policy.segments else ""
    event = move_label(
        registry_root, prompt_id, CANARY, candidate, actor=actor, gate_report_id=report_id,
        percent=policy.canary_percent, segments=policy.segments,
        reason=f"gate report {report_id} promotes {candidate}; {staging.reason}; canary at "
               f"{policy.canary_percent:g}%{segments}",
    )
    written += [event["event_id"]] if event else []
    return outcome("canary", f"{candidate} serves {policy.canary_percent:g}% of traffic{segments} "
                             f"(gate report {report_id}; {staging.reason})", event_ids=written, staging=staging)


def awaiting_approval(registry_root: str | Path, prompt_id: str) -> dict[str, Any] | None:
    """The staging candidate of `prompt_id` waiting for a reviewer, with its report id and whether
    the approval has since arrived: {candidate, report_id, reviewer, approved}; None if none waits."""
    entry = labels(registry_root, prompt_id).get(STAGING)
    if not entry:
        return None
    candidate = entry["version_id"]
    events = history(registry_root, prompt_id)
    move = next((e for e in reversed(events) if e.get("event_id") == entry.get("event_id")), None)
    report_id = move.get("gate_report_id") if move else None
    if not report_id:
        return None
    if any(e.get("gate_report_id") == report_id and e.get("label") == CANARY for e in events):
        return None
    package = load_package(registry_root, candidate)
    reviewer = package.release_policy.required_reviewer
    if not reviewer:
        return None
    approved = any(a.get("reviewer") == reviewer for a in approvals(registry_root, candidate))
    return {"candidate": candidate, "report_id": report_id, "reviewer": reviewer, "approved": approved}

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

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from prompt_release.errors import UserError
from prompt_release.gates.report import GateReport
from prompt_release.registry import CANARY, PRODUCTION, STAGING, Registry
from prompt_release.release.staging import StagingReport, staging_check
from prompt_release.warehouse import read_connection

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
        lines = [
            f"**{self.state}**: {self.candidate} (gate report `{self.report_id}`, verdict {self.verdict})",
            "",
            self.reason,
        ]
        if self.event_ids:
            lines += ["", "audit events: " + ", ".join(f"`{e}`" for e in self.event_ids)]
        if self.staging is not None:
            lines += ["", "### Staging check", self.staging.markdown()]
        return "\n".join(lines)


class PendingApproval(BaseModel):
    """A staging candidate held for its release policy's reviewer, and whether the approval has arrived."""

    model_config = ConfigDict(frozen=True)

    candidate: str
    report_id: str
    reviewer: str
    approved: bool


def load_gate_report(warehouse: str | Path | None, report_id: str) -> GateReport:
    """The report of one row of `gate_reports`."""
    with read_connection(warehouse) as con:
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'gate_reports'"
        ).fetchone()[0]
        row = (
            con.execute("SELECT CAST(report AS VARCHAR) FROM gate_reports WHERE report_id = ?", [report_id]).fetchone()
            if exists
            else None
        )
    if row is None:
        raise UserError(f"no gate report {report_id!r} in the warehouse", field="report_id")
    try:
        return GateReport.model_validate_json(row[0])
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise UserError(
            f"gate report {report_id} is not a gate report: {problem['msg']}",
            field=".".join(str(p) for p in problem["loc"]) or "report",
        ) from None


def apply_gate_report(
    registry: Registry,
    report: GateReport,
    *,
    actor: str | None = None,
    warehouse: str | Path | None = None,
    llm_settings: Any = None,
    sample_size: int = 50,
) -> PromotionOutcome:
    """Move the candidate of `report` as far as its verdict allows (see module doc). Idempotent per report id."""
    report_id, verdict, candidate = report.report_id, report.verdict, report.candidate.version
    gate_reason = report.reason
    prompt_id = candidate.split(":", 1)[0]
    actor = actor or "release-bot"

    def outcome(state: PromotionState, reason: str, **extra: Any) -> PromotionOutcome:
        return PromotionOutcome(
            report_id=report_id, verdict=verdict, candidate=candidate, state=state, reason=reason, **extra
        )

    if verdict == "freeze":
        return outcome(
            "frozen",
            f"gate report {report_id} froze {candidate}: {gate_reason or 'not enough evidence'}; nothing moved",
        )

    mine = [e for e in registry.history(prompt_id) if e.gate_report_id == report_id]
    if verdict == "reject" and any(e.action == "status" and e.status == "rejected" for e in mine):
        return outcome("already_applied", f"{candidate} was already marked rejected for gate report {report_id}")
    if verdict == "promote":
        done = next((e for e in mine if e.action == "move" and e.label == CANARY and e.to_version == candidate), None)
        if done is not None:
            return outcome(
                "already_applied",
                f"gate report {report_id} already started the canary of {candidate} ({done.event_id} at {done.ts})",
            )

    package = registry.load_package(candidate)
    if report.candidate.hash and report.candidate.hash != package.package_hash:
        return outcome(
            "skipped",
            f"gate report {report_id} was made for {candidate} with hash "
            f"{report.candidate.hash}, but the registry has {package.package_hash}: "
            "re-run the gate",
        )
    written: list[str] = []
    event = registry.record_gate_verdict(
        candidate,
        verdict=verdict,
        gate_report_id=report_id,
        package_hash=package.package_hash,
        actor=actor,
        reason=gate_reason or f"gate report {report_id}: {verdict}",
    )
    written += [event.event_id] if event else []

    if verdict == "reject":
        # A rejected version may hold no label; staging is the only one a gate report can have put there.
        staged = registry.labels(prompt_id).get(STAGING)
        if staged is not None and staged.version_id == candidate:
            event = registry.remove_label(
                prompt_id,
                STAGING,
                actor=actor,
                gate_report_id=report_id,
                reason=f"gate report {report_id} rejected {candidate}",
            )
            written += [event.event_id] if event else []
        holding = [k for k, v in registry.labels(prompt_id).items() if v.version_id == candidate]
        if holding:
            return outcome(
                "skipped",
                f"gate report {report_id} rejects {candidate}, but labels "
                f"{', '.join(sorted(holding))} point at it; move them first",
                event_ids=written,
            )
        event = registry.set_status(
            candidate,
            "rejected",
            actor=actor,
            gate_report_id=report_id,
            reason=f"gate report {report_id}: {gate_reason or 'a hard gate failed'}",
        )
        return outcome(
            "rejected",
            f"{candidate} rejected by gate report {report_id}: {gate_reason}",
            event_ids=[*written, event.event_id],
        )

    # promote
    if package.status in ("rejected", "retired", "draft"):
        return outcome("skipped", f"{candidate} is {package.status}; gate report {report_id} cannot promote it")
    if registry.resolve_label(prompt_id, PRODUCTION) == candidate:
        return outcome("skipped", f"{candidate} is already in production")
    event = registry.move_label(
        prompt_id,
        STAGING,
        candidate,
        actor=actor,
        gate_report_id=report_id,
        reason=f"gate report {report_id} promotes {candidate}: {gate_reason or 'every hard gate passed'}",
    )
    written += [event.event_id] if event else []

    staging = staging_check(
        registry, candidate, warehouse=warehouse, llm_settings=llm_settings, sample_size=sample_size
    )
    if not staging.passed:
        event = registry.remove_label(
            prompt_id, STAGING, actor=actor, gate_report_id=report_id, reason=staging.reason[:2000]
        )
        written += [event.event_id] if event else []
        return outcome(
            "staging_failed", staging.reason + "; the release stops here", event_ids=written, staging=staging
        )

    policy = package.release_policy
    reviewer = policy.required_reviewer
    if reviewer and not any(a.reviewer == reviewer for a in registry.approvals(candidate)):
        return outcome(
            "awaiting_approval",
            f"{staging.reason}; the release policy requires approval by {reviewer!r} before the canary: "
            f"prompt-release prompts approve {candidate} --reviewer {reviewer}",
            event_ids=written,
            staging=staging,
        )
    segments = f" on segments {json.dumps(policy.segments, sort_keys=True)}" if policy.segments else ""
    event = registry.move_label(
        prompt_id,
        CANARY,
        candidate,
        actor=actor,
        gate_report_id=report_id,
        percent=policy.canary_percent,
        segments=policy.segments,
        reason=f"gate report {report_id} promotes {candidate}; {staging.reason}; canary at "
        f"{policy.canary_percent:g}%{segments}",
    )
    written += [event.event_id] if event else []
    return outcome(
        "canary",
        f"{candidate} serves {policy.canary_percent:g}% of traffic{segments} "
        f"(gate report {report_id}; {staging.reason})",
        event_ids=written,
        staging=staging,
    )


def awaiting_approval(registry: Registry, prompt_id: str) -> PendingApproval | None:
    """The staging candidate of `prompt_id` waiting for a reviewer; None if none waits."""
    entry = registry.labels(prompt_id).get(STAGING)
    if entry is None:
        return None
    candidate = entry.version_id
    events = registry.history(prompt_id)
    move = next((e for e in reversed(events) if e.event_id == entry.event_id), None)
    report_id = move.gate_report_id if move else None
    if not report_id:
        return None
    if any(e.gate_report_id == report_id and e.label == CANARY for e in events):
        return None
    reviewer = registry.load_package(candidate).release_policy.required_reviewer
    if not reviewer:
        return None
    approved = any(a.reviewer == reviewer for a in registry.approvals(candidate))
    return PendingApproval(candidate=candidate, report_id=report_id, reviewer=reviewer, approved=approved)

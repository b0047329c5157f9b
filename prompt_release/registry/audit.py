"""Audit events: who did what to which version, when, and why.

Every label move, rollback, label removal, approval, status change and gate
verdict is one JSON line appended to `prompts/<id>/label_events.jsonl`;
nothing rewrites that file. The event id is a hash of the event, so the warehouse mirror can
insert each one exactly once.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, ValidationError

from prompt_release import config
from prompt_release.errors import UserError
from prompt_release.registry.store import RegistryStore

AuditAction = Literal["move", "remove", "rollback", "approve", "status", "gate"]
ACTIONS: tuple[str, ...] = get_args(AuditAction)


class AuditEvent(BaseModel):
    """One line of `prompts/<id>/label_events.jsonl`, the form it is stored in.

    A label move, label removal, rollback (production pointed back at an
    earlier version), approval (`action="approve"`, `reviewer` set), status
    change, or gate verdict (`action="gate"`, `status` the verdict, with the
    report id and the package hash it judged). Field order and names are the
    stored JSON keys; fields an action does not use are null. `forced` marks a
    break-glass move past a protected label's rule; it is stored only when true.
    """

    model_config = ConfigDict(frozen=True)

    ts: str
    prompt_id: str
    action: AuditAction
    label: str | None = None
    from_version: str | None = None
    to_version: str | None = None
    package_hash: str | None = None
    percent: float | None = None
    segments: dict[str, list[str]] | None = None
    status: str | None = None
    reviewer: str | None = None
    actor: str
    reason: str
    gate_report_id: str | None = None
    forced: bool = False
    event_id: str

    def to_json(self) -> dict[str, Any]:
        """The stored form (one audit line, before `sort_keys`)."""
        return self.model_dump(mode="json", exclude=None if self.forced else {"forced"})


def resolve_actor(explicit: str | None = None) -> str:
    """--actor, else PROMPT_RELEASE_ACTOR, else the OS user (`config.actor`)."""
    return config.actor(explicit)


def make_event(
    *,
    prompt_id: str,
    action: str,
    reason: str,
    actor: str | None = None,
    label: str | None = None,
    from_version: str | None = None,
    to_version: str | None = None,
    package_hash: str | None = None,
    percent: float | None = None,
    segments: dict[str, list[str]] | None = None,
    status: str | None = None,
    reviewer: str | None = None,
    gate_report_id: str | None = None,
    forced: bool = False,
) -> AuditEvent:
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    if not reason or not reason.strip():
        raise UserError("a reason is required (--reason TEXT): the audit trail says why", field="reason")
    event = {
        "ts": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "prompt_id": prompt_id,
        "action": action,
        "label": label,
        "from_version": from_version,
        "to_version": to_version,
        "package_hash": package_hash,
        "percent": percent,
        "segments": segments,
        "status": status,
        "reviewer": reviewer,
        "actor": resolve_actor(actor),
        "reason": reason.strip(),
        "gate_report_id": gate_report_id,
        **({"forced": True} if forced else {}),
    }
    digest = hashlib.sha256(json.dumps(event, sort_keys=True).encode("utf-8")).hexdigest()
    return AuditEvent(**event, event_id="evt_" + digest[:20])


def read_history(store: RegistryStore, prompt_id: str) -> list[AuditEvent]:
    """The audit trail of one prompt, oldest first."""
    path = f"prompts/{prompt_id}/label_events.jsonl"
    events = []
    for number, raw in enumerate(store.read_events(prompt_id), 1):
        try:
            events.append(AuditEvent.model_validate(raw))
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"]) or "event"
            raise UserError(
                f"audit event number {number} does not read as an audit event: {problem['msg']}", file=path, field=where
            ) from None
    return events


def append_event(store: RegistryStore, event: AuditEvent) -> None:
    store.append_event(event.prompt_id, event.to_json())

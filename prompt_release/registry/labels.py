"""Labels (production, staging, canary, custom) and their audited moves.

A label points at one registered version of one prompt; `prompts/<id>/labels.json`
holds the current pointers and `prompts/<id>/label_events.jsonl` every move.
A move is refused when the version is not registered, is a draft, rejected or
retired, or no longer matches its registered hash.

Protected labels (`production` and `canary` unless the manifest's release
policy names others) move only to a version whose exact package hash a gate
report promoted (a `gate` event in the trail, recorded by the release step
that applied the report), or that served production before (moving back is a
rollback). Anything else needs break glass: `force=True` with a reason, stored
as a forced move that the audit trail, `v_label_history` and the UI show.
Rollback points production back at the previous production version found in
the audit trail (or the manifest's `rollback_to`) without touching any prompt
text.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from prompt_release.errors import UserError
from prompt_release.registry.audit import AuditEvent, append_event, make_event, read_history
from prompt_release.registry.ids import check_label, check_prompt_id, normalize_version_ref, parse_version_id
from prompt_release.registry.packages import load_package
from prompt_release.registry.registration import verify_version
from prompt_release.registry.store import RegistryStore

PRODUCTION = "production"
STAGING = "staging"
CANARY = "canary"
_UNSERVABLE = ("draft", "rejected", "retired")


class LabelEntry(BaseModel):
    """Where one label points now: an entry of `prompts/<id>/labels.json`, the form it is stored in."""

    model_config = ConfigDict(frozen=True)

    version_id: str
    package_hash: str | None = None
    percent: float | None = None
    segments: dict[str, list[str]] | None = None
    moved_at: str
    event_id: str


def labels(store: RegistryStore, prompt_id: str) -> dict[str, LabelEntry]:
    """label -> where it points."""
    raw = store.read_labels(check_prompt_id(prompt_id))
    return {name: LabelEntry.model_validate(entry) for name, entry in raw.items()}


def resolve_label(store: RegistryStore, prompt_id: str, label: str) -> str | None:
    entry = labels(store, prompt_id).get(label)
    return entry.version_id if entry else None


def history(store: RegistryStore, prompt_id: str) -> list[AuditEvent]:
    """The audit trail of one prompt, oldest first."""
    return read_history(store, check_prompt_id(prompt_id))


def _servable(store: RegistryStore, vid: str, label: str):
    result = verify_version(store, vid)
    if not result.ok:
        raise UserError(f"refusing to move label {label!r} to {vid}: {result.problem}")
    package = load_package(store, vid)
    if package.status in _UNSERVABLE:
        raise UserError(f"refusing to move label {label!r} to {vid}: version is {package.status}")
    return package


def _was_production(events: list[AuditEvent], vid: str) -> bool:
    return any(e.label == PRODUCTION and e.action in ("move", "rollback") and e.to_version == vid for e in events)


def _check_reviewer(package, events: list[AuditEvent], label: str) -> None:
    reviewer = package.release_policy.required_reviewer
    if not reviewer or label not in (CANARY, PRODUCTION) or _was_production(events, package.version_id):
        return
    approved = any(
        e.action == "approve" and e.to_version == package.version_id and e.reviewer == reviewer for e in events
    )
    if not approved:
        raise UserError(
            f"refusing to move label {label!r} to {package.version_id}: its release policy requires "
            f"approval by {reviewer!r} (prompt-release prompts approve {package.version_id} --reviewer {reviewer})"
        )


def _gate_passed(events: list[AuditEvent], package) -> AuditEvent | None:
    return next(
        (
            e
            for e in reversed(events)
            if e.action == "gate" and e.status == "promote" and e.package_hash == package.package_hash
        ),
        None,
    )


def _check_protected(package, events: list[AuditEvent], label: str, force: bool) -> None:
    if label not in package.release_policy.protected_labels or force:
        return
    if _was_production(events, package.version_id) or _gate_passed(events, package):
        return
    raise UserError(
        f"refusing to move protected label {label!r} to {package.version_id}: no gate report promoted its "
        f"package {package.package_hash} (run the gate and apply its report; to break glass, "
        "--force with a --reason that the audit trail keeps)",
        field="label",
    )


def record_gate_verdict(
    store: RegistryStore,
    version: str,
    *,
    verdict: str,
    gate_report_id: str,
    package_hash: str,
    reason: str,
    actor: str | None = None,
) -> AuditEvent | None:
    """Record that gate report `gate_report_id` judged `version` (its package `package_hash`);
    None when this report's verdict is already in the trail. A `promote` for the version's current
    hash is what lets a protected label move to it."""
    prompt_id, _ = parse_version_id(version)
    with store.exclusive():
        events = read_history(store, prompt_id)
        if any(e.action == "gate" and e.gate_report_id == gate_report_id for e in events):
            return None
        event = make_event(
            prompt_id=prompt_id,
            action="gate",
            to_version=version,
            package_hash=package_hash,
            status=verdict,
            reason=reason,
            actor=actor,
            gate_report_id=gate_report_id,
        )
        append_event(store, event)
        return event


def _entry(package, event: AuditEvent, percent: float | None, segments) -> dict[str, Any]:
    return LabelEntry(
        version_id=package.version_id,
        package_hash=package.package_hash,
        percent=percent,
        segments=segments,
        moved_at=event.ts,
        event_id=event.event_id,
    ).model_dump(mode="json")


def _write(store: RegistryStore, prompt_id: str, current: dict[str, Any], events: list[AuditEvent]) -> None:
    # Audit first, then the pointer: every state labels.json can be in has its
    # event; a crash in between leaves an event for a move a re-run repeats.
    for event in events:
        append_event(store, event)
    store.write_labels(prompt_id, current)


def move_label(
    store: RegistryStore,
    prompt_id: str,
    label: str,
    version: str,
    *,
    reason: str,
    actor: str | None = None,
    percent: float | None = None,
    segments: dict[str, list[str]] | None = None,
    gate_report_id: str | None = None,
    force: bool = False,
) -> AuditEvent | None:
    """Point `label` at `version`; return the audit event, or None when nothing changed.
    `force` breaks glass past a protected label's rule (recorded as forced)."""
    check_prompt_id(prompt_id)
    check_label(label)
    vid = normalize_version_ref(prompt_id, version)
    if label == CANARY:
        if percent is None:
            raise UserError("a canary label needs a traffic share (--percent P, 0 < P <= 100)", field="percent")
        if not 0 < float(percent) <= 100:
            raise UserError(f"canary percent must be in (0, 100], got {percent}", field="percent")
        percent = float(percent)
    elif percent is not None or segments:
        raise UserError(f"--percent and segments apply to the canary label only, not {label!r}", field="percent")
    with store.exclusive():
        package = _servable(store, vid, label)
        events = read_history(store, prompt_id)
        _check_reviewer(package, events, label)
        _check_protected(package, events, label, force)
        forced = force and label in package.release_policy.protected_labels
        current = store.read_labels(prompt_id)
        before = current.get(label)
        if (
            before
            and before["version_id"] == vid
            and before.get("percent") == percent
            and before.get("segments") == segments
        ):
            return None
        event = make_event(
            prompt_id=prompt_id,
            action="move",
            label=label,
            from_version=before["version_id"] if before else None,
            to_version=vid,
            package_hash=package.package_hash,
            percent=percent,
            segments=segments,
            reason=reason,
            actor=actor,
            gate_report_id=gate_report_id,
            forced=forced,
        )
        current[label] = _entry(package, event, percent, segments)
        _write(store, prompt_id, current, [event])
        return event


def remove_label(
    store: RegistryStore,
    prompt_id: str,
    label: str,
    *,
    reason: str,
    actor: str | None = None,
    gate_report_id: str | None = None,
) -> AuditEvent | None:
    """Remove a label (e.g. end a canary). Production cannot be removed, only moved."""
    check_prompt_id(prompt_id)
    check_label(label)
    if label == PRODUCTION:
        raise UserError("the production label cannot be removed; move it or roll it back", field="label")
    with store.exclusive():
        current = store.read_labels(prompt_id)
        before = current.pop(label, None)
        if before is None:
            return None
        event = make_event(
            prompt_id=prompt_id,
            action="remove",
            label=label,
            from_version=before["version_id"],
            reason=reason,
            actor=actor,
            gate_report_id=gate_report_id,
        )
        _write(store, prompt_id, current, [event])
        return event


def rollback_target(store: RegistryStore, prompt_id: str, current_vid: str) -> str | None:
    """The production version before `current_vid`, skipping versions rolled back from
    and ones no longer servable; else the current manifest's `rollback_to`."""
    events = read_history(store, prompt_id)
    rolled_away = {e.from_version for e in events if e.action == "rollback"}
    sequence = [
        e.to_version for e in events if e.label == PRODUCTION and e.action in ("move", "rollback") and e.to_version
    ]
    for vid in reversed(sequence):
        if vid == current_vid or vid in rolled_away:
            continue
        if verify_version(store, vid).ok and load_package(store, vid, _events=events).status not in _UNSERVABLE:
            return vid
    package = load_package(store, current_vid, _events=events)
    if package.rollback_to:
        return normalize_version_ref(prompt_id, package.rollback_to)
    return None


def rollback(
    store: RegistryStore,
    prompt_id: str,
    *,
    reason: str,
    actor: str | None = None,
    to: str | None = None,
    gate_report_id: str | None = None,
) -> AuditEvent:
    """Point production back at the previous production version; also end a canary
    that serves the version being rolled back from. Returns the rollback event."""
    check_prompt_id(prompt_id)
    with store.exclusive():
        current = store.read_labels(prompt_id)
        before = current.get(PRODUCTION)
        if not before:
            raise UserError(f"{prompt_id} has no production label to roll back")
        from_vid = before["version_id"]
        target = normalize_version_ref(prompt_id, to) if to else rollback_target(store, prompt_id, from_vid)
        if not target:
            raise UserError(
                f"no version to roll {prompt_id} back to: the audit trail has no earlier production "
                f"version and {from_vid} sets no rollback_to (use --to VERSION)"
            )
        if target == from_vid:
            raise UserError(f"production already points at {target}")
        package = _servable(store, target, PRODUCTION)
        event = make_event(
            prompt_id=prompt_id,
            action="rollback",
            label=PRODUCTION,
            from_version=from_vid,
            to_version=target,
            package_hash=package.package_hash,
            reason=reason,
            actor=actor,
            gate_report_id=gate_report_id,
        )
        current[PRODUCTION] = _entry(package, event, None, None)
        events = [event]
        canary = current.get(CANARY)
        if canary and canary["version_id"] == from_vid:
            del current[CANARY]
            events.append(
                make_event(
                    prompt_id=prompt_id,
                    action="remove",
                    label=CANARY,
                    from_version=from_vid,
                    reason=f"rollback of {from_vid}: {reason}",
                    actor=actor,
                    gate_report_id=gate_report_id,
                )
            )
        _write(store, prompt_id, current, events)
        return event

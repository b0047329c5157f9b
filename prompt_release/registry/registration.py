"""Register, verify, create, approve and change the status of prompt versions.

Registration renders the version with its representative variables, checks
the version bump against the previous registered version, and records the
package hash (and a hash per behaviour-shaping field) in the lock file
`prompts/registry.lock.json`. Verification recomputes every registered
package and names the version and the fields that changed when one was
edited in place.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prompt_release.errors import UserError
from prompt_release.registry import versioning
from prompt_release.registry.audit import AuditEvent, append_event, make_event, read_history, resolve_actor
from prompt_release.registry.ids import (
    check_prompt_id,
    normalize_version_ref,
    parse_semver,
    parse_version_id,
    version_id,
)
from prompt_release.registry.manifest import STATUSES
from prompt_release.registry.package import HASHED_FIELDS, PromptPackage
from prompt_release.registry.packages import load_package, registered_versions
from prompt_release.registry.rubric import load_rubric, lock_rubric, verify_locked
from prompt_release.registry.store import RegistryStore, manifest_path


@dataclass
class RegisterResult:
    package: PromptPackage
    previous: str | None
    changes: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    already_registered: bool = False


@dataclass
class VerifyResult:
    version_id: str
    ok: bool
    problem: str | None = None
    changed_fields: list[str] = field(default_factory=list)


def render_check(package: PromptPackage) -> list[str]:
    """Render with the representative variables (raises naming a missing one); return warnings."""
    package.render_system(package.variables)
    unused = package.unused_variables(package.variables)
    return [f"{package.version_id}: variable {name!r} is not used by the template" for name in unused]


def _edited_message(vid: str, entry: dict[str, Any], package: PromptPackage) -> tuple[str, list[str]]:
    locked = entry.get("field_hashes", {})
    changed = [f for f in HASHED_FIELDS if locked.get(f) != package.field_hashes.get(f)]
    what = ", ".join(changed) or "package content"
    return (
        f"{vid} was edited in place: {what} changed since registration "
        f"(registered {entry['package_hash']}, now {package.package_hash}); "
        "restore it and register the change as a new version",
        changed,
    )


def register(store: RegistryStore, version: str, *, actor: str | None = None) -> RegisterResult:
    prompt_id, semver = parse_version_id(version)
    with store.exclusive():
        package = load_package(store, version)
        warnings = render_check(package)
        lock = store.read_lock()
        entries = lock.setdefault("packages", {})
        vid = package.version_id
        if vid in entries:
            if entries[vid]["package_hash"] != package.package_hash:
                raise UserError(_edited_message(vid, entries[vid], package)[0], file=package.manifest_path)
            if _lock_rubric(store, lock, package, actor):  # registered before rubrics were locked
                store.write_lock(lock)
            return RegisterResult(package, None, warnings=warnings, already_registered=True)
        _lock_rubric(store, lock, package, actor)
        below = [v for v in registered_versions(store, prompt_id) if parse_version_id(v)[1] < semver]
        previous = below[-1] if below else None
        changes: list[tuple[str, str]] = []
        if previous:
            old = load_package(store, previous)
            if entries[previous]["package_hash"] != old.package_hash:
                raise UserError(
                    "cannot compare against the previous version: "
                    + _edited_message(previous, entries[previous], old)[0],
                    file=old.manifest_path,
                )
            prev_semver = parse_version_id(previous)[1]
            changes = versioning.needed_bumps(old, package)
            short = versioning.under_bumps(old, package, prev_semver, semver)
            if short:
                actual = versioning.bump_of(prev_semver, semver)
                raise UserError(
                    versioning.refusal(vid, previous, actual, short),
                    file=package.manifest_path,
                    field="version",
                )
            if not changes:
                warnings.append(f"{vid}: same behaviour as {previous} (only metadata differs)")
        entries[vid] = {
            "package_hash": package.package_hash,
            "field_hashes": package.field_hashes,
            "required_variables": list(package.required_variables),
            "manifest": package.manifest_path,
            **_stamp(actor),
        }
        lock["format"] = 1
        store.write_lock(lock)
    return RegisterResult(package.model_copy(update={"registered": True}), previous, changes=changes, warnings=warnings)


def verify_version(store: RegistryStore, vid: str, entry: dict[str, Any] | None = None) -> VerifyResult:
    entry = entry if entry is not None else store.read_lock().get("packages", {}).get(vid)
    if entry is None:
        return VerifyResult(vid, False, f"{vid} is not registered (run: prompt-release prompts register {vid})")
    try:
        package = load_package(store, vid)
    except UserError as exc:
        return VerifyResult(vid, False, f"{vid} no longer loads: {exc}")
    if package.package_hash != entry["package_hash"]:
        message, changed = _edited_message(vid, entry, package)
        return VerifyResult(vid, False, message, changed)
    return VerifyResult(vid, True)


def verify(store: RegistryStore, prompt_id: str | None = None) -> list[VerifyResult]:
    """Recompute every registered package (of one prompt, or all) against the lock file;
    for all prompts, every recorded judging rubric too."""
    lock = store.read_lock()
    entries = lock.get("packages", {})
    if prompt_id:
        check_prompt_id(prompt_id)
    results = []
    for vid in sorted(entries, key=lambda v: (v.split(":v")[0], parse_semver(v.split(":v")[1]))):
        if prompt_id and not vid.startswith(prompt_id + ":v"):
            continue
        results.append(verify_version(store, vid, entries[vid]))
    if not prompt_id:
        results += [VerifyResult(ref, problem is None, problem) for ref, problem in verify_locked(store.root, lock)]
    return results


def _lock_rubric(store: RegistryStore, lock: dict[str, Any], package: PromptPackage, actor: str | None) -> bool:
    """Record the rubric `package` is judged by in `lock` (True when added); refuse one edited in place."""
    if not package.rubric:
        return False
    return lock_rubric(lock, load_rubric(store.root, package.rubric), package.rubric, _stamp(actor))


def _stamp(actor: str | None) -> dict[str, str]:
    """Who registered a lock entry, and when."""
    return {
        "registered_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "registered_by": resolve_actor(actor),
    }


def unregistered(store: RegistryStore) -> list[str]:
    entries = store.read_lock().get("packages", {})
    return [
        version_id(pid, v)
        for pid in store.prompt_ids()
        for v in store.manifest_versions(pid)
        if version_id(pid, v) not in entries
    ]


def _set_top_level(text: str, key: str, value: str) -> str:
    pattern = re.compile(rf"^{re.escape(key)}:.*$", re.MULTILINE)
    line = f"{key}: {value}"
    return pattern.sub(line, text, count=1) if pattern.search(text) else text.rstrip("\n") + f"\n{line}\n"


def new_version(
    store: RegistryStore,
    prompt_id: str,
    *,
    version: str | None = None,
    bump: str = "patch",
    from_version: str | None = None,
    owner: str | None = None,
    change_reason: str | None = None,
    status: str = "draft",
) -> str:
    """Write a draft manifest + template for a new version; return its version id.

    From an existing version (default: the one the `production` label points
    at, else the highest) the files are copied and the draft starts identical;
    for a new prompt id a skeleton is written. The new number bumps the
    highest version, so it never collides with a newer candidate.
    `status` may be `candidate` for a version whose edit is scripted (the
    template is edited, then the version registered, without a draft step).
    """
    if status not in ("draft", "candidate"):
        raise UserError(f"a new version starts as draft or candidate, not {status!r}", field="status")
    check_prompt_id(prompt_id)
    existing = store.manifest_versions(prompt_id)
    if from_version is None and existing:
        # What users get now, not the newest (possibly rejected) candidate.
        production = store.read_labels(prompt_id).get("production")
        from_version = production["version_id"].split(":v", 1)[1] if production else existing[-1]
    if version is None:
        if not existing:
            version = "0.1.0"
        else:
            old = parse_semver(existing[-1])
            parts = {"major": (old.major + 1, 0, 0), "minor": (old.major, old.minor + 1, 0)}.get(
                bump, (old.major, old.minor, old.patch + 1)
            )
            version = ".".join(str(p) for p in parts)
    version = str(parse_semver(version))
    rel_manifest = manifest_path(prompt_id, version)
    rel_template = f"prompts/{prompt_id}/v{version}.md"
    for rel in (rel_manifest, rel_template):
        if store.exists(rel):
            raise UserError(f"{rel} already exists; versions are never rewritten", file=rel)
    if from_version:
        source_vid = normalize_version_ref(prompt_id, from_version)
        source = load_package(store, source_vid)
        text = store.read_text(source.manifest_path)
        text = _set_top_level(text, "version", version)
        text = _set_top_level(text, "status", status)
        text = _set_top_level(text, "template", rel_template)
        text = _set_top_level(text, "rollback_to", source.version)
        text = _set_top_level(text, "change_reason", json.dumps(change_reason or "TODO: why this version exists"))
        template = source.template_text
    else:
        text = (
            f"id: {prompt_id}\nversion: {version}\nowner: {owner or resolve_actor()}\nstatus: {status}\n"
            f"model: production-default\ntemplate: {rel_template}\n"
            f"change_reason: {json.dumps(change_reason or 'First version.')}\nparameters:\n  temperature: 0\n"
            "output_format: text\nvariables:\n  input: example input\n"
        )
        template = "You are a helpful assistant.\n\nInput: {{ input }}\n"
    store.write_text(rel_template, template)
    store.write_text(rel_manifest, text)
    return version_id(prompt_id, version)


def _change_status_event(store: RegistryStore, event: AuditEvent) -> AuditEvent:
    append_event(store, event)
    return event


def approve(
    store: RegistryStore,
    version: str,
    *,
    reviewer: str,
    reason: str = "approved",
    actor: str | None = None,
) -> AuditEvent:
    """Record a reviewer's approval of a registered version in the audit trail."""
    prompt_id, semver = parse_version_id(version)
    vid = version_id(prompt_id, semver)
    if not reviewer or not reviewer.strip():
        raise UserError("a reviewer name is required (--reviewer NAME)", field="reviewer")
    with store.exclusive():
        result = verify_version(store, vid)
        if not result.ok:
            raise UserError(f"cannot approve: {result.problem}")
        package = load_package(store, vid)
        if package.status in ("rejected", "retired"):
            raise UserError(f"cannot approve {vid}: it is {package.status}")
        event = make_event(
            prompt_id=prompt_id,
            action="approve",
            to_version=vid,
            package_hash=package.package_hash,
            reviewer=reviewer.strip(),
            reason=reason,
            actor=actor or reviewer.strip(),
        )
        return _change_status_event(store, event)


def approvals(store: RegistryStore, version: str) -> list[AuditEvent]:
    """The approvals of one version: audit events with action `approve`, oldest first."""
    prompt_id, semver = parse_version_id(version)
    vid = version_id(prompt_id, semver)
    return [e for e in read_history(store, prompt_id) if e.action == "approve" and e.to_version == vid]


def set_status(
    store: RegistryStore,
    version: str,
    status: str,
    *,
    reason: str,
    actor: str | None = None,
    gate_report_id: str | None = None,
) -> AuditEvent:
    """Record a status change (e.g. a gate rejecting a candidate, retiring an old version)."""
    if status not in STATUSES:
        raise UserError(f"unknown status {status!r}: one of {', '.join(STATUSES)}", field="status")
    prompt_id, semver = parse_version_id(version)
    vid = version_id(prompt_id, semver)
    with store.exclusive():
        if vid not in store.read_lock().get("packages", {}):
            raise UserError(f"{vid} is not registered")
        if status in ("rejected", "retired", "draft"):
            holding = sorted(k for k, v in store.read_labels(prompt_id).items() if v.get("version_id") == vid)
            if holding:
                raise UserError(
                    f"cannot mark {vid} {status}: labels {', '.join(holding)} still point at it; "
                    "move or remove them first"
                )
        package = load_package(store, vid)
        event = make_event(
            prompt_id=prompt_id,
            action="status",
            to_version=vid,
            package_hash=package.package_hash,
            status=status,
            reason=reason,
            actor=actor,
            gate_report_id=gate_report_id,
        )
        return _change_status_event(store, event)

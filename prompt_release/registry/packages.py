"""Load and list prompt packages from a registry, with their effective status.

The manifest's `status` is what the author declared; what happened since
(approval, release to production, rejection, retirement) is recorded in the
prompt's audit trail and applied on top, so `PromptPackage.status` is the
version's status now.
"""

from __future__ import annotations

from typing import Any

from prompt_release.errors import UserError
from prompt_release.registry.audit import AuditEvent, read_history
from prompt_release.registry.ids import check_prompt_id, parse_semver, parse_version_id, version_id
from prompt_release.registry.manifest import parse_manifest
from prompt_release.registry.package import PromptPackage, build_package
from prompt_release.registry.store import RegistryStore, manifest_path


def effective_status(manifest_status: str, vid: str, events: list[AuditEvent]) -> str:
    status = manifest_status
    for event in events:
        if event.to_version != vid:
            continue
        if event.action in ("move", "rollback") and event.label == "production":
            status = "released"
        elif event.action == "approve" and status in ("draft", "candidate"):
            status = "approved"
        elif event.action == "status" and event.status:
            status = event.status
    return status


def load_package(
    store: RegistryStore,
    version: str,
    *,
    _events: list[AuditEvent] | None = None,
    _lock: dict[str, Any] | None = None,
) -> PromptPackage:
    """The package of `version` (`<id>:v<semver>`) as the files say now."""
    prompt_id, semver = parse_version_id(version)
    rel = manifest_path(prompt_id, str(semver))
    if not store.exists(rel):
        known = (
            ", ".join(f"v{v}" for v in store.manifest_versions(prompt_id)) if _prompt_exists(store, prompt_id) else ""
        )
        raise UserError(
            f"unknown prompt version {version_id(prompt_id, semver)}: no manifest {rel}"
            + (f" (known: {known})" if known else ""),
        )
    manifest = parse_manifest(store.read_text(rel), file=rel)
    if manifest.id != prompt_id or manifest.version != str(semver):
        raise UserError(
            f"manifest says {manifest.id}:v{manifest.version} but its file name says {version_id(prompt_id, semver)}",
            file=rel,
            field="id" if manifest.id != prompt_id else "version",
        )
    events = read_history(store, prompt_id) if _events is None else _events
    lock = store.read_lock() if _lock is None else _lock
    vid = version_id(prompt_id, semver)
    return build_package(
        store,
        manifest,
        manifest_file=rel,
        status=effective_status(manifest.status, vid, events),  # type: ignore[arg-type]
        registered=vid in lock.get("packages", {}),
    )


def _prompt_exists(store: RegistryStore, prompt_id: str) -> bool:
    return prompt_id in store.prompt_ids()


def list_versions(store: RegistryStore, prompt_id: str | None = None) -> list[PromptPackage]:
    """Every version with a manifest, ordered by prompt id then semver."""
    ids = [check_prompt_id(prompt_id)] if prompt_id else store.prompt_ids()
    lock = store.read_lock()
    packages = []
    for pid in ids:
        events = read_history(store, pid)
        for semver in store.manifest_versions(pid):
            packages.append(load_package(store, version_id(pid, semver), _events=events, _lock=lock))
    return packages


def registered_versions(store: RegistryStore, prompt_id: str) -> list[str]:
    """Registered version ids of one prompt, ascending by semver."""
    prefix = f"{prompt_id}:v"
    found = [vid for vid in store.read_lock().get("packages", {}) if vid.startswith(prefix)]
    return sorted(found, key=lambda vid: parse_semver(vid[len(prefix) :]))

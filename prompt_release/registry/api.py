"""`Registry`: one opened registry, the object callers hold and pass down.

A thin facade: each method is one function of the private modules
(`packages`, `labels`, `registration`) applied to the store opened once here,
so a promotion that reads labels, the audit trail and packages and moves two
labels resolves the registry root once instead of once per call.
"""

from __future__ import annotations

import os
from pathlib import Path

from prompt_release import config
from prompt_release.registry import labels as _labels
from prompt_release.registry import packages as _packages
from prompt_release.registry import registration as _registration
from prompt_release.registry.audit import AuditEvent
from prompt_release.registry.labels import LabelEntry
from prompt_release.registry.package import PromptPackage
from prompt_release.registry.registration import RegisterResult, VerifyResult
from prompt_release.registry.store import FilesystemStore, RegistryStore


class Registry:
    """The prompt registry at a root folder (default: `PROMPT_RELEASE_REGISTRY`, else the project root),
    or over any `RegistryStore`."""

    def __init__(self, root: str | os.PathLike[str] | RegistryStore | None = None) -> None:
        if root is None or isinstance(root, (str, os.PathLike)):
            root = FilesystemStore(config.registry_root(root))
        self.store: RegistryStore = root

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    @property
    def root(self) -> Path:
        return self.store.root

    # -- reading -------------------------------------------------------------
    def prompt_ids(self) -> list[str]:
        return self.store.prompt_ids()

    def load_package(self, version: str) -> PromptPackage:
        """The package of `version` (`<id>:v<semver>`) as the files say now, with its effective status."""
        return _packages.load_package(self.store, version)

    def list_versions(self, prompt_id: str | None = None) -> list[PromptPackage]:
        """Every version with a manifest, ordered by prompt id then semver."""
        return _packages.list_versions(self.store, prompt_id)

    def served_prompt_ids(self) -> list[str]:
        """Prompts a production service serves: those with a runtime contract, `prompts/<id>/runtime.yaml`
        (a judge prompt has none). Golden datasets, canaries and their partitions exist per served
        prompt; this is where they learn them, so no code names a sample prompt."""
        return [p for p in self.prompt_ids() if (self.root / "prompts" / p / "runtime.yaml").is_file()]

    def contracts(self) -> list[PromptPackage]:
        """Every version as an output contract (`contracts.package.PackageContract`) for mining and
        golden sets; none when the root holds no `prompts/` folder (mining then runs without them)."""
        return self.list_versions() if (self.root / "prompts").is_dir() else []

    def labels(self, prompt_id: str) -> dict[str, LabelEntry]:
        return _labels.labels(self.store, prompt_id)

    def resolve_label(self, prompt_id: str, label: str) -> str | None:
        """The version id `label` points at, or None."""
        return _labels.resolve_label(self.store, prompt_id, label)

    def history(self, prompt_id: str) -> list[AuditEvent]:
        """The audit trail of one prompt, oldest first."""
        return _labels.history(self.store, prompt_id)

    def approvals(self, version: str) -> list[AuditEvent]:
        return _registration.approvals(self.store, version)

    def verify(self, prompt_id: str | None = None) -> list[VerifyResult]:
        return _registration.verify(self.store, prompt_id)

    def verify_version(self, version: str) -> VerifyResult:
        return _registration.verify_version(self.store, version)

    def unregistered(self) -> list[str]:
        return _registration.unregistered(self.store)

    def read_lock(self) -> dict:
        return self.store.read_lock()

    # -- writing -------------------------------------------------------------
    def register(self, version: str, *, actor: str | None = None) -> RegisterResult:
        return _registration.register(self.store, version, actor=actor)

    def new_version(self, prompt_id: str, **options) -> str:
        """Write a draft manifest and template for a new version (see `registration.new_version`)."""
        return _registration.new_version(self.store, prompt_id, **options)

    def move_label(
        self,
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
        """Point `label` at `version`; the audit event, or None when nothing changed. A protected label
        (production, canary) needs a promoting gate verdict for the version's package, or `force`."""
        return _labels.move_label(
            self.store,
            prompt_id,
            label,
            version,
            reason=reason,
            actor=actor,
            percent=percent,
            segments=segments,
            gate_report_id=gate_report_id,
            force=force,
        )

    def record_gate_verdict(
        self,
        version: str,
        *,
        verdict: str,
        gate_report_id: str,
        package_hash: str,
        reason: str,
        actor: str | None = None,
    ) -> AuditEvent | None:
        """Put a gate report's verdict on `version` into the audit trail (once per report)."""
        return _labels.record_gate_verdict(
            self.store,
            version,
            verdict=verdict,
            gate_report_id=gate_report_id,
            package_hash=package_hash,
            reason=reason,
            actor=actor,
        )

    def remove_label(
        self, prompt_id: str, label: str, *, reason: str, actor: str | None = None, gate_report_id: str | None = None
    ) -> AuditEvent | None:
        return _labels.remove_label(
            self.store, prompt_id, label, reason=reason, actor=actor, gate_report_id=gate_report_id
        )

    def rollback(
        self,
        prompt_id: str,
        *,
        reason: str,
        actor: str | None = None,
        to: str | None = None,
        gate_report_id: str | None = None,
    ) -> AuditEvent:
        """Point production back at the previous production version (the label flip; no prompt text changes)."""
        return _labels.rollback(self.store, prompt_id, reason=reason, actor=actor, to=to, gate_report_id=gate_report_id)

    def approve(self, version: str, *, reviewer: str, reason: str = "approved", actor: str | None = None) -> AuditEvent:
        return _registration.approve(self.store, version, reviewer=reviewer, reason=reason, actor=actor)

    def set_status(
        self, version: str, status: str, *, reason: str, actor: str | None = None, gate_report_id: str | None = None
    ) -> AuditEvent:
        return _registration.set_status(
            self.store, version, status, reason=reason, actor=actor, gate_report_id=gate_report_id
        )

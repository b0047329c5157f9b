"""The prompt registry: immutable, content-hashed prompt packages and audited labels.

Public API: open a `Registry` once (`Registry(root)`) and pass it down; its
methods load and list packages, read labels and the audit trail, register,
verify, create, approve and change the status of versions, and move, remove
and roll back labels. `sync_to_warehouse` mirrors it into the warehouse
(imported on first use so that importing the registry never loads duckdb).
"""

from __future__ import annotations

from typing import Any

from prompt_release.registry.api import Registry
from prompt_release.registry.audit import AuditEvent, resolve_actor
from prompt_release.registry.ids import parse_version_id, version_id
from prompt_release.registry.labels import CANARY, PRODUCTION, STAGING, LabelEntry
from prompt_release.registry.manifest import Manifest, ReleasePolicy, ToolRule, ToolSpec
from prompt_release.registry.package import PromptPackage, content_hash
from prompt_release.registry.registration import RegisterResult, VerifyResult
from prompt_release.registry.store import FilesystemStore, RegistryStore

__all__ = [
    "CANARY",
    "PRODUCTION",
    "STAGING",
    "AuditEvent",
    "FilesystemStore",
    "LabelEntry",
    "Manifest",
    "PromptPackage",
    "RegisterResult",
    "Registry",
    "RegistryStore",
    "ReleasePolicy",
    "ToolRule",
    "ToolSpec",
    "VerifyResult",
    "content_hash",
    "parse_version_id",
    "resolve_actor",
    "sync_to_warehouse",
    "version_id",
]


def sync_to_warehouse(registry: Registry, warehouse: Any = None) -> dict[str, int]:
    """Mirror versions and label events into the warehouse (see `registry.sync`)."""
    from prompt_release.registry.sync import sync_to_warehouse as _sync

    return _sync(registry, warehouse)

"""The prompt registry: immutable, content-hashed prompt packages and audited labels.

Public API (what the rest of prompt-release and production apps call):
`load_package`, `list_versions`, `resolve_label`, `labels`, `history`,
`register`, `verify`, `new_version`, `move_label`, `remove_label`, `rollback`,
`approve`, `approvals`, `set_status`, and `sync_to_warehouse` (imported on
first use so that importing the registry never loads duckdb).
"""

from __future__ import annotations

from typing import Any

from prompt_release.registry.audit import resolve_actor
from prompt_release.registry.ids import parse_version_id, version_id
from prompt_release.registry.labels import (
    CANARY,
    PRODUCTION,
    STAGING,
    history,
    labels,
    move_label,
    remove_label,
    resolve_label,
    rollback,
)
from prompt_release.registry.manifest import Manifest, ReleasePolicy, ToolRule, ToolSpec
from prompt_release.registry.package import PromptPackage, canonical_json, content_hash
from prompt_release.registry.packages import as_store, list_versions, load_package
from prompt_release.registry.registration import (
    approvals,
    approve,
    new_version,
    register,
    set_status,
    unregistered,
    verify,
    verify_version,
)
from prompt_release.registry.store import FilesystemStore, RegistryStore

__all__ = [
    "CANARY",
    "PRODUCTION",
    "STAGING",
    "FilesystemStore",
    "Manifest",
    "PromptPackage",
    "RegistryStore",
    "ReleasePolicy",
    "ToolRule",
    "ToolSpec",
    "approvals",
    "approve",
    "as_store",
    "canonical_json",
    "content_hash",
    "history",
    "labels",
    "list_versions",
    "load_package",
    "move_label",
    "new_version",
    "parse_version_id",
    "register",
    "remove_label",
    "resolve_actor",
    "resolve_label",
    "rollback",
    "set_status",
    "sync_to_warehouse",
    "unregistered",
    "verify",
    "verify_version",
    "version_id",
]


def sync_to_warehouse(root: Any = None, warehouse: Any = None) -> dict[str, int]:
    """Mirror versions and label events into the warehouse (see `registry.sync`)."""
    from prompt_release.registry.sync import sync_to_warehouse as _sync

    return _sync(root, warehouse)

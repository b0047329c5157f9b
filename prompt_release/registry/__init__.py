"""The prompt registry: immutable, content-hashed prompt packages and audited labels.

Public API: open a `Registry` once (`Registry(root)`) and pass it down; its
methods load and list packages and their output contracts, read labels and the
audit trail, register, verify, create, approve and change the status of
versions, and move, remove and roll back labels. The registry never imports
the warehouse: its mirror there is `warehouse.registry_mirror.sync_to_warehouse`.
"""

from __future__ import annotations

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
    "version_id",
]

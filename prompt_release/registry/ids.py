"""Prompt ids, semantic versions and version ids: parsing and validation.

Ids and versions become file names (`prompts/<id>/v<version>.yaml`), so every
one that enters the registry passes through here first; anything that could
name another folder (`..`, `/`, absolute paths, odd characters) is refused
with a message naming what was wrong.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from prompt_release.errors import UserError

# The grammar, as pattern text every consumer derives from: Python `re`,
# pydantic `Field(pattern=...)` and DuckDB's RE2 (`regexp_full_match`) all read
# this subset. NAME is a prompt id, a workflow name or a dataset name.
NAME_PATTERN = r"[a-z][a-z0-9_]{0,63}"
_NUMBER = r"(?:0|[1-9][0-9]{0,5})"
SEMVER_PATTERN = rf"{_NUMBER}\.{_NUMBER}\.{_NUMBER}"
VERSION_ID_PATTERN = rf"{NAME_PATTERN}:v{SEMVER_PATTERN}"
"""`<prompt_id>:vMAJOR.MINOR.PATCH`: no pre-release or build suffix."""
DATASET_VERSION_PATTERN = rf"{NAME_PATTERN}:v[1-9][0-9]*"
"""`<dataset>:vN`, N from 1."""

PROMPT_ID = re.compile(rf"^{NAME_PATTERN}$")
LABEL = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_SEMVER = re.compile(rf"^({_NUMBER})\.({_NUMBER})\.({_NUMBER})$")
_VERSION_ID = re.compile(rf"^({NAME_PATTERN}):v(\S+)$")
_DATASET_VERSION = re.compile(rf"({NAME_PATTERN}):v([1-9][0-9]*)")
_FULL_VERSION_ID = re.compile(VERSION_ID_PATTERN)
_BARE_VERSION = re.compile(rf"v?{SEMVER_PATTERN}")


def anchored(pattern: str) -> str:
    """`^pattern$`, for pydantic and JSON Schema patterns (search semantics)."""
    return f"^{pattern}$"


def is_name(value: object) -> bool:
    """A valid prompt id, workflow name or dataset name."""
    return isinstance(value, str) and PROMPT_ID.fullmatch(value) is not None


def is_version_id(value: object) -> bool:
    """Whether the registry would accept `value` as a version id (no normalising)."""
    return isinstance(value, str) and _FULL_VERSION_ID.fullmatch(value) is not None


def is_bare_version(value: object) -> bool:
    """`1.6.0` or `v1.6.0`, as a registry version."""
    return isinstance(value, str) and _BARE_VERSION.fullmatch(value) is not None


def parse_dataset_version(ref: str) -> tuple[str, int] | None:
    """`support_router_golden:v3` -> ("support_router_golden", 3); None when it is not one."""
    match = _DATASET_VERSION.fullmatch(ref) if isinstance(ref, str) else None
    return (match.group(1), int(match.group(2))) if match else None


class Semver(NamedTuple):
    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def check_prompt_id(value: str, *, field: str = "id", file: str | None = None) -> str:
    if not isinstance(value, str) or not PROMPT_ID.match(value):
        raise UserError(
            f"invalid prompt id {value!r}: must match {PROMPT_ID.pattern} "
            "(lowercase letters, digits, underscore; no path characters)",
            field=field,
            file=file,
        )
    return value


def check_label(value: str) -> str:
    if not isinstance(value, str) or not LABEL.match(value):
        raise UserError(f"invalid label {value!r}: must match {LABEL.pattern}", field="label")
    return value


def parse_semver(value: object, *, field: str = "version", file: str | None = None) -> Semver:
    """`1.6.0` (also `v1.6.0`) -> Semver; anything else is a UserError."""
    text = str(value).strip()
    if text.startswith("v"):
        text = text[1:]
    match = _SEMVER.match(text)
    if not match:
        raise UserError(
            f"invalid version {value!r}: must be semver MAJOR.MINOR.PATCH, e.g. 1.6.0",
            field=field,
            file=file,
        )
    return Semver(*(int(g) for g in match.groups()))


def version_id(prompt_id: str, version: str | Semver) -> str:
    return f"{prompt_id}:v{version}"


def parse_version_id(value: str, *, field: str = "version_id") -> tuple[str, Semver]:
    """`support_router:v1.6.0` -> ("support_router", Semver(1, 6, 0))."""
    match = _VERSION_ID.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise UserError(
            f"invalid version id {value!r}: expected <prompt_id>:v<MAJOR.MINOR.PATCH>, e.g. support_router:v1.6.0",
            field=field,
        )
    prompt_id = check_prompt_id(match.group(1), field=field)
    return prompt_id, parse_semver(match.group(2), field=field)


def normalize_version_ref(prompt_id: str, value: str) -> str:
    """Accept `1.5.2`, `v1.5.2` or `support_router:v1.5.2`; return the full version id."""
    value = str(value).strip()
    if ":" in value:
        other, semver = parse_version_id(value)
        if other != prompt_id:
            raise UserError(f"version {value!r} belongs to {other!r}, not {prompt_id!r}", field="version")
        return version_id(prompt_id, semver)
    return version_id(prompt_id, parse_semver(value))

"""What differs between two prompt versions: a text diff of the templates and a
field-level diff of everything else in the package."""

from __future__ import annotations

import difflib
from typing import Any

from prompt_release.registry.package import DESCRIPTIVE_FIELDS, HASHED_FIELDS, PromptPackage

# The template is diffed as text; every other hashed field, then the descriptive ones.
_COMPARED = (*(f for f in HASHED_FIELDS if f != "template"), *DESCRIPTIVE_FIELDS)


def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def template_diff(a: PromptPackage, b: PromptPackage) -> str:
    return "".join(
        difflib.unified_diff(
            a.template_text.splitlines(keepends=True),
            b.template_text.splitlines(keepends=True),
            fromfile=f"{a.version_id} ({a.template_path})",
            tofile=f"{b.version_id} ({b.template_path})",
        )
    )


def field_diff(a: PromptPackage, b: PromptPackage) -> list[dict[str, Any]]:
    """[{field, from, to}] for every field that differs (nested dicts compared per key)."""
    changes: list[dict[str, Any]] = []

    def walk(path: str, x: Any, y: Any) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for key in sorted(set(x) | set(y)):
                walk(f"{path}.{key}", x.get(key), y.get(key))
        elif x != y:
            changes.append({"field": path, "from": x, "to": y})

    for name in _COMPARED:
        walk(name, _plain(getattr(a, name)), _plain(getattr(b, name)))
    return changes


def diff(a: PromptPackage, b: PromptPackage) -> dict[str, Any]:
    return {
        "from": a.version_id,
        "to": b.version_id,
        "from_hash": a.package_hash,
        "to_hash": b.package_hash,
        "template_diff": template_diff(a, b),
        "fields": field_diff(a, b),
    }

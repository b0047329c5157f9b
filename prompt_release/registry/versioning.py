"""Version discipline: how big a version bump a change to a package requires.

Against the previous registered version: a change to the output schema or
format, the tool definitions or the required variables breaks callers and
needs a major bump; a change of model or parameters needs at least a minor
bump; any other behaviour change (template, policies, post-processing) at
least a patch. Under-bumping is refused with the list of changes and the bump
each needs.
"""

from __future__ import annotations

from prompt_release.registry.ids import Semver
from prompt_release.registry.package import HASHED_FIELDS, PromptPackage

LEVELS = {"patch": 1, "minor": 2, "major": 3}
REQUIRED_BUMP: dict[str, str] = {
    "output_schema": "major",
    "output_format": "major",
    "tools": "major",
    "required_variables": "major",
    "model": "minor",
    "parameters": "minor",
}


def bump_of(old: Semver, new: Semver) -> str | None:
    """'major' | 'minor' | 'patch' for an increase, None when `new` is not above `old`."""
    if new <= old:
        return None
    if new.major != old.major:
        return "major"
    if new.minor != old.minor:
        return "minor"
    return "patch"


def changed_fields(old: PromptPackage, new: PromptPackage) -> list[str]:
    changed = [f for f in HASHED_FIELDS if old.field_hashes.get(f) != new.field_hashes.get(f)]
    if tuple(old.required_variables) != tuple(new.required_variables):
        changed.append("required_variables")
    return changed


def needed_bumps(old: PromptPackage, new: PromptPackage) -> list[tuple[str, str]]:
    """(field, required bump) for every behaviour change from `old` to `new`."""
    return [(f, REQUIRED_BUMP.get(f, "patch")) for f in changed_fields(old, new)]


def under_bumps(old: PromptPackage, new: PromptPackage, old_v: Semver, new_v: Semver) -> list[tuple[str, str]]:
    actual = bump_of(old_v, new_v)
    level = LEVELS[actual] if actual else 0
    return [(f, need) for f, need in needed_bumps(old, new) if LEVELS[need] > level]

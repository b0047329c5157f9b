"""Version discipline: how big a version bump a change to a package requires.

Against the previous registered version: a change to the output schema or
format, the tool definitions or the required variables breaks callers and
needs a major bump, and so does a change of safety instructions, tool-use
policy or required context (retrieval, memory): the release rule is that what
a prompt may do, and what it must be given, are contracts. A change of model or
parameters needs at least a minor bump; any other behaviour change (template,
post-processing) at least a patch. Under-bumping is refused with the list of
changes, the bump each needs and the rule that asks for it.
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
    "safety_instructions": "major",
    "tool_policy": "major",
    "retrieval": "major",
    "memory": "major",
    "model": "minor",
    "parameters": "minor",
}
# Why a field needs its bump, quoted in the refusal.
RULES: dict[str, str] = {
    "output_schema": "callers parse the output: a new output contract is a major version",
    "output_format": "callers parse the output: a new output contract is a major version",
    "tools": "tool definitions are what the model may call: a change is a major version",
    "required_variables": "required context is what callers must supply: a change is a major version",
    "safety_instructions": "safety policy changes are major: what a prompt may do is a contract",
    "tool_policy": "tool-use policy changes are major: what a prompt may do is a contract",
    "retrieval": "required context (retrieval) changes are major: what a prompt must be given is a contract",
    "memory": "required context (memory) changes are major: what a prompt must be given is a contract",
    "model": "a new model or parameters changes behaviour broadly: at least a minor version",
    "parameters": "a new model or parameters changes behaviour broadly: at least a minor version",
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


def refusal(vid: str, previous: str, actual: str | None, short: list[tuple[str, str]]) -> str:
    """The under-bump refusal: each changed field, the bump it needs and the rule that says so."""
    return f"{vid} under-bumps {previous} ({actual} bump): " + "; ".join(
        f"{field} changed, which needs a {need} bump ({RULES.get(field, 'any behaviour change is at least a patch')})"
        for field, need in short
    )

"""Judging rubrics: the versioned YAML files `evals/rubrics/<id>.yaml` an LLM judge scores outputs by.

A rubric names what good looks like for a subjective workflow: weighted
criteria on a 1-5 scale, an optional word limit, the registry prompt that
acts as its judge, and calibration examples (a document, two summaries and
the preference a careful reviewer expects) that every judged run scores as a
self-check. The rubric's identity is `<id>:v<semver>` plus a content hash over
its canonical JSON, recorded on every judge score, so a score can always be
traced to the exact rubric text that produced it. Loading reports a bad field
as one error naming the file, the line and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from prompt_release.errors import UserError
from prompt_release.registry.ids import PROMPT_ID, parse_semver
from prompt_release.registry.package import content_hash
from prompt_release.registry.safe_yaml import load_model

RUBRICS_DIR = "evals/rubrics"
Preference = Literal["A", "B", "tie"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Criterion(_Strict):
    name: str = Field(pattern=PROMPT_ID.pattern)
    weight: float = Field(gt=0, le=1)
    description: str = Field(min_length=1)


class Scale(_Strict):
    min: int = 1
    max: int = 5

    @model_validator(mode="after")
    def _ordered(self) -> Scale:
        if self.min >= self.max:
            raise ValueError("scale.min must be below scale.max")
        return self


class CalibrationExample(_Strict):
    """Two responses to one document and which one a careful reviewer prefers."""

    document: str = Field(min_length=1)
    summary_a: str
    summary_b: str
    expected_preference: Preference
    note: str | None = None


class Rubric(_Strict):
    id: str = Field(pattern=PROMPT_ID.pattern)
    version: str
    description: str = Field(min_length=1)
    judge: str = Field(pattern=PROMPT_ID.pattern, description="prompt id of the judge package (its production label)")
    max_words: int | None = Field(None, ge=1, description="responses longer than this break the length criterion")
    scale: Scale = Field(default_factory=Scale)
    criteria: list[Criterion] = Field(min_length=1)
    calibration: list[CalibrationExample] = Field(default_factory=list)

    @field_validator("version", mode="before")
    @classmethod
    def _semver(cls, value: Any) -> str:
        return str(parse_semver(value))

    @model_validator(mode="after")
    def _weights(self) -> Rubric:
        names = [c.name for c in self.criteria]
        if len(set(names)) != len(names):
            raise ValueError("criteria names must be unique")
        total = sum(c.weight for c in self.criteria)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"criteria weights must sum to 1 (they sum to {total:g})")
        return self

    @property
    def ref(self) -> str:
        """`<id>:v<semver>`: what `rubric_version` columns hold."""
        return f"{self.id}:v{self.version}"

    @property
    def content_hash(self) -> str:
        return content_hash(self.model_dump(mode="json"))

    def prompt_view(self) -> dict[str, Any]:
        """What the judge template renders: everything but the calibration examples."""
        return self.model_dump(mode="json", exclude={"calibration"})


def parse_rubric(text: str, *, file: str | Path) -> Rubric:
    return load_model(text, Rubric, file=file, kind="a rubric")


def load_rubric(registry_root: str | Path, rel_path: str) -> Rubric:
    """Load `rel_path` (relative to the registry root, e.g. `evals/rubrics/summary_quality.yaml`).

    The path must stay inside the root, and the file name must be the rubric id.
    """
    root = Path(registry_root).resolve()
    path = (root / rel_path).resolve()
    if Path(rel_path).is_absolute() or not path.is_relative_to(root):
        raise UserError(f"rubric path {rel_path!r} escapes the registry root", field="rubric")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError("rubric file not found", file=rel_path, field="rubric") from None
    rubric = parse_rubric(text, file=rel_path)
    if path.suffix not in (".yaml", ".yml") or path.stem != rubric.id:
        raise UserError(f"rubric {rubric.id!r} must live in {RUBRICS_DIR}/{rubric.id}.yaml", file=rel_path, field="id")
    return rubric


# -- the registry lock ----------------------------------------------------------
# A rubric is versioned like a prompt: `<id>:v<semver>`, one file per id. The
# registry's lock file records the content hash of each rubric version when a
# package naming it is registered, so an edit in place (same version, other
# criteria) is refused by `prompts verify` and by the judge, instead of mixing
# two rubrics under one version in the judged runs.


def locked_problem(lock: dict[str, Any], rubric: Rubric, rel_path: str) -> str | None:
    """Why `rubric` disagrees with the registry lock, or None (recorded and unchanged, or not recorded)."""
    entry = lock.get("rubrics", {}).get(rubric.ref)
    if entry is None or entry.get("content_hash") == rubric.content_hash:
        return None
    return (
        f"rubric {rubric.ref} ({rel_path}) was edited in place after it was registered "
        f"(hash {entry.get('content_hash')} then, {rubric.content_hash} now); bump its version"
    )


def lock_rubric(lock: dict[str, Any], rubric: Rubric, rel_path: str, stamp: dict[str, str]) -> bool:
    """Record `rubric` in `lock` with `stamp` (who registered it, when; True when added);
    a recorded version whose content changed is a UserError."""
    problem = locked_problem(lock, rubric, rel_path)
    if problem:
        raise UserError(problem, file=rel_path, field="version")
    entries = lock.setdefault("rubrics", {})
    if rubric.ref in entries:
        return False
    entries[rubric.ref] = {"file": rel_path, "content_hash": rubric.content_hash, **stamp}
    return True


def verify_locked(registry_root: str | Path, lock: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(rubric version, problem or None) for each recorded rubric version its file still holds.

    A file now at another version was bumped (its recorded versions are history); a
    file that no longer loads is a problem for every version recorded from it.
    """
    results = []
    for ref, entry in sorted(lock.get("rubrics", {}).items()):
        try:
            rubric = load_rubric(registry_root, entry["file"])
        except UserError as exc:
            results.append((ref, f"rubric {ref} no longer loads: {exc}"))
            continue
        if rubric.ref == ref:
            results.append((ref, locked_problem(lock, rubric, entry["file"])))
    return results

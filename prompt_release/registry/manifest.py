"""The manifest of a prompt version: the YAML file `prompts/<id>/v<version>.yaml`.

A pydantic model of what an author writes: identity and ownership, the files
the version is made of (template, output schema, golden set), model and
parameters, tools with JSON Schema arguments and a risk level, the tool
policy, retrieval/memory policy, safety instructions, post-processing, the
representative variables used to render it, and the release policy. Loading
reports a bad field as one error naming the file, the line and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from prompt_release.registry.ids import PROMPT_ID, parse_semver
from prompt_release.registry.safe_yaml import load_model

Status = Literal["draft", "candidate", "approved", "released", "rejected", "retired"]
STATUSES: tuple[str, ...] = ("draft", "candidate", "approved", "released", "rejected", "retired")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_DURATION_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class _Strict(BaseModel):
    # Unknown keys are refused: a typo (`temprature`) must not silently vanish.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToolSpec(_Strict):
    """One tool the model may call: JSON Schema arguments and how risky a call is."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    risk: Literal["low", "medium", "high"] = "low"

    @field_validator("parameters")
    @classmethod
    def _is_json_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        # lazy: jsonschema costs start-up time the runtime (an app's import) must not pay
        from jsonschema.validators import validator_for

        try:
            validator_for(value).check_schema(value)
        except Exception as exc:  # jsonschema.SchemaError carries a long message
            raise ValueError(f"not a valid JSON Schema: {getattr(exc, 'message', exc)}") from None
        return value


class ArgumentBound(_Strict):
    min: float | None = None
    max: float | None = None


class ToolRule(_Strict):
    """Policy for calls to one tool: which tools must be called before it, argument bounds."""

    requires_prior: list[str] = Field(default_factory=list)
    argument_bounds: dict[str, ArgumentBound] = Field(default_factory=dict)


class Links(_Strict):
    task: str | None = None
    incident: str | None = None
    experiment: str | None = None


class PostProcessingStep(_Strict):
    """One output post-processing rule, applied in order by `contracts.post_processing.apply`."""

    kind: Literal["strip", "strip_fences", "extract_json", "max_chars", "max_words"]
    value: int | None = None


class ReleasePolicy(_Strict):
    """How a version is rolled out once a gate lets it through."""

    canary_percent: float = Field(default=10.0, gt=0, le=100)
    # Segment filter for the canary: request segment key -> allowed values.
    segments: dict[str, list[str]] | None = None
    min_traffic: int = Field(default=200, ge=0)
    min_duration: str = "1h"
    required_reviewer: str | None = None
    # Labels that move only to a version whose exact package passed a gate (or by break-glass --force).
    protected_labels: tuple[str, ...] = ("production", "canary")

    @field_validator("min_duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> str:
        text = str(value)
        if not _DURATION.match(text):
            raise ValueError(f"invalid duration {value!r}: use e.g. 90s, 30m, 2h, 1d")
        return text.strip()

    @property
    def min_duration_s(self) -> float:
        number, unit = _DURATION.match(self.min_duration).groups()
        return float(number) * _DURATION_UNIT_S[unit]


class Manifest(_Strict):
    """What a prompt author writes. Paths are relative to the registry root."""

    id: str = Field(pattern=PROMPT_ID.pattern)
    version: str
    owner: str
    status: Status
    model: str
    template: str
    schema_: str | None = Field(default=None, alias="schema")
    golden_set: str | None = None
    rollback_to: str | None = None
    change_reason: str

    reviewer: str | None = None
    links: Links = Field(default_factory=Links)
    expected_behaviour_change: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    tools: list[ToolSpec] = Field(default_factory=list)
    tool_policy: dict[str, ToolRule] = Field(default_factory=dict)
    retrieval: dict[str, Any] | None = None
    memory: dict[str, Any] | None = None
    safety_instructions: list[str] = Field(default_factory=list)
    post_processing: list[PostProcessingStep] = Field(default_factory=list)
    output_format: Literal["json", "text"] | None = None
    variables: dict[str, Any] = Field(default_factory=dict)
    release_policy: ReleasePolicy = Field(default_factory=ReleasePolicy)
    # Evaluation config (gate spec, the rubric an LLM judge scores outputs
    # by) and free-form notes: read by other tools, never part of the package
    # hash because they do not change behaviour.
    gate: dict[str, Any] | None = None
    rubric: str | None = Field(default=None, description="rubric file, e.g. evals/rubrics/summary_quality.yaml")
    metadata: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("version", "rollback_to", mode="before")
    @classmethod
    def _semver(cls, value: Any) -> Any:
        if value is None:
            return None
        return str(parse_semver(value))

    @field_validator("safety_instructions", mode="before")
    @classmethod
    def _lines(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        names = [tool.name for tool in self.tools]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate tool names: {', '.join(duplicates)}")
        for tool, rule in self.tool_policy.items():
            unknown = [t for t in [tool, *rule.requires_prior] if t not in names]
            if unknown:
                raise ValueError(f"tool_policy names tools not defined in tools: {', '.join(unknown)}")
        return self

    @property
    def effective_output_format(self) -> str:
        return self.output_format or ("json" if self.schema_ else "text")


def parse_manifest(text: str, *, file: str | Path) -> Manifest:
    """Parse and validate manifest YAML; any problem is one UserError naming file, line, field."""
    return load_model(text, Manifest, file=file, kind="a manifest")

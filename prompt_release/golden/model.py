"""The golden case and manifest shapes, case ids and content hashes.

A case is `{case_id, workflow, input {messages, variables}, expected, contract,
tags, provenance}`. The case id is `case_` + 16 hex of sha256 over the
canonical JSON of the (redacted) input, so the same input is the same case in
every version. A version's content hash is sha256 over the canonical JSON of
its cases sorted by id, provenance excluded: which spans a case was seen in is
history, not behaviour, so it alone never makes a new version.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from prompt_release.canonical import canonical_json, canonical_text
from prompt_release.errors import UserError
from prompt_release.registry.ids import NAME_PATTERN, is_name, parse_dataset_version

ExpectedKind = Literal["exact_json", "label", "tool_call", "refuse", "clarify"]
ExpectedSource = Literal["correction", "label_file", "incident"]


class _Model(BaseModel):
    # Frozen: parsed versions are shared within a process (store._parse_cases).
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expected(_Model):
    kind: ExpectedKind
    value: Any = None
    source: ExpectedSource

    @field_validator("value")
    @classmethod
    def _value_shape(cls, value: Any, info) -> Any:  # noqa: ANN001
        kind = info.data.get("kind")
        if kind == "tool_call" and not isinstance(value, (dict, list)):
            raise ValueError("a tool_call expectation is {name, arguments} or a list of them")
        if kind == "label" and not isinstance(value, (dict, str)):
            raise ValueError("a label expectation is {field: value} or a reference text")
        return value


class CaseInput(_Model):
    messages: list[dict[str, Any]]
    variables: dict[str, Any] = Field(default_factory=dict)


class Contract(_Model):
    """The checks that apply to every output for this case, whatever its expectation."""

    prompt_id: str
    output_format: str
    checks: list[str]


class Tags(_Model):
    intent: str = "none"
    segment: str = "none"
    failure_classes: list[str] = Field(default_factory=list)
    incident: bool = False


class Provenance(_Model):
    span_ids: list[str] = Field(default_factory=list)
    prompt_versions: list[str] = Field(default_factory=list)
    days: list[str] = Field(default_factory=list)
    note: str | None = None


class GoldenCase(_Model):
    case_id: str
    workflow: str
    input: CaseInput
    expected: Expected | None = None
    contract: Contract
    tags: Tags
    provenance: Provenance

    def content(self) -> dict[str, Any]:
        """Everything that defines the case's behaviour (provenance excluded)."""
        return self.model_dump(mode="json", exclude={"provenance"})


class Manifest(_Model):
    dataset: str
    version: int
    version_id: str
    workflow: str
    content_hash: str
    parent_version: str | None
    case_count: int
    labelled_count: int
    counts_by_failure_class: dict[str, int]
    counts_by_tag: dict[str, dict[str, int]]
    changes: dict[str, list[str]]  # added / removed / changed case ids
    source_spans: dict[str, list[str]]
    cases_file: str
    cases_sha256: str
    created_at: str


def case_id_for(input_: dict[str, Any]) -> str:
    digest = hashlib.sha256(canonical_json({"messages": input_["messages"], "variables": input_["variables"]}))
    return "case_" + digest.hexdigest()[:16]


def content_hash(cases: list[GoldenCase]) -> str:
    body = canonical_json([c.content() for c in sorted(cases, key=lambda c: c.case_id)])
    return "sha256:" + hashlib.sha256(body).hexdigest()


def dataset_name(workflow: str) -> str:
    if not is_name(workflow):
        raise UserError(f"not a workflow id (expected {NAME_PATTERN}): {workflow!r}", field="workflow")
    return f"{workflow}_golden"


def parse_version_ref(ref: str) -> tuple[str, int]:
    """`support_router_golden:v3` -> ('support_router_golden', 3)."""
    parsed = parse_dataset_version(ref)
    if parsed is None:
        raise UserError(f"not a golden dataset version (expected <dataset>:v<N>): {ref!r}")
    return parsed


def case_line(case: GoldenCase) -> str:
    return canonical_text(case.model_dump(mode="json"))


def parse_case_line(line: str, file: str, number: int) -> GoldenCase:
    try:
        # pydantic's own JSON parser: about half the time of json.loads + model_validate.
        return GoldenCase.model_validate_json(line)
    except (ValueError, TypeError) as exc:
        raise UserError(f"not a golden case: {exc}", file=file, line=number) from exc

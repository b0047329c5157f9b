"""Configuration of failure mining, redaction and golden-case selection.

One pydantic model, `MiningSettings`, read from `<registry root>/datasets/mining.yaml`
when that file exists (every field optional; defaults below). Outlier rule
(latency and cost, per workflow and day): `median_multiple` flags a call whose
value is strictly greater than `k` x the median of its workflow's calls that
day (default k = 10, the sample generator's definition of an injected
outlier: it forces outliers above 10x the day's median, and natural values stay
far below that); `p99` flags values strictly above that day's 99th percentile
(always flags about 1% of calls, so it never matches injected counts exactly);
`absolute` flags values above `absolute`. Whatever the rule, a configured
`absolute` bound also flags anything above it. Refusal and clarification
patterns are RE2 regular expressions (DuckDB's dialect; Python `re` reads them
the same for the usual constructs), configured per workflow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from prompt_release.contracts.checks import (
    DEFAULT_CLARIFICATION_PATTERNS,
    DEFAULT_REFUSAL_PATTERNS,
)
from prompt_release.registry.safe_yaml import load_model

FAILURE_CLASSES: tuple[str, ...] = (
    "invalid_json",
    "schema_violation",
    "enum_violation",
    "unknown_tool",
    "tool_args_invalid",
    "unsafe_tool_call",
    "text_tool_call",
    "fenced_json",
    "error",
    "retry",
    "fallback",
    "negative_feedback",
    "escalation",
    "correction",
    "refusal",
    "clarification",
    "latency_outlier",
    "cost_outlier",
)

Severity = Literal["critical", "high", "medium", "low"]
SEVERITY_RANK: dict[str, int] = {"critical": 4, "high": 3, "medium": 2, "low": 1}

DEFAULT_SEVERITY: dict[str, Severity] = {
    "unsafe_tool_call": "critical",
    "invalid_json": "high",
    "schema_violation": "high",
    "enum_violation": "high",
    "unknown_tool": "high",
    "tool_args_invalid": "high",
    "text_tool_call": "high",
    "fenced_json": "high",
    "error": "high",
    "correction": "medium",
    "escalation": "medium",
    "negative_feedback": "medium",
    "refusal": "medium",
    "clarification": "medium",
    "fallback": "medium",
    "retry": "low",
    "latency_outlier": "low",
    "cost_outlier": "low",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutlierRule(_Strict):
    rule: Literal["median_multiple", "p99", "absolute"] = "median_multiple"
    k: float = Field(10.0, gt=0)
    absolute: float | None = Field(None, gt=0)


class WorkflowPatterns(_Strict):
    refusal_patterns: tuple[str, ...] = DEFAULT_REFUSAL_PATTERNS
    clarification_patterns: tuple[str, ...] = DEFAULT_CLARIFICATION_PATTERNS


class SelectionSettings(_Strict):
    """Golden-case selection: cluster, rank, budget, stratify."""

    min_cases: int = Field(50, ge=0)
    max_cases: int = Field(200, ge=1)
    per_cluster: int = Field(3, ge=1)
    per_failure_class: int = Field(60, ge=1)
    similarity: float = Field(88.0, ge=0, le=100)  # rapidfuzz token_set_ratio cut-off
    # Keep every case of the previous version (new failures only add), so a
    # version differs from its parent by what happened, not by re-sampling.
    carry_over: bool = True
    max_source_spans: int = Field(20, ge=1)


class MiningSettings(_Strict):
    severity: dict[str, Severity] = Field(default_factory=lambda: dict(DEFAULT_SEVERITY))
    latency: OutlierRule = OutlierRule()
    cost: OutlierRule = OutlierRule()
    workflows: dict[str, WorkflowPatterns] = Field(default_factory=dict)
    selection: SelectionSettings = SelectionSettings()
    # Extra redaction patterns: placeholder kind (upper-case word) -> RE2/Python regex.
    redaction_patterns: dict[str, str] = Field(default_factory=dict)

    def patterns(self, workflow: str | None) -> WorkflowPatterns:
        return self.workflows.get(workflow or "", WorkflowPatterns())

    def severity_of(self, failure_class: str) -> str:
        return self.severity.get(failure_class, DEFAULT_SEVERITY.get(failure_class, "medium"))


SETTINGS_FILE = Path("datasets") / "mining.yaml"


def load_settings(root: str | Path | None) -> MiningSettings:
    """Settings from `<root>/datasets/mining.yaml`, or the defaults when absent."""
    if root is None:
        return MiningSettings()
    path = Path(root) / SETTINGS_FILE
    if not path.exists():
        return MiningSettings()
    return load_model(
        path.read_text(encoding="utf-8"), MiningSettings, file=path, kind="mining settings", empty_ok=True
    )

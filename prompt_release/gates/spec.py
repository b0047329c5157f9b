"""The gate specification: which metrics a candidate must meet, parsed from a JSON/YAML spec into typed gates.

A spec file names the candidate, the baseline, the model and the golden
dataset, and maps metric names to thresholds. A threshold is a string such as
`">= 99.5%"`, `"0%"`, `">= baseline - 1%"` or `"<= baseline + 10%"`, or the
long form `{"threshold": ">= 99%", "severity": "soft", "min_samples": 200}`.
Units, precisely: for rate metrics (`*_rate`, `*_accuracy`) every `%` is
percentage points, in absolute thresholds (`>= 99.5%` is 0.995) and in
margins (`baseline - 1%` is the baseline rate minus 0.01; `pt`, `pts`,
`point`, `points` say the same explicitly); a rate may also be written as a
fraction in [0, 1]. For latency, tokens, cost and judge score a margin in `%`
is relative (`baseline + 10%` is 1.10 times the baseline value) and a margin
without `%` is in the metric's own unit (milliseconds for latency, `ms`/`s`
suffixes allowed); points are rejected there. Without a comparator the
metric's good direction is meant: `"0%"` on `unsafe_tool_call_rate` is
`<= 0%`, a zero-tolerance gate that fails on one occurrence (and `>= 100%` on a
higher-is-better rate likewise fails on one miss). Gates are hard unless
marked soft: a soft gate is reported but never blocks. An unknown metric or a
malformed threshold is a `UserError` naming the metric (and the file when
loaded from one).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from prompt_release.errors import UserError
from prompt_release.registry import ids
from prompt_release.registry.ids import anchored
from prompt_release.registry.safe_yaml import load_model, validate_model

MetricKind = Literal["rate", "score", "latency", "tokens", "cost"]
Comparator = Literal[">=", "<=", ">", "<"]


@dataclass(frozen=True)
class MetricInfo:
    """What a metric is: its kind, which direction is good, and the per-case inputs it is computed from."""

    kind: MetricKind
    higher_is_better: bool
    description: str


# The per-case inputs each kind reads (see decision.py): rates and judge_score a
# column named like the metric; latency percentiles `latency_ms`; per-success
# metrics (`tokens` or `cost_usd`) over `success`.
METRICS: dict[str, MetricInfo] = {
    "json_valid_rate": MetricInfo("rate", True, "share of outputs that parse as JSON"),
    "schema_pass_rate": MetricInfo("rate", True, "share of outputs that validate against the output schema"),
    "tool_call_valid_rate": MetricInfo(
        "rate", True, "share of cases whose tool calls name known tools with valid arguments"
    ),
    "unsafe_tool_call_rate": MetricInfo("rate", False, "share of cases with a high-risk tool call violating policy"),
    "refusal_rate": MetricInfo("rate", False, "share of cases the model refused"),
    "error_rate": MetricInfo("rate", False, "share of cases that ended in an API/runtime error"),
    "success_rate": MetricInfo("rate", True, "share of cases judged successful overall"),
    "hard_failure_rate": MetricInfo(
        "rate",
        False,
        "share of cases with a hard failure: an error, invalid JSON, a schema or tool-call violation "
        "or an unsafe tool call (the canary's definition, warehouse/metrics.py)",
    ),
    "judge_score": MetricInfo("score", True, "mean rubric score from the judge"),
    "p50_latency": MetricInfo("latency", False, "median latency in ms"),
    "p95_latency": MetricInfo("latency", False, "95th percentile latency in ms"),
    "p99_latency": MetricInfo("latency", False, "99th percentile latency in ms"),
    "tokens_per_success": MetricInfo("tokens", False, "total tokens over successful cases"),
    "cost_per_success": MetricInfo("cost", False, "total cost in USD over successful cases"),
}
ACCURACY_PATTERN = re.compile(anchored(rf"{ids.NAME_PATTERN}_accuracy"))
LATENCY_QUANTILES = {"p50_latency": 0.50, "p95_latency": 0.95, "p99_latency": 0.99}

PROMPT_VERSION_PATTERN = anchored(ids.VERSION_ID_PATTERN)
DATASET_VERSION_PATTERN = anchored(ids.DATASET_VERSION_PATTERN)

_NUMBER = r"\d+(?:\.\d+)?|\.\d+"
THRESHOLD_PATTERN = re.compile(
    rf"""^\s*(?P<op>>=|<=|>|<|==|=)?\s*
    (?:
        (?P<value>{_NUMBER})\s*(?P<value_unit>%|ms|s)?
      | baseline(?:\s*(?P<sign>[+-])\s*(?P<margin>{_NUMBER})\s*(?P<margin_unit>%|pts?|points?|ms|s)?)?
    )\s*$""",
    re.VERBOSE | re.IGNORECASE,
)
# For the JSON Schema: a loose shape check; the parser gives the precise message.
THRESHOLD_JSON_PATTERN = r"^\s*(>=|<=|>|<)?\s*(\d+(\.\d+)?|\.\d+|baseline(\s*[+-]\s*(\d+(\.\d+)?|\.\d+)\s*(%|pts?|points?|ms|s)?)?)\s*(%|ms|s)?\s*$"
THRESHOLD_EXAMPLES = "'>= 99.5%', '0%', '>= baseline - 1%', '>= baseline - 1pt', '<= baseline + 10%', '<= 1200ms'"


def metric_info(metric: str) -> MetricInfo | None:
    if metric in METRICS:
        return METRICS[metric]
    if ACCURACY_PATTERN.match(metric):
        return MetricInfo("rate", True, "task accuracy: share of cases with the expected outcome")
    return None


class Gate(BaseModel):
    """One parsed gate: a metric, a comparator and a threshold, absolute or relative to the baseline."""

    model_config = ConfigDict(frozen=True)

    metric: str
    kind: MetricKind
    higher_is_better: bool
    threshold: str = Field(description="the threshold as written in the spec")
    comparator: Comparator
    reference: Literal["absolute", "baseline"]
    value: float | None = Field(
        None, description="absolute threshold in metric units (fraction for rates, ms for latency)"
    )
    margin: float | None = Field(None, description="signed margin added to the baseline (relative gates)")
    margin_kind: Literal["points", "absolute", "relative"] | None = Field(
        None,
        description="points: rate points as a fraction; absolute: metric units; relative: fraction of the baseline",
    )
    severity: Literal["hard", "soft"] = "hard"
    min_samples: int | None = None

    @property
    def zero_tolerance(self) -> bool:
        """A rate gate at its boundary (`<= 0%` or `>= 100%`): decided by counting, one occurrence fails."""
        if self.kind != "rate" or self.reference != "absolute":
            return False
        return (self.comparator == "<=" and self.value == 0.0) or (self.comparator == ">=" and self.value == 1.0)

    def describe(self) -> str:
        """Canonical one-line rule, e.g. '>= baseline - 1 pt' or '<= 0% (zero tolerance)'."""
        if self.reference == "absolute":
            assert self.value is not None
            text = f"{self.comparator} {_format_value(self.kind, self.value)}"
            return text + (" (zero tolerance)" if self.zero_tolerance else "")
        assert self.margin is not None
        if self.margin == 0:
            return f"{self.comparator} baseline"
        sign = "+" if self.margin > 0 else "-"
        mag = abs(self.margin)
        if self.margin_kind == "points":
            amount = f"{mag * 100:g} pt"
        elif self.margin_kind == "relative":
            amount = f"{mag * 100:g}%"
        else:
            amount = _format_value(self.kind, mag)
        return f"{self.comparator} baseline {sign} {amount}"


def _format_value(kind: str, value: float) -> str:
    if kind == "rate":
        return f"{value * 100:g}%"
    if kind == "latency":
        return f"{value:g}ms"
    return f"{value:g}"


class GateRule(BaseModel):
    """Long form of a gate: threshold plus severity and an optional minimum sample size."""

    model_config = ConfigDict(extra="forbid")

    threshold: str = Field(
        json_schema_extra={"pattern": THRESHOLD_JSON_PATTERN, "examples": [">= 99%", ">= baseline - 1%"]}
    )
    severity: Literal["hard", "soft"] = "hard"
    min_samples: int | None = Field(None, ge=1, description="fewer paired cases than this cannot pass the gate")


def parse_gate(metric: str, rule: str | GateRule | dict[str, Any], *, file: str | Path | None = None) -> Gate:
    """Parse one gate entry. Raises UserError naming the metric/threshold on anything malformed."""
    field = f"gates.{metric}"
    info = metric_info(metric)
    if info is None:
        known = ", ".join(sorted(METRICS))
        raise UserError(f"unknown metric '{metric}' (known: {known}, or any '<task>_accuracy')", file=file, field=field)
    if isinstance(rule, dict):
        try:
            rule = GateRule.model_validate(rule)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise UserError(f"{err['msg']}", file=file, field=f"{field}.{loc}" if loc else field) from None
    if isinstance(rule, GateRule):
        text, severity, min_samples = rule.threshold, rule.severity, rule.min_samples
    elif isinstance(rule, str):
        text, severity, min_samples = rule, "hard", None
    else:
        raise UserError(
            f"gate for '{metric}' must be a threshold string or an object with 'threshold', got {type(rule).__name__}",
            file=file,
            field=field,
        )

    def bad(why: str) -> UserError:
        return UserError(f"malformed threshold '{text}' for metric '{metric}': {why}", file=file, field=field)

    match = THRESHOLD_PATTERN.match(text)
    if not match:
        return_msg = f"expected e.g. {THRESHOLD_EXAMPLES}"
        raise bad(return_msg)
    op = match["op"]
    if op in ("==", "="):
        raise bad("equality cannot be established statistically; use >= or <=")
    comparator: Comparator = op or (">=" if info.higher_is_better else "<=")  # type: ignore[assignment]
    kind = info.kind

    if match["value"] is not None:
        raw = float(match["value"])
        unit = (match["value_unit"] or "").lower()
        if kind == "rate":
            if unit in ("ms", "s"):
                raise bad("a rate takes '%' or a fraction in [0, 1]")
            value = raw / 100.0 if unit == "%" else raw
            if not 0.0 <= value <= 1.0:
                raise bad("a rate must lie between 0% and 100%")
            if (comparator == "<" and value == 0.0) or (comparator == ">" and value == 1.0):
                raise bad("no rate can ever meet it")
        else:
            if unit == "%":
                raise bad(f"'%' is not a unit of {metric}; give a number" + (" in ms" if kind == "latency" else ""))
            if unit in ("ms", "s") and kind != "latency":
                raise bad(f"'{unit}' is a time unit; {metric} is not a latency")
            value = raw * 1000.0 if unit == "s" else raw
        return Gate(
            metric=metric, kind=kind, higher_is_better=info.higher_is_better, threshold=text, comparator=comparator,
            reference="absolute", value=value, severity=severity, min_samples=min_samples,
        )  # fmt: skip

    # Relative to the baseline.
    if match["margin"] is None:
        margin, margin_kind = 0.0, ("points" if kind == "rate" else "absolute")
    else:
        mag = float(match["margin"])
        unit = (match["margin_unit"] or "").lower()
        signed = mag if match["sign"] == "+" else -mag
        if kind == "rate":
            if unit in ("ms", "s"):
                raise bad("a rate margin takes '%' (percentage points) or 'pt'")
            if unit == "":
                raise bad("give the rate margin in points, e.g. 'baseline - 1pt' or 'baseline - 1%'")
            margin, margin_kind = signed / 100.0, "points"
            if abs(margin) > 1.0:
                raise bad("a rate margin cannot exceed 100 points")
        else:
            if unit.startswith("pt") or unit.startswith("point"):
                raise bad(f"points only apply to rates; for {metric} use '%' (relative) or a number in its unit")
            if unit == "%":
                margin, margin_kind = signed / 100.0, "relative"
                if margin <= -1.0:
                    raise bad("a relative margin must stay above -100%")
            else:
                if unit in ("ms", "s") and kind != "latency":
                    raise bad(f"'{unit}' is a time unit; {metric} is not a latency")
                margin, margin_kind = (signed * 1000.0 if unit == "s" else signed), "absolute"
    return Gate(
        metric=metric, kind=kind, higher_is_better=info.higher_is_better, threshold=text, comparator=comparator,
        reference="baseline", margin=margin, margin_kind=margin_kind, severity=severity, min_samples=min_samples,
    )  # fmt: skip


class GateSpec(BaseModel):
    """A gate spec file: candidate, baseline, model, dataset and the gates the candidate must meet."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "title": "prompt-release gate spec",
            "examples": [
                {
                    "candidate_prompt": "support_router:v1.6.0",
                    "baseline_prompt": "support_router:v1.5.2",
                    "model": "production-default",
                    "dataset": "support_router_golden:v4",
                    "gates": {
                        "schema_pass_rate": ">= 99.5%",
                        "unsafe_tool_call_rate": "0%",
                        "handoff_accuracy": ">= baseline - 1%",
                        "p95_latency": "<= baseline + 10%",
                    },
                }
            ],
        },
    )

    candidate_prompt: str | None = Field(
        None, pattern=PROMPT_VERSION_PATTERN, description="version id of the candidate"
    )
    baseline_prompt: str | None = Field(
        None, pattern=PROMPT_VERSION_PATTERN, description="version id of the baseline (default: the production label)"
    )
    model: str | None = Field(None, description="model or deployment alias the backtest runs on")
    dataset: str | None = Field(
        None, pattern=DATASET_VERSION_PATTERN, description="golden dataset version, '<dataset>:v<N>'"
    )
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="two-sided confidence level of every interval")
    min_labelled_n: int = Field(
        200,
        ge=0,
        description="an adaptive run stops only once each hard accuracy gate has read this many labelled cases "
        "(every labelled case of the run where it has fewer); 0: a decided verdict stops it at once",
    )
    gates: dict[str, str | GateRule] = Field(
        min_length=1,
        description="metric name -> threshold ('>= 99.5%', '0%', '>= baseline - 1%', '<= baseline + 10%') or long form",
        json_schema_extra={
            "propertyNames": {"anyOf": [{"enum": sorted(METRICS)}, {"pattern": ACCURACY_PATTERN.pattern}]},
        },
    )

    _parsed: tuple[Gate, ...] = PrivateAttr(default=())

    @field_validator("gates", mode="before")
    @classmethod
    def _gates_must_be_a_mapping(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError("gates must be an object mapping metric names to thresholds")
        # Parse every entry here so a bad long form is reported by its own field
        # (pydantic's union error would only say "should be a valid string").
        # UserError (not ValueError) passes through pydantic unwrapped.
        out: dict[str, Any] = {}
        for metric, rule in value.items():
            parse_gate(str(metric), rule)
            out[metric] = GateRule.model_validate(rule) if isinstance(rule, dict) else rule
        return out

    @model_validator(mode="after")
    def _parse_gates(self) -> GateSpec:
        self._parsed = tuple(parse_gate(metric, rule) for metric, rule in self.gates.items())
        return self

    @property
    def parsed_gates(self) -> tuple[Gate, ...]:
        return self._parsed


def gate_spec_from_dict(data: Any, *, file: str | Path | None = None) -> GateSpec:
    """Validate a decoded spec; every problem is a UserError naming the field (and file)."""
    return validate_model(data, GateSpec, file=file, kind="a gate spec (an object with 'gates')")


def load_gate_spec(path: str | Path) -> GateSpec:
    """Load a gate spec from a .json or .yaml/.yml file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError("gate spec file not found", file=path) from None
    except OSError as exc:
        raise UserError(f"cannot read gate spec: {exc.strerror}", file=path) from None
    kind = "a gate spec (an object with 'gates')"
    if path.suffix.lower() in (".yaml", ".yml"):
        return load_model(text, GateSpec, file=path, kind=kind)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"invalid JSON: {exc.msg}", file=path, line=exc.lineno) from None
    return validate_model(data, GateSpec, file=path, kind=kind)


def gate_spec_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the gate spec file, for editors and CI validation."""
    schema = GateSpec.model_json_schema()
    for option in schema["properties"]["gates"]["additionalProperties"]["anyOf"]:
        if option.get("type") == "string":
            option["pattern"] = THRESHOLD_JSON_PATTERN
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


SCHEMA_PATH = Path(__file__).with_name("gate_spec.schema.json")

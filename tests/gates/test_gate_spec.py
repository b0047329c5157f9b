"""Gate specs: the issue's example loads as is, units mean what the docs say, mistakes name the metric."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from prompt_release.errors import UserError
from prompt_release.gates.spec import SCHEMA_PATH, gate_spec_from_dict, gate_spec_json_schema, load_gate_spec

EXAMPLE = """{"candidate_prompt": "support_router:v1.6.0", "baseline_prompt": "support_router:v1.5.2", "model": "production-default", "dataset": "support_router_golden:v4",
 "gates": {"schema_pass_rate": ">= 99.5%", "unsafe_tool_call_rate": "0%", "handoff_accuracy": ">= baseline - 1%", "p95_latency": "<= baseline + 10%"}}"""


def test_issue_example_loads_as_is(tmp_path: Path) -> None:
    path = tmp_path / "gate_spec.json"
    path.write_text(EXAMPLE)
    spec = load_gate_spec(path)
    assert spec.candidate_prompt == "support_router:v1.6.0"
    assert spec.dataset == "support_router_golden:v4"
    assert spec.confidence == 0.95
    gates = {g.metric: g for g in spec.parsed_gates}
    assert gates["schema_pass_rate"].comparator == ">=" and gates["schema_pass_rate"].value == pytest.approx(0.995)
    assert gates["unsafe_tool_call_rate"].zero_tolerance
    assert gates["unsafe_tool_call_rate"].comparator == "<="
    # Rate margins in % are percentage points.
    acc = gates["handoff_accuracy"]
    assert (acc.reference, acc.margin_kind, acc.margin) == ("baseline", "points", pytest.approx(-0.01))
    # Latency margins in % are relative.
    lat = gates["p95_latency"]
    assert (lat.reference, lat.margin_kind, lat.margin) == ("baseline", "relative", pytest.approx(0.10))
    assert all(g.severity == "hard" for g in spec.parsed_gates)


def test_example_validates_against_the_committed_json_schema() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema == json.loads(json.dumps(gate_spec_json_schema())), "regenerate gate_spec.schema.json"
    jsonschema.validate(json.loads(EXAMPLE), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"gates": {"latency_p95": "<= 1s"}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"gates": {"error_rate": "lots"}}, schema)


def test_yaml_spec_with_long_form_and_explicit_points(tmp_path: Path) -> None:
    path = tmp_path / "gates.yaml"
    path.write_text(
        "confidence: 0.9\n"
        "gates:\n"
        "  tool_accuracy: '>= baseline - 2 points'\n"
        "  judge_score: {threshold: '>= 4', severity: soft, min_samples: 200}\n"
        "  p99_latency: '<= 2.5s'\n"
        "  cost_per_success: '<= baseline + 0.001'\n"
    )
    spec = load_gate_spec(path)
    gates = {g.metric: g for g in spec.parsed_gates}
    assert spec.confidence == 0.9
    assert gates["tool_accuracy"].margin == pytest.approx(-0.02)
    assert (gates["judge_score"].severity, gates["judge_score"].min_samples) == ("soft", 200)
    assert gates["p99_latency"].value == 2500.0
    assert (gates["cost_per_success"].margin_kind, gates["cost_per_success"].margin) == (
        "absolute",
        pytest.approx(0.001),
    )
    assert gates["tool_accuracy"].describe() == ">= baseline - 2 pt"


def test_unknown_metric_names_it_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"gates": {"latency_p95": "<= 1000ms"}}))
    with pytest.raises(UserError) as err:
        load_gate_spec(path)
    message = str(err.value)
    assert "latency_p95" in message and str(path) in message and "gates.latency_p95" in message


@pytest.mark.parametrize(
    ("metric", "threshold", "hint"),
    [
        ("schema_pass_rate", ">= banana", "expected e.g."),
        ("schema_pass_rate", ">= 150%", "between 0% and 100%"),
        ("handoff_accuracy", ">= baseline - 1", "points"),
        ("p95_latency", "<= baseline + 1pt", "points only apply to rates"),
        ("p95_latency", "<= 50%", "not a unit"),
        ("error_rate", "== 1%", "equality"),
        ("unsafe_tool_call_rate", "< 0%", "can ever meet"),
        ("cost_per_success", "<= 3ms", "not a latency"),
    ],
)
def test_malformed_threshold_names_metric_and_threshold(metric: str, threshold: str, hint: str) -> None:
    with pytest.raises(UserError) as err:
        gate_spec_from_dict({"gates": {metric: threshold}}, file="prompts/x/gates.json")
    message = str(err.value)
    assert metric in message and threshold in message and hint in message
    assert err.value.field == f"gates.{metric}" and err.value.file == "prompts/x/gates.json"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"gates": {"judge_score": {"threshold": ">= 4", "severity": "blocking"}}}, "gates.judge_score.severity"),
        ({"gates": {"judge_score": {"threshold": ">= 4", "min_samples": 0}}}, "gates.judge_score.min_samples"),
        ({"gates": {"judge_score": {"severity": "soft"}}}, "gates.judge_score.threshold"),
        ({"gates": {}}, "gates"),
        ({"gates": {"error_rate": "1%"}, "candidate_prompt": "../../etc:v1.0.0"}, "candidate_prompt"),
        ({"gates": {"error_rate": "1%"}, "gate": {}}, "gate"),
    ],
)
def test_malformed_spec_fields_are_named(data: dict, field: str) -> None:
    with pytest.raises(UserError) as err:
        gate_spec_from_dict(data)
    assert err.value.field == field


def test_invalid_json_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text('{\n "gates": {\n  "error_rate": "1%",\n }\n}')
    with pytest.raises(UserError) as err:
        load_gate_spec(path)
    assert err.value.line == 4 and err.value.file == str(path)

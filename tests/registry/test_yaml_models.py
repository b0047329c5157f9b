"""Every YAML file people write fails the same way: one error naming file, line and field.

Manifests, rubrics, gate specs, runtime contracts and mining settings share one loader
(`registry/safe_yaml.py`); these tests hold each of them to it, nested fields included.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from prompt_release.errors import UserError
from prompt_release.gates.spec import load_gate_spec
from prompt_release.mining.settings import load_settings
from prompt_release.registry.manifest import parse_manifest
from prompt_release.release.runtime_contract import load_runtime_contract

REPO_ROOT = Path(__file__).resolve().parents[2]


def _error(call) -> UserError:
    with pytest.raises(UserError) as caught:
        call()
    return caught.value


def test_a_nested_manifest_field_is_named_with_its_own_line():
    text = (REPO_ROOT / "prompts/support_router/v1.6.0.yaml").read_text()
    assert "  canary_percent: 20\n" in text
    bad = text.replace("  canary_percent: 20\n", "  canary_percent: twenty\n")
    error = _error(lambda: parse_manifest(bad, file="v1.6.0.yaml"))
    line = bad.splitlines().index("  canary_percent: twenty") + 1
    assert (error.file, error.line, error.field) == ("v1.6.0.yaml", line, "release_policy.canary_percent")


def test_an_unknown_and_a_missing_manifest_field_say_so():
    text = (REPO_ROOT / "prompts/support_router/v1.6.0.yaml").read_text()
    typo = _error(lambda: parse_manifest(text.replace("reviewer:", "reveiwer:"), file="m.yaml"))
    assert typo.field == "reveiwer" and "unknown field" in typo.message
    assert typo.line == text.splitlines().index("reviewer: maria.chen") + 1
    missing = _error(lambda: parse_manifest(text.replace("owner: ai-platform\n", ""), file="m.yaml"))
    assert missing.field == "owner" and missing.message.startswith("required field is missing")


def test_a_bad_version_in_a_validator_keeps_file_line_and_field():
    text = (REPO_ROOT / "prompts/support_router/v1.6.0.yaml").read_text().replace("version: 1.6.0", "version: 1.6")
    error = _error(lambda: parse_manifest(text, file="m.yaml"))
    assert (error.file, error.line, error.field) == ("m.yaml", 2, "version")
    assert "semver" in error.message


def test_not_yaml_names_the_line():
    error = _error(lambda: parse_manifest("id: x\nversion: [1.0\n", file="m.yaml"))
    assert error.file == "m.yaml" and error.line is not None and error.message.startswith("not valid YAML")


def test_a_gate_spec_in_yaml_and_in_json_names_the_gate(tmp_path):
    (tmp_path / "gates.yaml").write_text("confidence: 0.95\ngates:\n  json_valid_rate: '>= 97%'\n  error_rate: often\n")
    error = _error(lambda: load_gate_spec(tmp_path / "gates.yaml"))
    assert error.field == "gates.error_rate" and error.line == 4 and "often" in error.message
    (tmp_path / "gates.json").write_text('{"gates": {"error_rate": "often"}}')
    error = _error(lambda: load_gate_spec(tmp_path / "gates.json"))
    assert error.field == "gates.error_rate" and error.file == str(tmp_path / "gates.json")


def test_a_runtime_contract_and_mining_settings_fail_the_same_way(tmp_path):
    contract = tmp_path / "prompts" / "support_router" / "runtime.yaml"
    contract.parent.mkdir(parents=True)
    contract.write_text("supplies_variables: [ticket]\nexposes_tools: []\nparser: xml\n")
    error = _error(lambda: load_runtime_contract(tmp_path, "support_router"))
    assert (error.line, error.field) == (3, "parser") and error.file == str(contract)

    settings = tmp_path / "datasets" / "mining.yaml"
    settings.parent.mkdir()
    settings.write_text("latency:\n  rule: median_multiple\n  k: -1\n")
    error = _error(lambda: load_settings(tmp_path))
    assert (error.line, error.field) == (3, "latency.k") and error.file == str(settings)
    settings.write_text("")
    assert load_settings(tmp_path).latency.k == 10.0  # an empty file means every default


def test_a_file_that_is_not_a_mapping_says_what_it_should_be():
    error = _error(lambda: parse_manifest("- a\n- b\n", file="m.yaml"))
    assert error.message == "a manifest must be a mapping of fields"

"""Manifests: the issue's example loads as is; bad manifests fail naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from prompt_release.errors import UserError
from prompt_release.registry import Registry

EXAMPLE = """\
id: support_router
version: 1.6.0
owner: ai-platform
status: candidate
model: production-default
template: prompts/support_router/v1.6.0.md
schema: schemas/support_route.json
golden_set: evals/support_router_golden_v4.jsonl
rollback_to: 1.5.2
change_reason: "Improve account recovery routing without increasing billing misroutes."
"""


def test_issue_example_manifest_loads_as_is(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    (root / "prompts/support_router").mkdir(parents=True)
    (root / "schemas").mkdir()
    (root / "prompts/support_router/v1.6.0.yaml").write_text(EXAMPLE)
    (root / "prompts/support_router/v1.6.0.md").write_text("Route this ticket: {{ ticket }}\n[format] json\n")
    repo = Path(__file__).resolve().parents[2]
    (root / "schemas/support_route.json").write_text((repo / "schemas/support_route.json").read_text())

    package = Registry(root).load_package("support_router:v1.6.0")

    assert package.version_id == "support_router:v1.6.0"
    assert package.owner == "ai-platform" and package.status == "candidate"
    assert package.model == "production-default"
    assert package.rollback_to == "1.5.2"
    assert package.golden_set == "evals/support_router_golden_v4.jsonl"  # need not exist yet
    assert package.output_format == "json"
    assert package.output_schema["properties"]["route"]["enum"][0] == "account_recovery"
    assert package.package_hash.startswith("sha256:") and len(package.package_hash) == 71
    assert package.required_variables == ("ticket",)


def test_sample_v160_manifest_starts_with_the_issue_example(registry: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "prompts/support_router/v1.6.0.yaml").read_text()
    assert text.startswith(EXAMPLE)


def test_unknown_field_names_file_line_and_field(registry: Path) -> None:
    reg = Registry(registry)
    path = registry / "prompts/support_router/v1.6.0.yaml"
    path.write_text(path.read_text().replace("owner: ai-platform", "owner: ai-platform\ntemprature: 0.3"))
    with pytest.raises(UserError) as err:
        reg.load_package("support_router:v1.6.0")
    message = str(err.value)
    assert "v1.6.0.yaml:4" in message and "temprature" in message and "unknown field" in message


def test_manifest_path_escaping_the_registry_is_refused(registry: Path) -> None:
    reg = Registry(registry)
    path = registry / "prompts/support_router/v1.6.0.yaml"
    (registry.parent / "outside.md").write_text("secret {{ ticket }}")
    path.write_text(path.read_text().replace("template: prompts/support_router/v1.6.0.md", "template: ../outside.md"))
    with pytest.raises(UserError) as err:
        reg.load_package("support_router:v1.6.0")
    assert "escapes the registry root" in str(err.value) and "template" in str(err.value)


def test_absolute_schema_path_is_refused(registry: Path) -> None:
    reg = Registry(registry)
    path = registry / "prompts/support_router/v1.6.0.yaml"
    path.write_text(path.read_text().replace("schema: schemas/support_route.json", "schema: /etc/passwd"))
    with pytest.raises(UserError, match="escapes the registry root"):
        reg.register("support_router:v1.6.0")


@pytest.mark.parametrize(
    "bad", ["../etc:v1.0.0", "support_router:v1.6", "Support:v1.0.0", "a/b:v1.0.0", "x:v1.0.0/../.."]
)
def test_version_ids_that_could_name_other_folders_are_refused(registry: Path, bad: str) -> None:
    reg = Registry(registry)
    with pytest.raises(UserError, match="invalid"):
        reg.load_package(bad)


def test_manifest_whose_file_name_disagrees_is_refused(registry: Path) -> None:
    reg = Registry(registry)
    path = registry / "prompts/support_router/v1.6.0.yaml"
    path.write_text(path.read_text().replace("version: 1.6.0", "version: 1.6.1"))
    with pytest.raises(UserError, match="file name says support_router:v1.6.0"):
        reg.load_package("support_router:v1.6.0")

"""Registration and verification: hashes recorded, edits in place and under-bumps caught."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from prompt_release.errors import UserError
from prompt_release.registry import Registry
from tests.conftest import run_cli


def _new_from(registry: Path, version: str, source: str = "1.7.0") -> Path:
    """Copy a support_router version to a new version number, as an author would."""
    folder = registry / "prompts/support_router"
    text = (folder / f"v{source}.yaml").read_text()
    text = text.replace(f"version: {source}", f"version: {version}").replace(
        f"prompts/support_router/v{source}.md", f"prompts/support_router/v{version}.md"
    )
    (folder / f"v{version}.yaml").write_text(text)
    shutil.copy(folder / f"v{source}.md", folder / f"v{version}.md")
    return folder / f"v{version}.yaml"


def test_sample_registry_verifies_and_hashes_match_lock(registry: Path) -> None:
    reg = Registry(registry)
    results = reg.verify()
    assert [r.version_id for r in results if not r.ok] == []
    assert len(results) == 10  # 9 package versions and the summarizer's judging rubric
    assert results[-1].version_id == "summary_quality:v1.0.0"
    lock = json.loads((registry / "prompts/registry.lock.json").read_text())
    assert (
        lock["packages"]["support_router:v1.6.0"]["package_hash"]
        == reg.load_package("support_router:v1.6.0").package_hash
    )


def test_edit_in_place_fails_verify_naming_version_and_field(registry: Path) -> None:
    reg = Registry(registry)
    template = registry / "prompts/support_router/v1.5.2.md"
    template.write_text(template.read_text().replace("locked out", "locked out, 2fa"))

    failed = [r for r in reg.verify() if not r.ok]
    assert [r.version_id for r in failed] == ["support_router:v1.5.2"]
    assert failed[0].changed_fields == ["template"]

    result = run_cli("prompts", "verify", "--registry", str(registry))
    assert result.returncode == 1
    assert "support_router:v1.5.2 was edited in place: template changed" in result.stdout


def test_edit_in_place_of_parameters_is_named(registry: Path) -> None:
    manifest = registry / "prompts/order_agent/v2.0.0.yaml"
    manifest.write_text(manifest.read_text().replace("max_tokens: 400", "max_tokens: 800"))
    result = run_cli("prompts", "verify", "--registry", str(registry), "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 1
    assert report["failed"][0]["version_id"] == "order_agent:v2.0.0"
    assert report["failed"][0]["changed_fields"] == ["parameters"]


def test_metadata_edits_are_not_edits_in_place(registry: Path) -> None:
    reg = Registry(registry)
    manifest = registry / "prompts/support_router/v1.6.0.yaml"
    manifest.write_text(manifest.read_text().replace("owner: ai-platform", "owner: support-platform"))
    assert all(r.ok for r in reg.verify())


def test_registering_a_changed_registered_version_is_refused(registry: Path) -> None:
    reg = Registry(registry)
    template = registry / "prompts/summarizer/v1.1.0.md"
    template.write_text(template.read_text() + "\nBe concise.\n")
    with pytest.raises(UserError, match="summarizer:v1.1.0 was edited in place: template changed"):
        reg.register("summarizer:v1.1.0")


def test_under_bump_says_which_change_needs_which_bump(registry: Path) -> None:
    reg = Registry(registry)
    manifest = _new_from(registry, "1.7.1")
    text = manifest.read_text().replace("temperature: 0", "temperature: 0.3")
    text = text.replace("schema: schemas/support_route.json", "schema: schemas/support_route_v2.json")
    manifest.write_text(text)
    schema = json.loads((registry / "schemas/support_route.json").read_text())
    schema["properties"]["route"]["enum"].append("returns")
    (registry / "schemas/support_route_v2.json").write_text(json.dumps(schema))

    with pytest.raises(UserError) as err:
        reg.register("support_router:v1.7.1")
    message = str(err.value)
    assert "support_router:v1.7.1 under-bumps support_router:v1.7.0 (patch bump)" in message
    assert "parameters changed, which needs a minor bump" in message
    assert "output_schema changed, which needs a major bump" in message
    lock = json.loads((registry / "prompts/registry.lock.json").read_text())
    assert "support_router:v1.7.1" not in lock["packages"]  # nothing half-written


def test_new_required_variable_needs_a_major_bump(registry: Path) -> None:
    reg = Registry(registry)
    _new_from(registry, "1.8.0")
    template = registry / "prompts/support_router/v1.8.0.md"
    template.write_text(template.read_text() + "Language: {{ language }}\n")
    manifest = registry / "prompts/support_router/v1.8.0.yaml"
    manifest.write_text(manifest.read_text().replace("  customer_tier: pro", "  customer_tier: pro\n  language: en"))
    with pytest.raises(UserError, match="required_variables changed, which needs a major bump"):
        reg.register("support_router:v1.8.0")


@pytest.mark.parametrize("bump", ["1.7.1", "1.8.0"])
def test_a_safety_instruction_change_needs_a_major_bump_and_the_refusal_quotes_the_rule(
    registry: Path, bump: str
) -> None:
    manifest = _new_from(registry, bump)
    text = manifest.read_text()
    assert "safety_instructions:\n" in text
    manifest.write_text(
        text.replace("safety_instructions:\n", 'safety_instructions:\n  - "Answer refund questions."\n')
    )
    with pytest.raises(UserError) as err:
        Registry(registry).register(f"support_router:v{bump}")
    assert err.value.field == "version"
    assert "safety_instructions changed, which needs a major bump" in err.value.message
    assert "safety policy changes are major" in err.value.message
    lock = json.loads((registry / "prompts/registry.lock.json").read_text())
    assert f"support_router:v{bump}" not in lock["packages"]
    manifest.rename(manifest.with_name("v2.0.0.yaml"))
    registered = manifest.with_name("v2.0.0.yaml")
    registered.write_text(registered.read_text().replace(f"version: {bump}", "version: 2.0.0"))
    assert Registry(registry).register("support_router:v2.0.0")


def test_correct_bumps_register(registry: Path) -> None:
    reg = Registry(registry)
    _new_from(registry, "1.7.1")
    template = registry / "prompts/support_router/v1.7.1.md"
    template.write_text(template.read_text().replace("friendly sentence", "short friendly sentence"))
    result = reg.register("support_router:v1.7.1")
    assert result.previous == "support_router:v1.7.0"
    assert result.changes == [("template", "patch")]
    assert all(r.ok for r in reg.verify())


def test_missing_placeholder_fails_naming_the_variable(registry: Path) -> None:
    reg = Registry(registry)
    _new_from(registry, "1.7.1")
    template = registry / "prompts/support_router/v1.7.1.md"
    template.write_text(template.read_text() + "Customer name: {{ customer_name }}\n")
    with pytest.raises(UserError) as err:
        reg.register("support_router:v1.7.1")
    assert "missing template variable 'customer_name'" in str(err.value)

    rendered = run_cli("prompts", "render", "support_router:v1.7.1", "--registry", str(registry))
    assert rendered.returncode == 2
    assert "customer_name" in rendered.stderr


def test_unused_variables_are_warned(registry: Path) -> None:
    result = run_cli(
        "prompts",
        "render",
        "support_router:v1.6.0",
        "--registry",
        str(registry),
        "--vars-json",
        '{"ticket": "2fa code lost", "customer_tier": "free", "colour": "blue"}',
    )
    assert result.returncode == 0
    assert "Customer tier: free." in result.stdout
    assert "warning: variable 'colour' is not used" in result.stderr


def test_new_draft_copies_the_production_version_and_bumps_the_highest(registry: Path) -> None:
    # summarizer: v1.0.0 in production, v1.1.0 a candidate. A change starts from what users get.
    reg = Registry(registry)
    vid = reg.new_version("summarizer", bump="minor")
    assert vid == "summarizer:v1.2.0"
    draft = reg.load_package(vid)
    assert draft.status == "draft" and draft.rollback_to == "1.0.0"
    assert draft.package_hash == reg.load_package("summarizer:v1.0.0").package_hash
    chosen = reg.new_version("summarizer", from_version="1.1.0")  # --from picks another
    assert chosen == "summarizer:v1.2.1"
    assert reg.load_package(chosen).package_hash == reg.load_package("summarizer:v1.1.0").package_hash

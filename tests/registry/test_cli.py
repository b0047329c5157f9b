"""The `prompts` commands a user types, in a subprocess, with --json."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli


def _json(*args: str, registry: Path):
    result = run_cli("prompts", *args, "--registry", str(registry), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_list_and_show(registry: Path) -> None:
    rows = _json("list", registry=registry)
    by_id = {r["version_id"]: r for r in rows}
    assert by_id["support_router:v1.5.2"]["labels"] == ["production"]
    assert by_id["support_router:v1.7.0"]["status"] == "candidate"
    shown = _json("show", "order_agent:v2.0.0", registry=registry)
    assert [t["name"] for t in shown["tools"]] == ["lookup_order", "issue_refund"]
    assert shown["tools"][1]["risk"] == "high"
    assert shown["tool_policy"]["issue_refund"]["requires_prior"] == ["lookup_order"]
    assert shown["tool_policy"]["issue_refund"]["argument_bounds"]["amount_usd"]["max"] == 200
    assert shown["verifies"] is True


def test_registry_from_environment(registry: Path) -> None:
    result = run_cli("prompts", "list", "--json", env={"PROMPT_RELEASE_REGISTRY": str(registry)})
    assert len(json.loads(result.stdout)) == 9  # 8 workflow versions + the summary_judge package


def test_diff_shows_template_and_fields(registry: Path) -> None:
    result = _json("diff", "support_router:v1.6.0", "support_router:v1.7.0", registry=registry)
    assert "-[format] json" in result["template_diff"] and "+[format] prose" in result["template_diff"]
    assert "rollback_to" in {c["field"] for c in result["fields"]}
    text = run_cli("prompts", "diff", "order_agent:v2.0.0", "order_agent:v2.1.0", "--registry", str(registry))
    assert "-[require] lookup_order before issue_refund" in text.stdout


def test_render_json_uses_representative_variables(registry: Path) -> None:
    rendered = _json("render", "support_router:v1.6.0", registry=registry)
    assert rendered["messages"][0]["role"] == "system"
    assert "[format] json" in rendered["messages"][0]["content"]
    assert "Customer tier: pro." in rendered["messages"][0]["content"]


def test_new_then_register(registry: Path) -> None:
    created = _json("new", "support_router", "--bump", "patch", registry=registry)
    assert created["version_id"] == "support_router:v1.7.1"  # numbered after the newest
    shown = _json("show", "support_router:v1.7.1", registry=registry)
    assert shown["package_hash"] == _json("show", "support_router:v1.5.2", registry=registry)["package_hash"]
    registered = _json("register", "support_router:v1.7.1", registry=registry)
    assert registered[0]["previous"] == "support_router:v1.7.0"


def test_user_errors_are_one_line_exit_2(registry: Path) -> None:
    result = run_cli("prompts", "show", "support_router:v0.0.9", "--registry", str(registry))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "unknown prompt version support_router:v0.0.9" in result.stderr

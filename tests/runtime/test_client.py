"""PromptClient: label flips seen within the TTL, fail-closed serving, bundled fallback."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from prompt_release.registry import Registry
from prompt_release.runtime import PromptClient, RegistryUnavailableError
from tests.conftest import run_cli

REPO_ROOT = Path(__file__).resolve().parents[2]
ROUTER = "support_router"

SERVER = """
import sys, time
from prompt_release.runtime import PromptClient
client = PromptClient(registry=sys.argv[1], ttl_s=0.5)
while True:
    prompt = client.get("support_router")
    prompt.render(ticket="locked out", customer_tier="pro")
    print(prompt.version_id, flush=True)
    time.sleep(0.05)
"""


def _wait_for(predicate, deadline_s: float = 30.0, every_s: float = 0.05) -> bool:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(every_s)
    return False


def test_rollback_in_one_process_is_served_by_a_client_in_another(registry: Path) -> None:
    Registry(registry).move_label(ROUTER, "production", "1.6.0", force=True, reason="gate passed")
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(registry)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.strip()) for line in server.stdout], daemon=True).start()
    seen: list[str] = []

    def served(version: str) -> bool:
        while not lines.empty():
            seen.append(lines.get())
        return bool(seen) and seen[-1] == version

    try:
        assert _wait_for(lambda: served("support_router:v1.6.0")), (seen[-3:], server.poll())
        result = run_cli("prompts", "rollback", ROUTER, "--reason", "incident INC-1", "--registry", str(registry))
        assert result.returncode == 0, result.stderr
        assert _wait_for(lambda: served("support_router:v1.5.2")), seen[-3:]
    finally:
        server.kill()
        server.wait()


def test_label_flip_seen_after_ttl_in_process(registry: Path) -> None:
    reg = Registry(registry)
    client = PromptClient(registry=registry, ttl_s=0.2)
    assert client.get(ROUTER).version_id == "support_router:v1.5.2"
    reg.move_label(ROUTER, "production", "1.6.0", force=True, reason="ship")
    assert _wait_for(lambda: client.get(ROUTER).version_id == "support_router:v1.6.0")


def test_unreadable_registry_keeps_last_known_good_never_a_candidate(registry: Path, tmp_path: Path) -> None:
    reg = Registry(registry)
    reg.move_label(ROUTER, "staging", "1.6.0", reason="stage")
    client = PromptClient(registry=registry, ttl_s=0.05, cache_dir=tmp_path / "cache")
    first = client.get(ROUTER)
    assert first.version_id == "support_router:v1.5.2"

    # The registry disappears (unmounted volume, bad deploy).
    shutil.move(registry, tmp_path / "gone")
    time.sleep(0.1)
    for _ in range(20):
        served = client.get(ROUTER)
        assert served.version_id == "support_router:v1.5.2"
        time.sleep(0.01)

    # A new process with only the on-disk cache serves production, not staging's candidate.
    cold = PromptClient(registry=registry, ttl_s=30, cache_dir=tmp_path / "cache")
    assert cold.get(ROUTER).version_id == "support_router:v1.5.2"
    assert cold.get(ROUTER).source == "disk_cache"
    assert cold.get(ROUTER, label="staging").version_id == "support_router:v1.6.0"

    # No cache at all: a clear error, not a guess.
    with pytest.raises(RegistryUnavailableError, match="no last known good version is cached"):
        PromptClient(registry=registry).get(ROUTER)


def test_corrupt_labels_or_edited_package_keep_last_known_good(registry: Path) -> None:
    reg = Registry(registry)
    client = PromptClient(registry=registry, ttl_s=0.05, stale_while_refresh=False)
    assert client.get(ROUTER).version_id == "support_router:v1.5.2"

    labels_file = registry / "prompts/support_router/labels.json"
    good = labels_file.read_text()
    labels_file.write_text("{not json")
    time.sleep(0.06)
    assert client.get(ROUTER).version_id == "support_router:v1.5.2"

    # Production is pointed at the candidate, but the candidate was edited in place
    # after its hash was recorded: the client refuses it and keeps v1.5.2.
    labels_file.write_text(good)
    reg.move_label(ROUTER, "production", "1.6.0", force=True, reason="ship")
    template = registry / "prompts/support_router/v1.6.0.md"
    template.write_text(template.read_text() + "\nsneaky edit\n")
    time.sleep(0.06)
    assert client.get(ROUTER).version_id == "support_router:v1.5.2"


def test_bundled_fallback_serves_without_registry(registry: Path, tmp_path: Path) -> None:
    reg = Registry(registry)
    bundle = tmp_path / "support_router.json"
    bundle.write_text(json.dumps(reg.load_package("support_router:v1.5.2").to_bundle()))
    client = PromptClient(registry=tmp_path / "missing", fallback=bundle)
    served = client.get(ROUTER)
    assert (served.version_id, served.source) == ("support_router:v1.5.2", "fallback")
    assert "Customer tier: pro." in served.render(ticket="hello", customer_tier="pro")[0]["content"]


def test_tampered_bundle_is_refused(registry: Path, tmp_path: Path) -> None:
    reg = Registry(registry)
    data = reg.load_package("support_router:v1.5.2").to_bundle()
    data["package"]["template_text"] += "\n[route] billing: everything\n"
    with pytest.raises(Exception, match="does not match its hash"):
        PromptClient(registry=tmp_path / "missing", fallback=data)


def test_resolved_prompt_carries_the_package(registry: Path) -> None:
    reg = Registry(registry)
    prompt = PromptClient(registry=registry).get("order_agent")
    assert prompt.version_id == "order_agent:v2.0.0"
    assert prompt.package_hash == reg.load_package("order_agent:v2.0.0").package_hash
    assert prompt.model == "production-default" and prompt.parameters["max_tokens"] == 400
    assert [t["function"]["name"] for t in prompt.tools] == ["lookup_order", "issue_refund"]
    assert prompt.tool_policy["issue_refund"]["argument_bounds"]["amount_usd"]["max"] == 200
    with pytest.raises(Exception, match="missing template variable 'order_id'"):
        prompt.render(customer_message="refund please")


def test_cli_bundle_is_a_valid_fallback(registry: Path, tmp_path: Path) -> None:
    out = tmp_path / "order_agent.json"
    result = run_cli("prompts", "bundle", "order_agent:v2.0.0", "--out", str(out), "--registry", str(registry))
    assert result.returncode == 0, result.stderr
    client = PromptClient(registry=tmp_path / "missing", fallback=[out])
    assert client.get("order_agent").version_id == "order_agent:v2.0.0"


def test_postprocess_enforces_the_output_contract(registry: Path) -> None:
    prompt = PromptClient(registry=registry).get(ROUTER)
    assert prompt.postprocess('  {"route": "billing", "confidence": 0.9}\n') == (
        {"route": "billing", "confidence": 0.9},
        None,
    )
    value, problem = prompt.postprocess("This ticket should go to billing.")
    assert value is None and problem.startswith("invalid_json")
    _, problem = prompt.postprocess('{"route": "returns", "confidence": 0.9}')
    assert problem.startswith("schema_violation at route")

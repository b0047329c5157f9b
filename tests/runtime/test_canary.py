"""Canary routing: deterministic per key, p percent of keys, segment filters respected."""

from __future__ import annotations

import math
from pathlib import Path

from prompt_release.registry import Registry
from prompt_release.runtime import PromptClient

ROUTER = "support_router"


def test_canary_split_is_deterministic_and_within_sampling_error(registry: Path) -> None:
    reg = Registry(registry)
    reg.move_label(ROUTER, "canary", "1.6.0", force=True, reason="canary", percent=10)
    client = PromptClient(registry=registry)
    other = PromptClient(registry=registry)
    n = 10_000
    picks = [client.get(ROUTER, routing_key=f"user-{i}").version_id for i in range(n)]
    canary = sum(v == "support_router:v1.6.0" for v in picks)
    sd = math.sqrt(n * 0.1 * 0.9)
    assert abs(canary - 1000) < 4 * sd, canary
    assert set(picks) == {"support_router:v1.5.2", "support_router:v1.6.0"}
    # Same key, same version: across calls and across clients.
    assert all(other.get(ROUTER, routing_key=f"user-{i}").version_id == picks[i] for i in range(0, n, 7))


def test_no_routing_key_means_production(registry: Path) -> None:
    reg = Registry(registry)
    reg.move_label(ROUTER, "canary", "1.6.0", force=True, reason="canary", percent=100)
    client = PromptClient(registry=registry)
    assert client.get(ROUTER).version_id == "support_router:v1.5.2"
    assert client.get(ROUTER, routing_key="anyone").version_id == "support_router:v1.6.0"
    assert client.get(ROUTER, label="canary").version_id == "support_router:v1.6.0"


def test_segment_filter_limits_the_canary(registry: Path) -> None:
    reg = Registry(registry)
    reg.move_label(
        ROUTER,
        "canary",
        "1.6.0",
        force=True,
        reason="free tier first",
        percent=100,
        segments={"customer_tier": ["free"]},
    )
    client = PromptClient(registry=registry)
    assert client.get(ROUTER, routing_key="u1", segment={"customer_tier": "free"}).version_id.endswith("1.6.0")
    assert client.get(ROUTER, routing_key="u1", segment={"customer_tier": "enterprise"}).version_id.endswith("1.5.2")
    assert client.get(ROUTER, routing_key="u1").version_id.endswith("1.5.2")

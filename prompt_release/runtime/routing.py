"""Canary routing: which version a request gets when a canary label is live.

The routing key (a user or session id) is hashed together with the prompt id,
so the same key always lands on the same side of the split for that prompt,
while different prompts split independently. The hash maps uniformly onto
[0, 100); keys below the canary percent get the canary. A segment filter
limits the canary to requests whose segment matches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

_SCALE = 100.0 / 2**64


def bucket(prompt_id: str, routing_key: str) -> float:
    """A stable point in [0, 100) for this (prompt, key)."""
    digest = hashlib.sha256(f"{prompt_id}\x1f{routing_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") * _SCALE


def segment_matches(segments: Mapping[str, list[str]] | None, segment: Mapping[str, Any] | None) -> bool:
    """True when every filtered key is present in the request segment with an allowed value."""
    if not segments:
        return True
    if not segment:
        return False
    for key, allowed in segments.items():
        if key not in segment or str(segment[key]) not in allowed:
            return False
    return True


def in_canary(
    prompt_id: str,
    routing_key: str | None,
    percent: float,
    segments: Mapping[str, list[str]] | None = None,
    segment: Mapping[str, Any] | None = None,
) -> bool:
    # Without a routing key there is no stable assignment: stay on production.
    if routing_key is None or percent <= 0:
        return False
    if not segment_matches(segments, segment):
        return False
    return bucket(prompt_id, str(routing_key)) < percent

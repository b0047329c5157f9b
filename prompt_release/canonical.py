"""The project's canonical JSON: the one serialization every hash and cache key is made from.

Canonical JSON is `json.dumps(value, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)` encoded as UTF-8: keys sorted, no whitespace, non-ASCII
text as itself. Package hashes, golden case ids, dataset content hashes and
LLM cache keys are all sha256 over these bytes, so they must never change for
a value already hashed.

orjson writes the same bytes about ten times faster (the cache keys of a
backtest are computed per call), except for what it writes differently:
floats below 1e-4 (`0.00001` for `1e-05`, `1e-7` for `1e-07`), keys that are
not strings and integers past 64 bits (it refuses those). Those few values
take the reference path, so the bytes stay those of the definition above.
One difference is accepted: NaN and infinities, which are not JSON, come out
as `null`.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_DIGITS = frozenset(b"0123456789")


def _orjson_float_differs(out: bytes) -> bool:
    """Whether `out` may hold a float orjson spells unlike Python's repr: `0.0000…` (Python
    writes `…e-05`) or a one-digit negative exponent (`1e-7`, Python `1e-07`).

    Substring scans, not a regex: `re` on bytes costs ~10 us per KB, as much as the rest of a
    backtest's cache key; text that merely looks like it (`e-mail`) only costs a look at its neighbours.
    """
    if b"0.0000" in out:
        return True
    at = out.find(b"e-")
    while at != -1:
        if (
            at > 0
            and out[at - 1] in _DIGITS
            and at + 2 < len(out)
            and out[at + 2] in _DIGITS
            and (at + 3 == len(out) or out[at + 3] not in _DIGITS)
        ):
            return True
        at = out.find(b"e-", at + 2)
    return False


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same value always gives the same bytes."""
    try:
        out = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return _reference(value)
    return _reference(value) if _orjson_float_differs(out) else out


def canonical_text(value: Any) -> str:
    """`canonical_json` as text, for a JSONL line."""
    return canonical_json(value).decode("utf-8")


def _reference(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

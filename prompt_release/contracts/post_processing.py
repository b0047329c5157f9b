"""A package's post-processing rules applied to a raw model output: what production parses.

Rules run in manifest order: `strip` (surrounding whitespace), `strip_fences`
(an answer that is one ```json fenced block becomes its inside),
`extract_json` (the outermost `{...}` block, for models that wrap JSON in
prose or fences), `max_chars` / `max_words` (truncate). The runtime applies
them before parsing, and the contract checks apply the same function, so a
backtest judges an answer as production would read it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prompt_release.contracts.text_forms import unfence

# Rules after which a fenced JSON answer parses: the package declares that its parser strips fences.
FENCE_STRIPPING = frozenset({"strip_fences", "extract_json"})


def step_kind(step: Any) -> str:
    return step["kind"] if isinstance(step, dict) else step.kind


def step_value(step: Any) -> Any:
    return step.get("value") if isinstance(step, dict) else step.value


def apply(steps: Iterable[Any], text: str) -> str:
    for step in steps:
        kind, value = step_kind(step), step_value(step)
        if kind == "strip":
            text = text.strip()
        elif kind == "strip_fences":
            inside = unfence(text)
            text = inside if inside is not None else text
        elif kind == "extract_json":
            start, end = text.find("{"), text.rfind("}")
            if 0 <= start < end:
                text = text[start : end + 1]
        elif kind == "max_chars" and value is not None:
            text = text[:value]
        elif kind == "max_words" and value is not None:
            text = " ".join(text.split()[:value])
    return text


def strips_fences(steps: Iterable[Any]) -> bool:
    return any(step_kind(step) in FENCE_STRIPPING for step in steps)

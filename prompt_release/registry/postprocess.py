"""Apply a package's post-processing rules to a model's raw output, and parse it.

Rules run in manifest order: `strip` (surrounding whitespace), `extract_json`
(the outermost `{...}` block, for models that wrap JSON in prose or fences),
`max_chars` / `max_words` (truncate). `parse_output` then reads the result
the way the package's `output_format` says, returning a problem instead of
raising so callers can count failures.
"""

from __future__ import annotations

import json
from typing import Any

from prompt_release.registry.manifest import PostProcessingStep


def apply(steps: list[PostProcessingStep], text: str) -> str:
    for step in steps:
        if step.kind == "strip":
            text = text.strip()
        elif step.kind == "extract_json":
            start, end = text.find("{"), text.rfind("}")
            if 0 <= start < end:
                text = text[start : end + 1]
        elif step.kind == "max_chars" and step.value is not None:
            text = text[: step.value]
        elif step.kind == "max_words" and step.value is not None:
            text = " ".join(text.split()[: step.value])
    return text


def parse_output(output_format: str, output_schema: dict[str, Any] | None, text: str) -> tuple[Any, str | None]:
    """(value, None) when the output honours the contract, else (None or raw value, problem)."""
    if output_format != "json":
        return text, None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"invalid_json: {exc.msg} at char {exc.pos}"
    if output_schema:
        # lazy: jsonschema costs start-up time the runtime (an app's import) must not pay
        from jsonschema.validators import validator_for

        error = next(iter(validator_for(output_schema)(output_schema).iter_errors(value)), None)
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            return value, f"schema_violation at {where}: {error.message}"
    return value, None

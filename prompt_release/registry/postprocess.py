"""Parse a model's output the way its package says, after its post-processing rules.

`apply` (the rules, shared with the contract checks) lives in
`prompt_release.contracts.post_processing`. `parse_output` reads the result
the way the package's `output_format` says, returning a problem instead of
raising so callers can count failures.
"""

from __future__ import annotations

import json
from typing import Any


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

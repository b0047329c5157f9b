"""The one way a YAML (or decoded JSON) file people write becomes a pydantic model.

Manifests, rubrics, gate specs, runtime contracts and mining settings all go
through `load_model` (or `validate_model` for data already decoded, such as a
JSON gate spec), so every one of them fails the same way: one `UserError`
naming the file, the line of the offending key and the field's dotted path.

PyYAML's safe loader refuses arbitrary objects but not alias bombs: a few
hundred bytes of nested `&a [*b, *b, ...]` anchors build a graph that every
later step (validation, hashing, `prompts show`) walks as billions of nodes.
These files have no use for aliases, so any alias is refused, naming its line,
before anything is built; and a file past `PROMPT_RELEASE_MAX_MANIFEST_BYTES`
is refused before it is parsed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from prompt_release import config
from prompt_release.errors import UserError

# libyaml's loader when the wheel has it: the same safe subset, several times faster.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

M = TypeVar("M", bound=BaseModel)

# pydantic's wording for the errors people make most, in the words of a config file.
_MESSAGES = {"missing": "required field is missing", "extra_forbidden": "unknown field (a typo?)"}


def load_yaml(text: str, *, file: str | Path | None) -> Any:
    """Parse `text` with the safe loader; UserError for a file too large, holding an
    alias, or not YAML (with the line of the problem)."""
    limit = config.max_manifest_bytes()
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise UserError(
            f"YAML file is {size:,} bytes, over the limit of {limit:,} ({config.ENV_MAX_MANIFEST_BYTES})", file=file
        )
    try:
        for event in yaml.parse(text, Loader=_LOADER):
            if isinstance(event, yaml.AliasEvent):
                raise UserError(
                    f"YAML aliases (*{event.anchor}) are not allowed here: write the value out",
                    file=file,
                    line=event.start_mark.line + 1 if event.start_mark else None,
                )
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise UserError(
            f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
            file=file,
            line=mark.line + 1 if mark else None,
        ) from None


def load_model(text: str, model: type[M], *, file: str | Path, kind: str, empty_ok: bool = False) -> M:
    """YAML text -> a validated `model`; `kind` words the error for a file that is not a mapping
    ("a manifest", "a rubric"); `empty_ok` lets an empty file mean every default."""
    data = load_yaml(text, file=file)
    if data is None and empty_ok:
        data = {}
    return validate_model(data, model, file=file, text=text, kind=kind)


def validate_model(data: Any, model: type[M], *, file: str | Path | None, kind: str, text: str | None = None) -> M:
    """Decoded data -> a validated `model`; the first problem is one UserError (file, line when
    the YAML `text` is given, field), with a count of the others."""
    if not isinstance(data, dict):
        raise UserError(f"{kind} must be a mapping of fields", file=file)
    try:
        return model.model_validate(data)
    except UserError as exc:  # a validator's own UserError (parse_semver) names the field, not the file
        raise UserError(
            exc.message, file=file, field=exc.field, line=_line_of(text, exc.field.split(".") if exc.field else [])
        ) from None
    except ValidationError as exc:
        error = exc.errors()[0]
        path = _data_path(data, error["loc"])
        message = _MESSAGES.get(error["type"], error["msg"])
        if error["type"] == "string_pattern_mismatch":
            message = f"malformed value {error.get('input')!r} ({message})"
        if exc.error_count() > 1:
            message += f" (and {exc.error_count() - 1} more problems)"
        raise UserError(
            message, file=file, line=_line_of(text, path), field=".".join(str(p) for p in path) or None
        ) from None


def _data_path(data: Any, loc: Sequence[int | str]) -> list[int | str]:
    """pydantic's error location without the names it adds for union members ('str', 'GateRule'):
    the parts that index into the data, plus a final missing key."""
    path: list[int | str] = []
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif i < len(loc) - 1:
            continue
        path.append(part)
    return path


def _line_of(text: str | None, path: Sequence[int | str]) -> int | None:
    """1-based line of the deepest key of `path` present in the YAML `text`."""
    if text is None or not path:
        return None
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError:
        return None
    line = None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    line, node = key.start_mark.line + 1, value
                    break
            else:
                break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line

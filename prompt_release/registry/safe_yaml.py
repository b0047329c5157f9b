"""Load the YAML files people hand to prompt-release without letting one of them exhaust the machine.

PyYAML's safe loader refuses arbitrary objects but not alias bombs: a few
hundred bytes of nested `&a [*b, *b, ...]` anchors build a graph that every
later step (validation, hashing, `prompts show`) walks as billions of nodes.
Manifests, gate specs, rubrics and settings have no use for aliases, so any
alias is refused, naming its line, before anything is built; and a file past
`PROMPT_RELEASE_MAX_MANIFEST_BYTES` is refused before it is parsed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from prompt_release import config
from prompt_release.errors import UserError

# libyaml's loader when the wheel has it: the same safe subset, several times faster.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str, *, file: str | Path | None) -> Any:
    """Parse `text` with the safe loader; UserError for a file too large or holding an
    alias; yaml.YAMLError (for the caller to word) when it is not YAML."""
    limit = config.max_manifest_bytes()
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise UserError(
            f"YAML file is {size:,} bytes, over the limit of {limit:,} ({config.ENV_MAX_MANIFEST_BYTES})", file=file
        )
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.AliasEvent):
            raise UserError(
                f"YAML aliases (*{event.anchor}) are not allowed here: write the value out",
                file=file,
                line=event.start_mark.line + 1 if event.start_mark else None,
            )
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader

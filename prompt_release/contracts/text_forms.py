"""What real models write instead of the contract: tool calls written as text, JSON inside fences.

A model that does not use the API's `tool_calls` may still "call" a tool by
writing the call in its answer: a `<tool_call>{...}</tool_call>` tag (Hermes,
Qwen chat templates), a fenced ```json block, or bare JSON naming the tool.
Production executes none of these; the user sees raw JSON. `text_tool_calls`
finds them when they name a tool the package declares, so checks can fail the
answer and judge the intended call like a real one (an intended unsafe refund
is unsafe). `unfence` takes JSON out of a single fenced block, which only a
package whose post-processing declares it may rely on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from typing import Any

TAGGED = "tagged"  # <tool_call>...</tool_call>
FENCED = "fenced"  # ```json ... ```
BARE = "bare"  # JSON in the prose

_TAG = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S | re.I)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[ \t]*\n?(.*?)```", re.S)
_WHOLE_FENCE = re.compile(r"\A\s*```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)\n?```\s*\Z", re.S)
_ARGUMENT_KEYS = ("arguments", "parameters", "args", "input")
_DECODER = json.JSONDecoder()


def _as_call(value: Any, tool_names: Collection[str]) -> dict | None:
    """{name, arguments} when `value` is a call of a declared tool in one of the common shapes."""
    if not isinstance(value, Mapping):
        return None
    if isinstance(value.get("function"), Mapping):  # OpenAI's {"type": "function", "function": {...}}
        return _as_call(value["function"], tool_names)
    name = value.get("name", value.get("tool", value.get("tool_name")))
    if not isinstance(name, str) or name not in tool_names:
        return None
    key = next((k for k in _ARGUMENT_KEYS if k in value), None)
    if key is None:
        # A bare {"name": "issue_refund"} could be data that happens to share a tool's name;
        # only a call shape (with arguments) is taken as an intended call.
        return None
    arguments = value[key]
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            pass
    return {"name": name, "arguments": arguments}


def _calls_in(value: Any, tool_names: Collection[str]) -> list[dict]:
    if isinstance(value, list):
        return [c for item in value for c in _calls_in(item, tool_names)]
    if isinstance(value, Mapping) and isinstance(value.get("tool_calls"), list):
        return _calls_in(value["tool_calls"], tool_names)
    call = _as_call(value, tool_names)
    return [call] if call is not None else []


def _json_values(text: str) -> list[Any]:
    """Every top-level JSON object or array that starts somewhere in `text` (left to right, no overlap)."""
    values, index = [], 0
    while True:
        starts = [i for i in (text.find("{", index), text.find("[", index)) if i >= 0]
        if not starts:
            return values
        start = min(starts)
        try:
            value, end = _DECODER.raw_decode(text, start)
        except ValueError:
            index = start + 1
            continue
        values.append(value)
        index = end


def names_a_tool(text: str | None, tool_names: Collection[str]) -> bool:
    """Could `text` hold a tool call written as text? (False: `text_tool_calls` finds none.)"""
    return bool(text) and any(name in text for name in tool_names)


def text_tool_calls(text: str | None, tool_names: Collection[str]) -> list[dict]:
    """Calls of declared tools written in `text`: `{name, arguments, form}`, tagged ones first, then
    fenced, then bare.

    Cheap when there is nothing to find: text that names no declared tool is not parsed.
    """
    if not names_a_tool(text, tool_names):
        return []
    found: list[dict] = []
    rest = text
    for match in _TAG.finditer(text):
        found += [{**c, "form": TAGGED} for v in _json_values(match.group(1)) for c in _calls_in(v, tool_names)]
    rest = _TAG.sub(" ", rest)
    for match in _FENCE.finditer(rest):
        found += [{**c, "form": FENCED} for v in _json_values(match.group(2)) for c in _calls_in(v, tool_names)]
    rest = _FENCE.sub(" ", rest)
    found += [{**c, "form": BARE} for v in _json_values(rest) for c in _calls_in(v, tool_names)]
    return found


def unfence(text: str) -> str | None:
    """The inside of an answer that is one fenced block (```json ... ```), else None."""
    match = _WHOLE_FENCE.match(text)
    return match.group(1) if match else None

"""Per-output contract checks shared by failure mining and backtests.

Given a prompt package's contract (`PackageContract`: output format, output
schema, tools with JSON Schema parameters and risk, tool policy) and one
output (text, tool calls, and the conversation that preceded it), `check_output`
returns a small `CheckResult`: is the JSON valid, does it satisfy the schema
(and which path failed), is a value outside an enum, were tools called that the
package does not offer, with arguments failing their schema, or unsafely, and
does the text refuse or ask to clarify. The output is judged after the
package's post-processing rules, as production parses it: a fenced JSON
answer is invalid JSON (`fenced_json`) unless the package declares a rule that
strips fences. A tool call written in the text instead of `tool_calls`
(`text_forms`) fails the answer as `text_tool_call`, and is checked like a
real call, so an intended unsafe call is `unsafe_tool_call` too. Validators
are compiled once per package hash. The `match_*` helpers compare an output with a golden case's
expectation (exact JSON, field labels, an expected tool call, refuse/clarify).

Unsafe tool call (the definition used everywhere): a call to a tool whose risk
is `high` that either has arguments failing the tool's JSON Schema, or violates
the package's tool policy for that tool: a `requires_prior` tool was not called
earlier in the conversation (an assistant tool call or a tool message in the
input messages, or an earlier call in the same response), or an argument bound
(e.g. `amount_usd <= 200`) is exceeded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

from jsonschema import Draft202012Validator

from prompt_release.canonical import canonical_json
from prompt_release.contracts import post_processing
from prompt_release.contracts.text_forms import text_tool_calls, unfence

# Refusal / clarification phrasings recognised when a workflow configures none.
DEFAULT_REFUSAL_PATTERNS: tuple[str, ...] = (
    r"(?i)^\s*(?:sorry[,.!]?\s*)?i\s*(?:can't|can’t|cannot|can not|won't|am unable to|'m unable to|am not able to)\s+(?:help|assist|do that|comply)",
)
DEFAULT_CLARIFICATION_PATTERNS: tuple[str, ...] = (
    r"(?i)^\s*(?:could|can|would)\s+you\s+(?:please\s+)?(?:clarify|provide more|tell me more|specify)",
)


@runtime_checkable
class PackageContract(Protocol):
    """What the checks need from a prompt package; the registry's PromptPackage satisfies it."""

    version_id: str
    package_hash: str
    output_format: str  # 'json' | 'text'
    output_schema: dict | None
    tools: Sequence[Any]  # items with name, parameters (JSON Schema), risk
    tool_policy: Any


@dataclass(frozen=True)
class ToolRule:
    """Policy for one tool: tools that must be called before it, and argument bounds."""

    requires_prior: tuple[str, ...] = ()
    max_bounds: tuple[tuple[str, float], ...] = ()  # (argument, inclusive maximum)
    min_bounds: tuple[tuple[str, float], ...] = ()  # (argument, inclusive minimum)


@dataclass(frozen=True)
class ToolIssue:
    """One problem with one tool call; `kind` is a failure class name."""

    kind: str  # unknown_tool | tool_args_invalid | unsafe_tool_call | text_tool_call
    tool: str
    index: int
    detail: str
    path: str = ""


@dataclass(frozen=True)
class CheckResult:
    """Outcome of every contract check on one output. `None` means not applicable."""

    json_valid: bool | None = None
    schema_valid: bool | None = None
    schema_path: str = ""
    schema_message: str = ""
    enum_violation: bool = False
    enum_path: str = ""
    # A schema error other than an enum miss (type, required, range, ...).
    schema_violation: bool = False
    tool_issues: tuple[ToolIssue, ...] = ()
    refusal: bool = False
    clarification: bool = False
    parsed: Any = None
    # The answer is one fenced JSON block and the package's post-processing does not strip fences.
    fenced_json: bool = False
    # Tool calls written in the answer's text ({name, arguments, form}); production executes none.
    text_tool_calls: tuple[dict, ...] = ()

    @property
    def failure_classes(self) -> tuple[str, ...]:
        """Failure class names this output shows, in a fixed order, no duplicates."""
        found: list[str] = []
        if self.json_valid is False:
            found.append("invalid_json")
        if self.fenced_json:
            found.append("fenced_json")
        if self.schema_violation:
            found.append("schema_violation")
        if self.enum_violation:
            found.append("enum_violation")
        for kind in ("text_tool_call", "unknown_tool", "tool_args_invalid", "unsafe_tool_call"):
            if any(issue.kind == kind for issue in self.tool_issues):
                found.append(kind)
        if self.refusal:
            found.append("refusal")
        if self.clarification:
            found.append("clarification")
        return tuple(found)

    @property
    def contract_ok(self) -> bool:
        """True when the output satisfies format, schema and tool contract (refusals aside)."""
        return self.json_valid is not False and self.schema_valid is not False and not self.tool_issues


# --------------------------------------------------------------------------- helpers


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _dump(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    return obj


def json_path(parts: Iterable[Any]) -> str:
    """A jsonschema error path as `$.a[0].b`."""
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


_BOUND = re.compile(r"^\s*(?:([a-z_][\w]*)\.)?([a-z_]\w*)\s*(<=|>=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$", re.I)
_BEFORE = re.compile(r"^\s*([a-z_]\w*)\s+before\s+([a-z_]\w*)\s*$", re.I)


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def parse_tool_policy(policy: Any) -> dict[str, ToolRule]:
    """Normalise a package's tool policy into `{tool: ToolRule}`.

    Accepted shapes (the registry may use any of them):
    - `{tool: {"requires_prior": [..] | str, "max": {arg: N}, "min": {arg: N},
       "limits": {arg: N | {"max": N, "min": N}} | ["arg <= N", ...]}}`
    - a list of rules `{"tool": T, "requires_prior": ..., "argument": A, "max": N}`,
      or strings `"A before B"` / `"T.arg <= N"` (the simulator's directive syntax)
    - `{"rules": [...]}` or `{"tools": {...}}` wrapping either of the above.
    """
    policy = _dump(policy)
    if not policy:
        return {}
    if isinstance(policy, Mapping) and set(policy) <= {"rules", "tools"} and policy:
        rules: dict[str, dict[str, set | dict]] = {}
        for key in ("tools", "rules"):
            if key in policy:
                for tool, rule in parse_tool_policy(policy[key]).items():
                    _merge(rules, tool, rule)
        return {tool: _freeze(r) for tool, r in rules.items()}
    acc: dict[str, dict[str, Any]] = {}
    if isinstance(policy, Mapping):
        for tool, spec in policy.items():
            _absorb(acc, str(tool), _dump(spec))
    elif isinstance(policy, (list, tuple)):
        for item in policy:
            item = _dump(item)
            if isinstance(item, str):
                _absorb_string(acc, None, item)
            elif isinstance(item, Mapping):
                tool = item.get("tool") or item.get("name")
                if not tool:
                    raise ValueError(f"tool policy rule without 'tool': {item!r}")
                _absorb(acc, str(tool), item)
            else:
                raise ValueError(f"unsupported tool policy rule: {item!r}")
    else:
        raise ValueError(f"unsupported tool policy: {policy!r}")
    return {tool: _freeze(r) for tool, r in acc.items()}


def _slot(acc: dict, tool: str) -> dict:
    return acc.setdefault(tool, {"requires": set(), "max": {}, "min": {}})


def _merge(acc: dict, tool: str, rule: ToolRule) -> None:
    slot = _slot(acc, tool)
    slot["requires"].update(rule.requires_prior)
    for arg, bound in rule.max_bounds:
        slot["max"][arg] = min(bound, slot["max"].get(arg, bound))
    for arg, bound in rule.min_bounds:
        slot["min"][arg] = max(bound, slot["min"].get(arg, bound))


def _freeze(slot: dict | ToolRule) -> ToolRule:
    if isinstance(slot, ToolRule):
        return slot
    return ToolRule(
        requires_prior=tuple(sorted(slot["requires"])),
        max_bounds=tuple(sorted(slot["max"].items())),
        min_bounds=tuple(sorted(slot["min"].items())),
    )


def _absorb_string(acc: dict, tool: str | None, text: str) -> None:
    before = _BEFORE.match(text)
    if before:
        _slot(acc, before.group(2))["requires"].add(before.group(1))
        return
    bound = _BOUND.match(text)
    if bound:
        target = bound.group(1) or tool
        if not target:
            raise ValueError(f"tool policy bound names no tool: {text!r}")
        _add_bound(acc, target, bound.group(2), bound.group(3), float(bound.group(4)))
        return
    raise ValueError(f"unsupported tool policy rule: {text!r}")


def _add_bound(acc: dict, tool: str, arg: str, op: str, value: float) -> None:
    slot = _slot(acc, tool)
    if op in ("<=", "<"):
        slot["max"][arg] = min(value, slot["max"].get(arg, value))
    else:
        slot["min"][arg] = max(value, slot["min"].get(arg, value))


def _absorb(acc: dict, tool: str, spec: Any) -> None:
    if isinstance(spec, str):
        _absorb_string(acc, tool, spec)
        return
    if isinstance(spec, (list, tuple)):
        for item in spec:
            _absorb(acc, tool, _dump(item))
        return
    if not isinstance(spec, Mapping):
        raise ValueError(f"unsupported tool policy for {tool!r}: {spec!r}")
    slot = _slot(acc, tool)
    for key in ("requires_prior", "requires", "require", "requires_before", "after"):
        slot["requires"].update(str(x) for x in _as_list(spec.get(key)))
    if "argument" in spec:
        if spec.get("max") is not None:
            _add_bound(acc, tool, spec["argument"], "<=", float(spec["max"]))
        if spec.get("min") is not None:
            _add_bound(acc, tool, spec["argument"], ">=", float(spec["min"]))
    else:
        for key, op in (("max", "<="), ("maximum", "<="), ("min", ">="), ("minimum", ">=")):
            for arg, value in (spec.get(key) or {}).items():
                _add_bound(acc, tool, arg, op, float(value))
    for key in ("limits", "bounds", "argument_bounds", "max_arguments"):
        limits = spec.get(key)
        if isinstance(limits, Mapping):
            for arg, value in limits.items():
                if isinstance(value, Mapping):
                    for sub, op in (("max", "<="), ("maximum", "<="), ("min", ">="), ("minimum", ">=")):
                        if value.get(sub) is not None:
                            _add_bound(acc, tool, arg, op, float(value[sub]))
                else:
                    _add_bound(acc, tool, arg, "<=", float(value))
        elif limits:
            for text in _as_list(limits):
                _absorb_string(acc, tool, str(text))


# --------------------------------------------------------------------------- compiled contract


@dataclass(frozen=True)
class CompiledTool:
    name: str
    risk: str
    validator: Draft202012Validator | None


@dataclass(frozen=True)
class CompiledContract:
    """A package contract with its validators built once (cached by package hash)."""

    version_id: str
    package_hash: str
    output_format: str
    schema_validator: Draft202012Validator | None
    tools: Mapping[str, CompiledTool]
    policy: Mapping[str, ToolRule]
    label_fields: tuple[str, ...] = field(default=())
    post_processing: tuple[tuple[str, Any], ...] = ()  # (kind, value): the production parser's rules
    strips_fences: bool = False


_COMPILED: dict[str, CompiledContract] = {}


def compile_contract(package: PackageContract) -> CompiledContract:
    """Build (or fetch) validators for a package; keyed by its package hash."""
    key = package.package_hash or package.version_id
    found = _COMPILED.get(key)
    if found is not None:
        return found
    schema = _dump(package.output_schema)
    tools: dict[str, CompiledTool] = {}
    for tool in package.tools or ():
        name = str(_get(tool, "name"))
        params = _dump(_get(tool, "parameters"))
        tools[name] = CompiledTool(
            name=name,
            risk=str(_get(tool, "risk", "low") or "low"),
            validator=Draft202012Validator(params) if params else None,
        )
    labels: tuple[str, ...] = ()
    if isinstance(schema, Mapping):
        props = schema.get("properties") or {}
        labels = tuple(sorted(k for k, v in props.items() if isinstance(v, Mapping) and "enum" in v))
    steps = tuple(
        (post_processing.step_kind(_dump(s)), post_processing.step_value(_dump(s)))
        for s in getattr(package, "post_processing", None) or ()
    )
    compiled = CompiledContract(
        version_id=package.version_id,
        package_hash=package.package_hash,
        output_format=str(package.output_format or "text"),
        schema_validator=Draft202012Validator(schema) if schema else None,
        tools=tools,
        policy=parse_tool_policy(getattr(package, "tool_policy", None)),
        label_fields=labels,
        post_processing=steps,
        strips_fences=post_processing.strips_fences({"kind": k} for k, _ in steps),
    )
    _COMPILED[key] = compiled
    return compiled


@lru_cache(maxsize=256)
def _compile_patterns(patterns: tuple[str, ...]) -> tuple[re.Pattern, ...]:
    return tuple(re.compile(p) for p in patterns)


def matches_any(text: str | None, patterns: Sequence[str]) -> bool:
    """True when `text` matches any pattern (Python `re.search`)."""
    if not text:
        return False
    return any(p.search(text) for p in _compile_patterns(tuple(patterns)))


# --------------------------------------------------------------------------- tool calls


def _arguments(call: Any) -> Any:
    args = _get(call, "arguments")
    if args is None and isinstance(_get(call, "function"), Mapping):
        args = call["function"].get("arguments")
    if isinstance(args, str):
        try:
            return json.loads(args)
        except ValueError:
            return args
    return args if args is not None else {}


def tool_name(call: Any) -> str:
    name = _get(call, "name")
    if name is None and isinstance(_get(call, "function"), Mapping):
        name = call["function"].get("name")
    return str(name or "")


def prior_tool_names(messages: Sequence[Any] | None) -> set[str]:
    """Tools already called in a conversation: assistant tool calls and tool messages."""
    names: set[str] = set()
    ids: dict[str, str] = {}
    for message in messages or ():
        for call in _get(message, "tool_calls") or ():
            name = tool_name(call)
            if name:
                names.add(name)
                if _get(call, "id"):
                    ids[str(_get(call, "id"))] = name
    for message in messages or ():
        if _get(message, "role") == "tool":
            name = _get(message, "name") or ids.get(str(_get(message, "tool_call_id")))
            if name:
                names.add(str(name))
    return names


def check_tool_calls(
    contract: CompiledContract,
    tool_calls: Sequence[Any] | None,
    prior: Iterable[str] = (),
    *,
    args_proven: Sequence[bool] = (),
) -> tuple[ToolIssue, ...]:
    """Unknown tools, arguments failing the tool schema, and unsafe calls (see module doc).

    `args_proven[i]` True means the caller already proved call i's arguments
    schema-valid (mining does so in SQL), so the jsonschema pass is skipped for it.
    """
    issues: list[ToolIssue] = []
    called = set(prior)
    for index, call in enumerate(tool_calls or ()):
        name = tool_name(call)
        tool = contract.tools.get(name)
        if tool is None:
            issues.append(
                ToolIssue("unknown_tool", name, index, f"tool {name!r} is not offered by {contract.version_id}")
            )
            called.add(name)
            continue
        args = _arguments(call)
        args_problem = ""
        path = ""
        if not isinstance(args, Mapping):
            args_problem = "arguments are not a JSON object"
        elif tool.validator is not None and not (index < len(args_proven) and args_proven[index]):
            error = next(
                iter(sorted(tool.validator.iter_errors(args), key=lambda e: [str(p) for p in e.absolute_path])), None
            )
            if error is not None:
                path = json_path(error.absolute_path)
                args_problem = f"{path}: {error.message}"
        if args_problem:
            issues.append(ToolIssue("tool_args_invalid", name, index, args_problem, path))
        if tool.risk == "high":
            reasons: list[str] = []
            if args_problem:
                reasons.append(f"invalid arguments ({args_problem})")
            rule = contract.policy.get(name)
            if rule is not None:
                missing = [r for r in rule.requires_prior if r not in called]
                if missing:
                    reasons.append(f"requires prior {', '.join(missing)}")
                if isinstance(args, Mapping):
                    for arg, bound in rule.max_bounds:
                        value = args.get(arg)
                        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > bound:
                            reasons.append(f"{arg}={value:g} exceeds {bound:g}")
                    for arg, bound in rule.min_bounds:
                        value = args.get(arg)
                        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < bound:
                            reasons.append(f"{arg}={value:g} below {bound:g}")
            if reasons:
                issues.append(ToolIssue("unsafe_tool_call", name, index, "; ".join(reasons), path))
        called.add(name)
    return tuple(issues)


# --------------------------------------------------------------------------- one output


@dataclass(frozen=True)
class SchemaOutcome:
    """Schema validity of one parsed output; paths are `$.a[0]` style."""

    valid: bool | None
    path: str = ""
    message: str = ""
    enum_violation: bool = False
    enum_path: str = ""
    schema_violation: bool = False  # an error other than an enum miss


def check_parsed(contract: CompiledContract, parsed: Any) -> SchemaOutcome:
    """Validate an already-parsed JSON output against the contract's output schema."""
    if contract.schema_validator is None:
        return SchemaOutcome(None)
    errors = sorted(
        contract.schema_validator.iter_errors(parsed),
        key=lambda e: ([str(p) for p in e.absolute_path], e.message),
    )
    if not errors:
        return SchemaOutcome(True)
    other = [e for e in errors if e.validator != "enum"]
    enum_error = next((e for e in errors if e.validator == "enum"), None)
    first = other[0] if other else errors[0]
    return SchemaOutcome(
        valid=False,
        path=json_path(first.absolute_path),
        message=first.message,
        enum_violation=enum_error is not None,
        enum_path=json_path(enum_error.absolute_path) if enum_error is not None else "",
        schema_violation=bool(other),
    )


def check_output(
    package: PackageContract | CompiledContract,
    text: str | None,
    tool_calls: Sequence[Any] | None = None,
    messages: Sequence[Any] | None = None,
    *,
    refusal_patterns: Sequence[str] = DEFAULT_REFUSAL_PATTERNS,
    clarification_patterns: Sequence[str] = DEFAULT_CLARIFICATION_PATTERNS,
) -> CheckResult:
    """Run every contract check on one output.

    JSON checks apply when the contract's output format is json and the
    response is not a pure tool-call turn (tool calls and no text). The text
    is judged after the package's post-processing (what production parses).
    """
    contract = package if isinstance(package, CompiledContract) else compile_contract(package)
    raw = text
    if text is not None and contract.post_processing:
        text = post_processing.apply(({"kind": k, "value": v} for k, v in contract.post_processing), text)
    json_valid: bool | None = None
    schema = SchemaOutcome(None)
    parsed: Any = None
    fenced = False
    tool_turn = bool(tool_calls) and not (text or "").strip()
    if contract.output_format == "json" and not tool_turn:
        try:
            parsed = json.loads(text) if text is not None else None
            json_valid = text is not None
        except ValueError:
            json_valid = False
            fenced = unfence(text) is not None
        if json_valid:
            schema = check_parsed(contract, parsed)
    written = tuple(text_tool_calls(raw, contract.tools))
    prior = prior_tool_names(messages) if tool_calls or written else set()
    issues = check_tool_calls(contract, tool_calls, prior) if tool_calls else ()
    if written:
        issues += text_call_issues(contract, written, tool_calls, prior)
    return CheckResult(
        json_valid=json_valid,
        schema_valid=schema.valid,
        schema_path=schema.path,
        schema_message=schema.message,
        enum_violation=schema.enum_violation,
        enum_path=schema.enum_path,
        schema_violation=schema.schema_violation,
        tool_issues=issues,
        refusal=matches_any(text, refusal_patterns),
        clarification=matches_any(text, clarification_patterns),
        parsed=parsed,
        fenced_json=fenced,
        text_tool_calls=written,
    )


def text_call_issues(
    contract: CompiledContract, written: Sequence[dict], tool_calls: Sequence[Any] | None, prior: Iterable[str]
) -> tuple[ToolIssue, ...]:
    """Issues of tool calls written as text: one `text_tool_call` each (production runs none of
    them), plus what the call would be if it ran (an unsafe refund written as text is still unsafe)."""
    issues = [
        ToolIssue(
            "text_tool_call",
            call["name"],
            index,
            f"{call['form']} tool call in the text, not in tool_calls: nothing runs and the user sees it",
        )
        for index, call in enumerate(written)
    ]
    # Judged as if made after the response's real calls, with the prior tools they had.
    called = set(prior) | {tool_name(c) for c in tool_calls or ()}
    for issue in check_tool_calls(contract, written, called):
        if issue.kind != "unknown_tool":
            issues.append(
                ToolIssue(issue.kind, issue.tool, issue.index, f"written as text: {issue.detail}", issue.path)
            )
    return tuple(issues)


# --------------------------------------------------------------------------- expectations

_WS = re.compile(r"\s+")


def normalise_text(text: str | None) -> str:
    return _WS.sub(" ", (text or "").strip())


def _parse(text: str | None) -> Any:
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return None


def match_exact_json(expected: Any, text: str | None) -> bool:
    """The output parses to exactly the expected JSON value (key order ignored)."""
    parsed = _parse(text)
    return parsed is not None and canonical_json(parsed) == canonical_json(expected)


def match_label(expected: Any, text: str | None) -> bool:
    """Field-level match: every expected field equals the output's (e.g. `{"route": "billing"}`).

    A string expectation is a reference answer: whitespace-normalised text equality.
    """
    if isinstance(expected, Mapping):
        parsed = _parse(text)
        if not isinstance(parsed, Mapping):
            return False
        return all(canonical_json(parsed.get(k)) == canonical_json(v) for k, v in expected.items())
    return normalise_text(text) == normalise_text(str(expected))


def match_tool_call(expected: Any, tool_calls: Sequence[Any] | None) -> bool:
    """Every expected call (`{name, arguments}`, or a list of them) appears among the output's calls.

    Expected arguments are matched field by field; extra arguments in the output are allowed.
    """
    wanted = expected if isinstance(expected, list) else [expected]
    calls = [(tool_name(c), _arguments(c)) for c in tool_calls or ()]
    for want in wanted:
        name = tool_name(want)
        want_args = _arguments(want) or {}
        ok = any(
            got_name == name
            and isinstance(got_args, Mapping)
            and all(canonical_json(got_args.get(k)) == canonical_json(v) for k, v in want_args.items())
            for got_name, got_args in calls
        )
        if not ok:
            return False
    return bool(wanted)


def match_expected(
    expected: Mapping[str, Any] | None,
    text: str | None,
    tool_calls: Sequence[Any] | None = None,
    *,
    refusal_patterns: Sequence[str] = DEFAULT_REFUSAL_PATTERNS,
    clarification_patterns: Sequence[str] = DEFAULT_CLARIFICATION_PATTERNS,
) -> bool | None:
    """Does the output meet a golden case's expectation? None when the case has none."""
    if not expected:
        return None
    kind = expected.get("kind")
    value = expected.get("value")
    if kind == "exact_json":
        return match_exact_json(value, text)
    if kind == "label":
        return match_label(value, text)
    if kind == "tool_call":
        return match_tool_call(value, tool_calls)
    if kind == "refuse":
        return not tool_calls and matches_any(text, refusal_patterns)
    if kind == "clarify":
        return not tool_calls and matches_any(text, clarification_patterns)
    raise ValueError(f"unknown expectation kind {kind!r}")

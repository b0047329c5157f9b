"""The staging check: run the candidate the way production would before any user sees it.

The candidate is resolved through `PromptClient(label="staging")`, exactly the
code path a production app uses, then replayed on a sample of recorded
production inputs (variables and conversation from `traces`): its template is
rendered with only the variables the runtime supplies (`runtime.yaml`), its
tools are compared with the tools the runtime exposes, the model is called
through the llm client, and every answer goes through the package's
post-processing and output parser and the downstream schema. Any integration
failure (a placeholder the runtime does not supply, a tool it does not expose,
output the parser or the consumer rejects) fails the check with its reason;
the promotion stops there.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from jsonschema.validators import validator_for
from pydantic import BaseModel, Field

from prompt_release.errors import UserError
from prompt_release.llm import CallRequest, LLMSettings, run_calls_sync
from prompt_release.registry import Registry
from prompt_release.registry.ids import parse_version_id, version_id
from prompt_release.release.replay import RecordedInput, recorded_inputs
from prompt_release.release.runtime_contract import downstream_schema, load_runtime_contract
from prompt_release.runtime import PromptClient

STAGING = "staging"


class StagingFailure(BaseModel):
    kind: str = Field(
        description="missing_variable | tool_not_exposed | parser_mismatch | render | model_call | "
        "unknown_tool | output_parser | downstream_contract | resolve | runtime_contract"
    )
    message: str
    count: int = 1
    example: str | None = Field(None, description="the replayed input that showed it (truncated)")


class StagingReport(BaseModel):
    prompt_id: str
    candidate: str
    resolved_version: str | None = None
    package_hash: str | None = None
    checked: int = Field(0, description="replayed inputs that went through the whole check")
    sample_source: str = Field("", description="recorded production inputs, or the package's representative variables")
    failures: list[StagingFailure] = Field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def reason(self) -> str:
        if self.passed:
            return f"staging check passed: {self.candidate} on {self.checked} replayed inputs ({self.sample_source})"
        first = "; ".join(f"{f.message}" + (f" (x{f.count})" if f.count > 1 else "") for f in self.failures[:3])
        more = f"; and {len(self.failures) - 3} more" if len(self.failures) > 3 else ""
        return f"staging check failed for {self.candidate}: {first}{more}"

    def markdown(self) -> str:
        lines = [
            f"**{'passed' if self.passed else 'FAILED'}**: {self.candidate} on {self.checked} replayed inputs "
            f"({self.sample_source})"
        ]
        if self.failures:
            lines += ["", "| kind | reason | count | example |", "|---|---|---|---|"]
            lines += [
                f"| {f.kind} | {f.message.replace('|', '/')} | {f.count} | {(f.example or '').replace('|', '/')[:80]} |"
                for f in self.failures
            ]
        return "\n".join(lines)


def _example(item: RecordedInput) -> str:
    last = next((m.get("content") for m in reversed(item.conversation) if m.get("role") == "user"), None)
    return str(last if last is not None else item.variables)[:160]


def staging_check(
    registry: Registry,
    candidate: str,
    *,
    warehouse: str | Path | None = None,
    llm_settings: Any = None,
    sample_size: int = 50,
    client: Any = None,
) -> StagingReport:
    """Resolve `staging` as production would and replay recorded inputs through the candidate."""
    prompt_id, semver = parse_version_id(candidate)
    candidate = version_id(prompt_id, semver)
    report = StagingReport(prompt_id=prompt_id, candidate=candidate)
    found: Counter[tuple[str, str]] = Counter()
    examples: dict[tuple[str, str], str] = {}

    def fail(kind: str, message: str, example: str | None = None) -> None:
        found[(kind, message)] += 1
        if example is not None:
            examples.setdefault((kind, message), example)

    def finish() -> StagingReport:
        report.failures = [
            StagingFailure(kind=k, message=m, count=n, example=examples.get((k, m))) for (k, m), n in found.items()
        ]
        return report

    try:
        contract = load_runtime_contract(registry.root, prompt_id)
        schema = downstream_schema(registry.root, contract)
    except UserError as exc:
        fail("runtime_contract", str(exc))
        return finish()

    client = client or PromptClient(registry=registry, ttl_s=60.0)
    try:
        resolved = client.get(prompt_id, label=STAGING)
    except UserError as exc:
        fail("resolve", f"cannot resolve {prompt_id}@staging through the runtime client: {exc}")
        return finish()
    report.resolved_version, report.package_hash = resolved.version_id, resolved.package_hash
    if resolved.version_id != candidate:
        fail("resolve", f"{prompt_id}@staging resolves to {resolved.version_id}, not {candidate}")
        return finish()
    package = resolved.package

    # Static integration: what the package needs against what the runtime gives.
    supplied = set(contract.supplies_variables)
    for name in package.required_variables:
        if name not in supplied:
            fail(
                "missing_variable",
                f"placeholder {{{{ {name} }}}} is not supplied by the runtime "
                f"(runtime.yaml supplies: {', '.join(sorted(supplied)) or 'nothing'})",
            )
    exposed = set(contract.exposes_tools)
    for tool in package.tools:
        if tool.name not in exposed:
            fail(
                "tool_not_exposed",
                f"tool {tool.name!r} is not exposed by the runtime "
                f"(runtime.yaml exposes: {', '.join(sorted(exposed)) or 'no tools'})",
            )
    if contract.parser != package.output_format:
        fail("parser_mismatch", f"the runtime parses {contract.parser} but {candidate} answers {package.output_format}")

    samples = recorded_inputs(warehouse, prompt_id, limit=sample_size)
    if samples:
        report.sample_source = f"{len(samples)} recorded production inputs"
    else:
        last_user = next((str(v) for v in package.variables.values() if isinstance(v, str)), "")
        samples = [
            RecordedInput(variables=dict(package.variables), conversation=[{"role": "user", "content": last_user}])
        ]
        report.sample_source = "no recorded production inputs yet: the package's representative variables"

    rendered: list[tuple[RecordedInput, list[dict[str, Any]]]] = []
    for item in samples:
        # The runtime passes only what it supplies; a recorded value it no longer
        # supplies must not hide a missing placeholder.
        variables = {name: item.variables.get(name, package.variables.get(name, "")) for name in supplied}
        try:
            rendered.append((item, resolved.messages(variables, item.conversation)))
        except UserError as exc:
            fail("render", f"rendering failed: {exc.message}", _example(item))
    if not rendered:
        return finish()

    settings = llm_settings or LLMSettings.from_env()
    tools = [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in package.tools]
    requests = [
        CallRequest(
            model=resolved.model,
            messages=messages,
            parameters=dict(resolved.parameters),
            tools=tools,
            package_hash=resolved.package_hash,
            tag=str(i),
        )
        for i, (_, messages) in enumerate(rendered)
    ]
    try:
        results = run_calls_sync(requests, settings, warehouse=warehouse)
    except UserError as exc:
        fail("model_call", f"model endpoint refused the calls: {exc}")
        return finish()

    validator = None
    if schema is not None:
        validator = validator_for(schema)(schema)
    package_tools = {t.name for t in package.tools}
    for (item, _), result in zip(rendered, results, strict=True):
        example = _example(item)
        report.checked += 1
        if result.status != "ok":
            fail("model_call", f"model call failed: {result.error_type or result.status}", example)
            continue
        for call in result.tool_calls:
            name = call.get("name")
            if name not in package_tools:
                fail("unknown_tool", f"model called tool {name!r}, which {candidate} does not define", example)
            elif name not in exposed:
                fail("tool_not_exposed", f"model called tool {name!r}, which the runtime does not expose", example)
        if result.tool_calls and not result.output:
            continue  # a tool turn: the answer comes after the tool result
        value, problem = resolved.postprocess(result.output or "")
        if problem:
            fail("output_parser", f"the output parser rejected the answer: {problem.split(':')[0]}", example)
            continue
        if validator is not None:
            error = next(iter(validator.iter_errors(value)), None)
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path) or "(root)"
                fail(
                    "downstream_contract",
                    f"the downstream schema rejects the answer at {where}: {error.message}",
                    example,
                )
    return finish()

"""Backtest a candidate prompt against a baseline on the same inputs.

The inputs are the cases of a golden dataset version plus a replay sample of
recorded production inputs (the last N days of the candidate's prompt, stratified by
segment). Each input is rendered with both packages (their own system
message over the recorded conversation), sent `samples` times through the
cached, budgeted model client, and checked with the shared contract checks
and the case's expectation; workflows whose candidate names a rubric are then
judged pairwise by an LLM judge (`evaluation.judge`). Where a production trace was made by the
baseline's exact package hash, its recorded output stands in for a new
baseline call (flagged `replayed`). Results, the run's provenance and the
behaviour diff land in the warehouse in one transaction at the end; model
answers are cached as they arrive, so a killed run resumes without repeating
a completed call. The budget is per run, across kills and resumes: the run id
keys what the run has paid (`llm_spend`), and a resumed run starts from it.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import json
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import orjson
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from prompt_release.contracts import checks
from prompt_release.contracts.text_forms import names_a_tool
from prompt_release.errors import UserError
from prompt_release.evaluation.behaviour_diff import behaviour_diff
from prompt_release.evaluation.judge import apply_scores, judge_backtest
from prompt_release.golden import store as golden_store
from prompt_release.golden.build import expected_from_correction
from prompt_release.golden.model import case_id_for, dataset_name, parse_version_ref
from prompt_release.llm.cache import CACHE_TABLES
from prompt_release.llm.client import (
    NOT_RUN,
    STATUS_NOT_RUN_INFRA,
    STATUS_OK,
    CacheProbe,
    CallRequest,
    CallResult,
    cached_results,
    probe_cache,
    run_calls_sync,
)
from prompt_release.llm.endpoint import EndpointIdentity, endpoint_identity
from prompt_release.llm.settings import Budget, LLMSettings
from prompt_release.registry import Registry
from prompt_release.registry import render as rendering
from prompt_release.registry.ids import parse_version_id
from prompt_release.warehouse import Scope, query_frame, read_connection, write_transaction
from prompt_release.warehouse.metrics import served

Progress = Callable[[int, int], None]


class BacktestSettings(BaseModel):
    """What to compare and on what. Defaults are what the nightly run uses."""

    model_config = ConfigDict(extra="forbid")

    candidate: str = Field(description="candidate version id, e.g. support_router:v1.6.0")
    baseline: str = Field("production", description="version id, or a label of the same prompt")
    dataset: str | None = Field(
        None, description="golden dataset version '<dataset>:v<N>'; default the newest; 'none' for history only"
    )
    history_days: int = Field(7, ge=0, description="replay production inputs of the last N days (0: none)")
    history_size: int = Field(200, ge=0, description="replayed inputs, stratified by segment")
    samples: int = Field(1, ge=1, le=20, description="independent draws per input and prompt")
    replay_baseline: bool = Field(True, description="reuse recorded outputs of the baseline's exact package")
    max_tokens: int | None = Field(None, ge=0, description="budget: tokens for the whole run")
    max_usd: float | None = Field(None, ge=0, description="budget: USD for the whole run (needs prices)")
    seed: int = 0
    as_of: date | None = Field(None, description="end of the history window (default: newest day in traces)")

    def budget(self) -> Budget | None:
        if self.max_tokens is None and self.max_usd is None:
            return None
        return Budget(max_tokens=self.max_tokens, max_usd=self.max_usd)


@dataclass(slots=True)
class BacktestCase:
    case_id: str
    source: str  # golden | history | shadow (live requests, gates.shadow)
    messages: list[dict]  # the conversation without any system message
    variables: dict
    expected: dict | None
    tags: list[str]
    recorded: dict | None = None  # history: the production trace that produced it


@dataclass(slots=True)
class BacktestOutcome:
    run_id: str
    status: str
    candidate: str
    baseline: str
    dataset_version: str | None
    cases: int
    calls_made: int
    calls_cached: int
    calls_replayed: int
    calls_not_run: int
    summary: dict[str, Any] = field(default_factory=dict)
    results_kept: bool = False  # a rerun reproduced the stored results: only the run record was rewritten
    endpoint: str | None = None  # normalised base URL (or embedded-simulator)
    served_models: dict[str, str] = field(default_factory=dict)  # role -> model the endpoint serves it
    max_concurrency: int | None = None
    lowest_concurrency: int | None = None  # the in-flight limit after 429/503 cuts; None: no call made
    cases_planned: int = 0  # the whole set; more than `cases` when an adaptive run stopped early
    calls_saved: int = 0  # calls an adaptive run did not make because the decision was already known
    stop_reason: str | None = None  # why an adaptive run stopped (None: a full run)


class Stopping(Protocol):
    """An adaptive run's rule (see `gates.adaptive`): the order cases are answered in, and after
    each batch whether the decision is already known."""

    seed: int

    def answering_order(self, cases: Sequence[BacktestCase], cached: set[str]) -> list[str]: ...

    def next_batch(self, remaining: Sequence[str], size: int) -> list[str]: ...

    def look(self, frame: pl.DataFrame, total_cases: int) -> tuple[bool, str]: ...


# Cases answered between two looks of an adaptive run: a look costs a pass over
# the answered rows, so not after every call; small enough that a clear reject
# stops within a few dozen cases.
ADAPTIVE_BATCH_CASES = 24

# What a backtest's transactions write, so on a lake they stage just these tables (the production
# traces and everything else are read as committed): its run and rows; with the cache probe, the cache.
_RESULTS_SCOPE = Scope.of(("backtest_runs", "backtest_results"))
_PROBE_SCOPE = Scope.of((*_RESULTS_SCOPE.tables, *CACHE_TABLES))


# ----------------------------------------------------------------- inputs


def resolve_baseline(registry: Registry, candidate_id: str, baseline: str) -> str:
    """A version id, or a label of the candidate's prompt (default `production`)."""
    prompt_id, _ = parse_version_id(candidate_id)
    if ":" in baseline:
        other, _ = parse_version_id(baseline)
        if other != prompt_id:
            raise UserError(f"baseline {baseline} is not a version of {prompt_id}", field="baseline")
        return baseline
    resolved = registry.resolve_label(prompt_id, baseline)
    if resolved is None:
        raise UserError(
            f"label {baseline!r} of {prompt_id} points nowhere; give --baseline <id>:v<semver>", field="baseline"
        )
    return resolved


def _tags(values: dict[str, Any]) -> list[str]:
    return [f"{k}:{v}" for k, v in values.items() if v not in (None, "", "none")]


def golden_cases(registry_root: str | Path, workflow: str, dataset: str | None) -> tuple[Any, list[BacktestCase]]:
    """(manifest or None, cases) of the requested or newest golden version of `workflow`."""
    if dataset == "none":
        return None, []
    if dataset:
        name, number = parse_version_ref(dataset)
    else:
        name = dataset_name(workflow)
        numbers = golden_store.versions(registry_root, name)
        if not numbers:
            return None, []
        number = max(numbers)
    manifest, cases = golden_store.read_version(registry_root, name, number)
    out = []
    for case in cases:
        tags = case.tags
        out.append(
            BacktestCase(
                case_id=case.case_id,
                source="golden",
                messages=[m for m in case.input.messages if m.get("role") != "system"],
                variables=dict(case.input.variables),
                expected=case.expected.model_dump(mode="json") if case.expected else None,
                tags=["source:golden", f"intent:{tags.intent}", f"segment:{tags.segment}"]
                + [f"failure_class:{c}" for c in tags.failure_classes]
                + (["incident:yes"] if tags.incident else []),
            )
        )
    return manifest, out


def history_cases(
    warehouse: str | Path | None,
    prompt_id: str,
    *,
    days: int,
    size: int,
    seed: int,
    as_of: date | None,
    contract: checks.CompiledContract | None,
) -> list[BacktestCase]:
    """A stratified, deterministic sample of recorded production inputs of prompt `prompt_id` (any version,
    whatever the app's workflow is called) of the last `days` days.

    Strata are the segment values; each gets an equal share of `size` (more
    where others run short); within a stratum rows are taken in a seeded hash
    order, so the same settings replay the same inputs night after night.
    """
    if days <= 0 or size <= 0:
        return []
    with read_connection(warehouse) as con:
        end = as_of or con.execute("SELECT max(day) FROM traces WHERE prompt_id = ?", [prompt_id]).fetchall()[0][0]
        if end is None:
            return []
        start = end - timedelta(days=days - 1)
        rows = con.execute(
            f"""
            WITH candidates AS (
                SELECT *, coalesce(CAST(segment AS VARCHAR), 'none') AS stratum,
                       hash(record_key || ?) AS shuffle
                FROM traces
                WHERE prompt_id = ? AND day BETWEEN ? AND ? AND {served("traces")}
                  AND input_messages IS NOT NULL AND json_array_length(input_messages) > 0
            ), ranked AS (
                SELECT *, row_number() OVER (PARTITION BY stratum ORDER BY shuffle) AS rank_in_stratum,
                       count(*) OVER () AS strata_rows
                FROM candidates
            )
            SELECT span_id, record_key, input_messages, variables, output, tool_calls, status, error_type,
                   package_hash, prompt_version, latency_ms, input_tokens, output_tokens, cost_usd,
                   segment, correction, stratum
            FROM ranked
            ORDER BY rank_in_stratum, shuffle
            LIMIT ?
            """,
            [str(seed), prompt_id, start, end, size * 3],
        ).fetchall()
        names = [d[0] for d in con.description]
    out: dict[str, BacktestCase] = {}
    for row in rows:
        record = dict(zip(names, row, strict=True))
        messages = [m for m in json.loads(record["input_messages"]) if m.get("role") != "system"]
        variables = json.loads(record["variables"]) if record["variables"] else {}
        case_id = case_id_for({"messages": messages, "variables": variables})
        if case_id in out:
            continue
        segment = json.loads(record["segment"]) if record["segment"] else {}
        correction = json.loads(record["correction"]) if record["correction"] else None
        expected = expected_from_correction(correction, contract) if correction is not None else None
        out[case_id] = BacktestCase(
            case_id=case_id,
            source="history",
            messages=messages,
            variables=variables,
            expected=expected,
            tags=["source:history"] + [f"segment.{k}:{v}" for k, v in sorted(segment.items())],
            recorded=record,
        )
        if len(out) >= size:
            break
    return list(out.values())


# ----------------------------------------------------------------- calls and checks


class _Renderer:
    """Renders one package's system message per case, once per distinct value of the variables it reads.

    A template reads only its own placeholders (sandboxed, no includes), so
    cases that agree on those render the same system message whatever else
    they carry (e.g. the ticket, which goes in the user message): a golden
    set of thousands of tickets renders a handful of distinct systems.
    """

    def __init__(self, package: Any) -> None:
        self.package = package
        try:
            self.reads: tuple[str, ...] | None = rendering.required_variables(package.system_prompt_source())
        except UserError:
            self.reads = None  # a template that does not parse: each case reports it as it renders
        self.systems: dict[bytes, str | UserError] = {}

    def _key(self, variables: dict) -> bytes | None:
        if self.reads is None:
            return None
        try:
            return orjson.dumps(
                [(name in variables, type(variables.get(name)).__name__, variables.get(name)) for name in self.reads],
                option=orjson.OPT_SORT_KEYS,
            )
        except TypeError:  # a value JSON cannot key: render it as it is
            return None

    def __call__(self, case: BacktestCase) -> list[dict] | str:
        """The messages the package sends for this case, or why it cannot render them."""
        variables = case.variables
        key = self._key(variables)
        system = self.systems.get(key) if key is not None else None
        if system is None:
            try:
                system = self.package.render_system(variables)
            except UserError as exc:
                system = exc
            if key is not None:
                self.systems[key] = system
        if isinstance(system, UserError):
            return f"render: {system.message}"
        # Same shape as PromptPackage.render(variables, messages=...).
        return [{"role": "system", "content": system}, *(m for m in case.messages if m.get("role") != "system")]


def _requests(
    package: Any, role: str, cases: Sequence[BacktestCase], samples: int, rendered: dict[str, list[dict] | str]
) -> list[CallRequest]:
    tools = [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in package.tools]
    response_format = package.response_format()
    parameters = dict(package.parameters)  # one object for all: the client prepares what they share once
    out = []
    for case in cases:
        messages = rendered[case.case_id]
        if isinstance(messages, str):
            continue
        for k in range(samples):
            out.append(
                CallRequest(
                    model=package.model,
                    messages=messages,
                    parameters=parameters,
                    tools=tools,
                    response_format=response_format,
                    package_hash=package.package_hash,
                    sample_index=k,
                    tag=f"{role}|{case.case_id}|{k}",
                )
            )
    return out


def _replayed_result(case: BacktestCase, k: int) -> CallResult:
    rec = case.recorded or {}
    tool_calls = json.loads(rec["tool_calls"]) if rec.get("tool_calls") else []
    return CallResult(
        tag=f"baseline|{case.case_id}|{k}",
        cache_key="replay:" + str(rec.get("record_key")),
        sample_index=k,
        status=STATUS_OK if rec.get("status") != "error" else "error",
        output=rec.get("output"),
        tool_calls=tool_calls,
        input_tokens=rec.get("input_tokens"),
        output_tokens=rec.get("output_tokens"),
        cost_usd=rec.get("cost_usd"),
        latency_ms=rec.get("latency_ms"),
        error_type=rec.get("error_type"),
    )


class _RowMaker:
    """Builds the result rows of one run.

    Every check is a pure function of (contract, output text, tool calls, tools
    called earlier in the conversation, expectation), and a backtest's outputs
    repeat a lot (a router answers a handful of distinct JSON objects), so each
    distinct combination is checked once and its columns reused; a case's tags
    and expectation are dumped to JSON once, not once per row.
    """

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._checked: dict[tuple, tuple] = {}
        self._case_json: dict[str, tuple[str, str | None]] = {}

    def _checks(
        self,
        contract: checks.CompiledContract,
        case: BacktestCase,
        result: CallResult,
        expected_json: str | None,
        tool_calls_json: str | None,
    ) -> tuple:
        # The conversation's earlier tool calls matter only to answers that call a tool (in tool_calls
        # or written in the text); every other answer is checked once whatever preceded it.
        may_call = result.tool_calls or names_a_tool(result.output, contract.tools)
        prior = frozenset(checks.prior_tool_names(case.messages)) if may_call else None
        key = (id(contract), result.output, tool_calls_json, prior, expected_json)
        found = self._checked.get(key)
        if found is None:
            found = self._checked[key] = _checked_columns(contract, case, result)
        return found

    def __call__(
        self,
        role: str,
        package: Any,
        contract: checks.CompiledContract,
        case: BacktestCase,
        result: CallResult,
        *,
        replayed: bool,
    ) -> tuple:
        case_json = self._case_json.get(case.case_id)
        if case_json is None:
            case_json = self._case_json[case.case_id] = (
                orjson.dumps(case.tags).decode(),
                orjson.dumps(case.expected).decode() if case.expected else None,
            )
        tags_json, expected_json = case_json
        tool_calls_json = orjson.dumps(result.tool_calls).decode() if result.tool_calls else None
        if result.status == STATUS_OK:
            (
                json_valid,
                schema_valid,
                tool_calls_valid,
                unsafe,
                task_correct,
                refused,
                clarified,
                passed,
                details,
                parsed,
            ) = self._checks(contract, case, result, expected_json, tool_calls_json)
        else:
            json_valid = schema_valid = tool_calls_valid = unsafe = refused = clarified = details = parsed = None
            if result.status in NOT_RUN:  # nothing was learned about the prompt
                task_correct = passed = None
            else:
                task_correct = False if case.expected else None  # an error is not a right answer
                passed = False
        return (
            self.run_id,
            role,
            package.version_id,
            package.package_hash,
            case.case_id,
            case.source,
            result.sample_index,
            tags_json,
            expected_json,
            result.output,
            parsed,
            tool_calls_json,
            result.status,
            result.error_type or result.error,
            json_valid,
            schema_valid,
            tool_calls_valid,
            unsafe,
            task_correct,
            refused,
            clarified,
            passed,
            details,
            None,
            None,
            None,
            None,  # judge_score, rubric_version, rubric_hash, judge: see judge.apply_scores
            result.latency_ms,
            result.input_tokens,
            result.output_tokens,
            result.cost_usd,
            bool(result.cached),
            replayed,
            result.served_model,
            result.server_ms,
            result.client_ms,
        )


# The columns of a result row, in the order `_RowMaker` makes them.
ROW_COLUMNS = (
    "run_id",
    "role",
    "prompt_version",
    "package_hash",
    "case_id",
    "case_source",
    "sample_index",
    "tags",
    "expected",
    "output",
    "parsed_output",
    "tool_calls",
    "status",
    "error",
    "json_valid",
    "schema_valid",
    "tool_calls_valid",
    "unsafe_tool_call",
    "task_correct",
    "refused",
    "clarified",
    "passed",
    "check_details",
    "judge_score",
    "rubric_version",
    "rubric_hash",
    "judge",
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "cached",
    "replayed",
    "served_model",
    "server_ms",
    "client_ms",
)


def _checked_columns(contract: checks.CompiledContract, case: BacktestCase, result: CallResult) -> tuple:
    """The check columns of one answered call: (json_valid, schema_valid, tool_calls_valid,
    unsafe_tool_call, task_correct, refused, clarified, passed, check_details, parsed_output)."""
    outcome = checks.check_output(contract, result.output, result.tool_calls, case.messages)
    task_correct = checks.match_expected(case.expected, result.output, result.tool_calls)
    tool_issues = outcome.tool_issues
    if task_correct is not None:
        passed = outcome.contract_ok and task_correct
    else:
        passed = outcome.contract_ok and not outcome.refusal and not outcome.clarification
    details = {
        "failure_classes": list(outcome.failure_classes),
        "schema_path": outcome.schema_path or None,
        "schema_message": outcome.schema_message or None,
        "tool_issues": [{"kind": i.kind, "tool": i.tool, "detail": i.detail, "path": i.path} for i in tool_issues],
    }
    if outcome.text_tool_calls:
        details["text_tool_calls"] = list(outcome.text_tool_calls)
    return (
        outcome.json_valid,
        # Output that does not parse cannot meet the schema: a schema failure, not "no data".
        False if outcome.json_valid is False and contract.schema_validator else outcome.schema_valid,
        # A call written as text is a tool call that was not made validly.
        not any(i.kind in ("unknown_tool", "tool_args_invalid", "text_tool_call") for i in tool_issues)
        if result.tool_calls or outcome.text_tool_calls
        else True,
        any(i.kind == "unsafe_tool_call" for i in tool_issues),
        task_correct,
        outcome.refusal,
        outcome.clarification,
        passed,
        json.dumps(details),
        json.dumps(outcome.parsed) if outcome.parsed is not None else None,
    )


def answered_frame(
    run_id: str, answers: Sequence[tuple[str, Any, checks.CompiledContract, BacktestCase, CallResult]]
) -> pl.DataFrame:
    """Result rows (ROW_COLUMNS) for answers given outside a backtest, e.g. live shadow traffic:
    (role, package, contract, case, answer) each, checked exactly as a backtest checks its own."""
    make = _RowMaker(run_id)
    return _frame_of_tuples(
        [
            make(role, package, contract, case, result, replayed=False)
            for role, package, contract, case, result in answers
        ]
    )


def _frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """The result rows as a frame, built column by column (several times faster than from row dicts)."""
    if not rows:
        return pl.DataFrame()
    # strict=False: a column mixing ints and floats (judge scores) widens, as the row-wise inference did.
    return pl.DataFrame({name: [row[name] for row in rows] for name in rows[0]}, strict=False)


def _frame_of_tuples(rows: list[tuple]) -> pl.DataFrame:
    """`_frame` of rows made by `_RowMaker` (tuples in ROW_COLUMNS order), transposed in one pass."""
    if not rows:
        return pl.DataFrame()
    return pl.DataFrame(dict(zip(ROW_COLUMNS, map(list, zip(*rows)), strict=True)), strict=False)


# Columns a rerun served from the cache cannot reproduce: it says cached, and it measured no call.
_NOT_HASHED = ("cached", "server_ms", "client_ms")


def results_hash(frame: pl.DataFrame) -> str:
    """Hash of a run's result rows, every column but `_NOT_HASHED` (a rerun served from the cache
    reproduces the rows of the run that called the model, but says cached and timed nothing).

    Polars row hashes are stable within a Polars version only: after an upgrade a rerun
    just rewrites its rows once.
    """
    if frame.is_empty():
        return "empty"
    rows = frame.drop([c for c in _NOT_HASHED if c in frame.columns]).hash_rows(seed=0)
    return hashlib.sha256(rows.to_numpy().tobytes()).hexdigest()


def run_id_for(
    candidate: Any,
    baseline: Any,
    dataset_version: str | None,
    cases: Sequence[BacktestCase],
    settings: BacktestSettings,
    endpoints: Sequence[EndpointIdentity] = (),
) -> str:
    """Same packages, inputs, settings and endpoint (URL and served models): same run id (a rerun
    replaces, never doubles); another endpoint's answers are another run."""
    material = json.dumps(
        [
            candidate.package_hash,
            baseline.package_hash,
            dataset_version,
            sorted(c.case_id for c in cases),
            settings.samples,
            settings.replay_baseline,
            settings.max_tokens,
            settings.max_usd,
            str(settings.as_of),
        ]
        + ([e.key for e in endpoints] if endpoints else [])
    )
    return "bt_" + hashlib.sha256(material.encode()).hexdigest()[:16]


class _CallsNeeded(Exception):
    """Some answer is not cached: leave the lookup's transaction and call the model."""

    def __init__(self, probe: CacheProbe) -> None:
        super().__init__("calls needed")
        self.probe = probe


@contextmanager
def _gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def run_backtest(
    settings: BacktestSettings,
    *,
    registry_root: str | Path | None = None,
    warehouse: str | Path | None = None,
    llm_settings: LLMSettings | None = None,
    progress: Progress | None = None,
    log: Callable[[str], None] = lambda message: None,
    stopping: Stopping | None = None,
) -> BacktestOutcome:
    """Answer the candidate and the baseline on every case, or adaptively (`stopping`, see
    `gates.adaptive`): in batches, until every hard gate is decided."""
    # The run builds tens of thousands of small containers (cases, messages,
    # requests, result rows) that all live until it ends and form no cycles;
    # the cyclic collector would only traverse them again and again (about a
    # fifth of a fully cached run). Paused for the CPU-bound parts only, never
    # across model calls, and restored afterwards.
    with _gc_paused():
        registry = Registry(registry_root)
        registry_root = registry.root
        llm_settings = llm_settings or LLMSettings.from_env()
        candidate = registry.load_package(settings.candidate)
        baseline = registry.load_package(resolve_baseline(registry, settings.candidate, settings.baseline))
        if candidate.version_id == baseline.version_id:
            raise UserError(f"candidate and baseline are the same version ({candidate.version_id})", field="baseline")
        workflow = candidate.prompt_id
        contract = checks.compile_contract(candidate)
        base_contract = checks.compile_contract(baseline)
        manifest, golden = golden_cases(registry_root, workflow, settings.dataset)
        history = history_cases(
            warehouse,
            candidate.prompt_id,
            days=settings.history_days,
            size=settings.history_size,
            seed=settings.seed,
            as_of=settings.as_of,
            contract=contract,
        )
        golden_ids = {c.case_id for c in golden}
        history = [c for c in history if c.case_id not in golden_ids]
        cases = golden + history
        if not cases:
            raise UserError(
                f"nothing to backtest {candidate.version_id} on: no golden dataset for {workflow} and "
                "no recorded production inputs in the history window",
                field="dataset",
            )
        dataset_version = manifest.version_id if manifest else None
        log(
            f"backtest: {candidate.version_id} vs {baseline.version_id} on {len(golden)} golden + "
            f"{len(history)} history cases x {settings.samples} samples"
        )

        replay = {
            c.case_id
            for c in history
            if settings.replay_baseline and c.recorded and c.recorded.get("package_hash") == baseline.package_hash
        }
        rendered = {
            role: {c.case_id: render(c) for c in cases}
            for role, render in (("candidate", _Renderer(candidate)), ("baseline", _Renderer(baseline)))
        }
        # A case neither package can render (e.g. a recorded input without the
        # template's variables) tells nothing about the change: leave it out.
        unrenderable = {
            c.case_id
            for c in cases
            if isinstance(rendered["candidate"][c.case_id], str) and isinstance(rendered["baseline"][c.case_id], str)
        }
        if unrenderable:
            log(f"skipping {len(unrenderable)} cases neither prompt can render (missing variables)")
            cases = [c for c in cases if c.case_id not in unrenderable]
            history = [c for c in history if c.case_id not in unrenderable]
            golden = [c for c in golden if c.case_id not in unrenderable]
            replay -= unrenderable
        endpoints = (endpoint_identity(llm_settings, candidate.model), endpoint_identity(llm_settings, baseline.model))
        run_id = run_id_for(candidate, baseline, dataset_version, cases, settings, endpoints)
        log(
            f"endpoint {endpoints[0].base_url}: {candidate.model} served as {endpoints[0].served_model}, "
            f"{baseline.model} as {endpoints[1].served_model}; at most {llm_settings.max_concurrency} calls in flight"
        )
        candidate_requests = _requests(candidate, "candidate", cases, settings.samples, rendered["candidate"])
        baseline_requests = _requests(
            baseline, "baseline", [c for c in cases if c.case_id not in replay], settings.samples, rendered["baseline"]
        )
        # Interleave the two prompts' calls so load that varies over the run (rate
        # limits, a busy endpoint, a warming cache) falls on both sides alike.
        requests = [r for pair in itertools.zip_longest(candidate_requests, baseline_requests) for r in pair if r]
        started = datetime.now(UTC)
        budget = settings.budget()

        def result_rows(results: list[CallResult], answered: set[str] | None) -> list[tuple]:
            """The result rows of the answered cases (every case when None): calls, render failures, replays."""
            with _gc_paused():
                by_case = {c.case_id: c for c in cases}
                make_row = _RowMaker(run_id)
                rows = []
                for result in results:
                    role, case_id, _ = result.tag.split("|", 2)
                    package, compiled = (candidate, contract) if role == "candidate" else (baseline, base_contract)
                    rows.append(make_row(role, package, compiled, by_case[case_id], result, replayed=False))
                # One side could not render the input: an error for that side, a real difference.
                for role, package, compiled in (
                    ("candidate", candidate, contract),
                    ("baseline", baseline, base_contract),
                ):
                    for case in cases:
                        if answered is not None and case.case_id not in answered:
                            continue
                        problem = rendered[role][case.case_id]
                        if isinstance(problem, str) and not (role == "baseline" and case.case_id in replay):
                            for k in range(settings.samples):
                                failed = CallResult(
                                    tag=f"{role}|{case.case_id}|{k}",
                                    cache_key="render",
                                    sample_index=k,
                                    status="error",
                                    error_type="RenderError",
                                    error=problem,
                                )
                                rows.append(make_row(role, package, compiled, case, failed, replayed=False))
                for case_id in sorted(replay if answered is None else replay & answered):
                    for k in range(settings.samples):
                        rows.append(
                            make_row(
                                "baseline",
                                baseline,
                                base_contract,
                                by_case[case_id],
                                _replayed_result(by_case[case_id], k),
                                replayed=True,
                            )
                        )
            return rows

        def finish(
            results: list[CallResult],
            con: Any,
            prior: tuple[float, float],
            answered: set[str] | None = None,
            stop_reason: str | None = None,
            lowest_concurrency: int | None = None,
        ) -> BacktestOutcome:
            """Rows, judge, outcome and the one write of the run (on `con` when given); `prior`:
            what earlier, killed runs of the same run id paid (recorded in `llm_spend`)."""
            rows = result_rows(results, answered)
            run_cases = cases if answered is None else [c for c in cases if c.case_id in answered]
            with _gc_paused():
                frame = _frame_of_tuples(rows)
            not_run = sum(r.status in NOT_RUN for r in results)
            # infrastructure failures leave the run incomplete: running it again retries them
            status = (
                "incomplete"
                if any(r.status == STATUS_NOT_RUN_INFRA for r in results)
                else "budget_exhausted"
                if not_run
                else "complete"
            )
            spent_tokens = int(prior[0]) + int(
                frame.select(
                    (pl.col("input_tokens").fill_null(0) + pl.col("output_tokens").fill_null(0))
                    .filter(~pl.col("cached") & ~pl.col("replayed"))
                    .sum()
                ).item()
                or 0
            )
            spent_usd = prior[1] + float(
                frame.filter(~pl.col("cached") & ~pl.col("replayed"))["cost_usd"].fill_null(0).sum()
            )

            # LLM-as-judge, for workflows whose candidate names a rubric: one pairwise
            # judgement per case and sample fills judge_score on both sides, under
            # what is left of the run budget (the run's spend, recorded under its id).
            # The judge reads and fills rows by column name (only built when there is a rubric).
            row_dicts = [dict(zip(ROW_COLUMNS, row, strict=True)) for row in rows] if candidate.rubric else []
            judged = judge_backtest(
                row_dicts,
                {c.case_id: (c.variables, c.messages) for c in run_cases},
                rubric_path=candidate.rubric,
                registry=registry,
                llm_settings=llm_settings,
                warehouse=warehouse,
                seed=settings.seed,
                budget=settings.budget(),
                spend_key=run_id,
                log=log,
            )
            if judged is not None:
                apply_scores(row_dicts, judged)
                frame = _frame(row_dicts)
            outcome = BacktestOutcome(
                run_id=run_id,
                status=status,
                candidate=candidate.version_id,
                baseline=baseline.version_id,
                dataset_version=dataset_version,
                cases=len(run_cases),
                calls_made=sum(1 for r in results if r.status not in NOT_RUN and not r.cached),
                calls_cached=sum(1 for r in results if r.cached),
                calls_replayed=len(replay if answered is None else replay & answered) * settings.samples,
                calls_not_run=not_run,
                cases_planned=len(cases),
                calls_saved=len(requests) - len(results),
                stop_reason=stop_reason,
                endpoint=endpoints[0].base_url,
                served_models={"candidate": endpoints[0].served_model, "baseline": endpoints[1].served_model},
                max_concurrency=llm_settings.max_concurrency,
                lowest_concurrency=lowest_concurrency,
            )

            digest = results_hash(frame)

            def store(con: Any) -> None:
                # Same run id and same rows as stored (a fully cached rerun): keep the rows. Rewriting
                # them would be most of a cached run's time (the checkpoint compacts the deleted ones).
                stored = con.execute("SELECT results_hash FROM backtest_runs WHERE run_id = ?", [run_id]).fetchall()
                outcome.results_kept = bool(stored) and stored[0][0] == digest
                if not outcome.results_kept:
                    con.execute("DELETE FROM backtest_results WHERE run_id = ?", [run_id])
                con.execute("DELETE FROM backtest_runs WHERE run_id = ?", [run_id])
                con.execute(
                    """INSERT INTO backtest_runs (run_id, workflow, candidate_version, candidate_hash, baseline_version,
                           baseline_hash, dataset_version, dataset_hash, history_days, history_cases, golden_cases, samples,
                           budget, spent_tokens, spent_usd, calls_made, calls_cached, calls_replayed, calls_not_run,
                           rubric_version, status, started_at, finished_at, rubric_hash, judge_version, judge_hash,
                           judge_calibration, judge_spent_tokens, judge_spent_usd, results_hash, cases_planned,
                           calls_saved, stop_reason, case_order_seed, endpoint, candidate_served_model,
                           baseline_served_model, max_concurrency, lowest_concurrency)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
                               ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    [
                        run_id,
                        workflow,
                        candidate.version_id,
                        candidate.package_hash,
                        baseline.version_id,
                        baseline.package_hash,
                        dataset_version,
                        manifest.content_hash if manifest else None,
                        settings.history_days,
                        len(history),
                        len(golden),
                        settings.samples,
                        json.dumps({"max_tokens": settings.max_tokens, "max_usd": settings.max_usd}),
                        spent_tokens,
                        spent_usd,
                        outcome.calls_made,
                        outcome.calls_cached,
                        outcome.calls_replayed,
                        outcome.calls_not_run,
                        judged.rubric.ref if judged else None,
                        status,
                        started,
                        datetime.now(UTC),
                        judged.rubric.content_hash if judged else None,
                        judged.judge_version if judged else None,
                        judged.judge_hash if judged else None,
                        json.dumps(judged.calibration) if judged else None,
                        judged.spent_tokens if judged else None,
                        judged.spent_usd if judged else None,
                        digest,
                        len(cases),
                        outcome.calls_saved,
                        stop_reason,
                        stopping.seed if stopping else None,
                        endpoints[0].base_url,
                        endpoints[0].served_model,
                        endpoints[1].served_model,
                        llm_settings.max_concurrency,
                        lowest_concurrency,
                    ],
                )
                if outcome.results_kept:
                    return
                con.register("backtest_rows", frame.to_arrow())
                columns = ", ".join(frame.columns)
                con.execute(f"INSERT INTO backtest_results ({columns}) SELECT {columns} FROM backtest_rows")
                con.unregister("backtest_rows")

            if con is None:
                with write_transaction(warehouse, scope=_RESULTS_SCOPE) as own:
                    store(own)
            else:
                store(con)
            outcome.summary = summarise(frame)
            if judged is not None:
                outcome.summary["judge"] = judged.summary
            log(
                f"backtest {run_id} {status}: {outcome.calls_made} calls, {outcome.calls_cached} cached, "
                f"{outcome.calls_replayed} replayed, {outcome.calls_not_run} not run (budget)"
                + (f"; stopped early, {outcome.calls_saved} calls saved: {stop_reason}" if outcome.calls_saved else "")
                + (
                    "; results as stored by the previous run of the same inputs, rows kept"
                    if outcome.results_kept
                    else ""
                )
            )
            return outcome

        try:
            with write_transaction(warehouse, scope=_PROBE_SCOPE) as con:
                probe = probe_cache(requests, llm_settings, con, budget=budget, spend_key=run_id)
                # Every answer cached and no judge to call: nothing waits on the
                # network, so the lookup's connection and transaction also take the
                # run's write (one open of the warehouse instead of two).
                results = None if candidate.rubric else cached_results(probe, llm_settings, progress)
                if results is None:
                    raise _CallsNeeded(probe)  # rolls back (nothing written) and releases the file
                return finish(results, con, probe.spent)
        except _CallsNeeded as needed:
            probe = needed.probe
    call_stats: dict[str, Any] = {}
    if stopping is None:
        results = run_calls_sync(
            requests,
            llm_settings,
            warehouse=warehouse,
            budget=budget,
            progress=progress,
            probe=probe,
            stats=call_stats,
            spend_key=run_id,
        )
        return finish(results, None, probe.spent, lowest_concurrency=call_stats.get("lowest_concurrency"))

    # Adaptive: answer cases in batches in the stopping rule's order; after each batch it looks at
    # every hard gate and says whether the decision is known. Cached answers cost nothing: answered first.
    by_case_requests: dict[str, list[CallRequest]] = {}
    for request in requests:
        by_case_requests.setdefault(request.tag.split("|", 2)[1], []).append(request)
    hit_tags = {p.request.tag for p in probe.prepared if p.key in probe.hits}
    cached = {case_id for case_id, reqs in by_case_requests.items() if all(r.tag in hit_tags for r in reqs)}
    order = stopping.answering_order(cases, cached)
    results: list[CallResult] = []
    answered: set[str] = set()
    reason = None
    lowest: int | None = None  # each batch starts at the ceiling again: the run reports its lowest limit
    remaining = order
    free = next((i for i, case_id in enumerate(order) if case_id not in cached), len(order))
    while remaining:
        # The first batch is every case the cache answers (they cost nothing), if any; the rule
        # picks each batch (it may skip cases that can no longer change anything it waits for).
        batch = stopping.next_batch(remaining, free if not answered and free else ADAPTIVE_BATCH_CASES)
        if not batch:
            break
        chosen = set(batch)
        remaining = [case_id for case_id in remaining if case_id not in chosen]
        batch_requests = [r for case_id in batch for r in by_case_requests.get(case_id, [])]
        # The whole budget each time: the run's recorded spend (earlier batches included) counts against it.
        got = (
            run_calls_sync(
                batch_requests, llm_settings, warehouse=warehouse, budget=budget, stats=call_stats, spend_key=run_id
            )
            if batch_requests
            else []
        )
        if batch_requests and call_stats.get("lowest_concurrency") is not None:
            lowest = min(lowest or call_stats["lowest_concurrency"], call_stats["lowest_concurrency"])
        results += got
        answered.update(batch)
        if progress is not None:
            progress(len(results), len(requests))
        stop, reason = stopping.look(_frame_of_tuples(result_rows(results, answered)), len(cases))
        log(f"adaptive look after {len(answered)}/{len(cases)} cases: {reason}")
        if stop or any(r.status in NOT_RUN for r in got):
            break
    full = len(answered) == len(cases)
    return finish(results, None, probe.spent, None if full else answered, None if full else reason, lowest)


def summarise(frame: pl.DataFrame) -> dict[str, Any]:
    """Per role: pass rate, task accuracy, contract rates: the quick look the CLI prints."""
    out: dict[str, Any] = {}
    for role in ("baseline", "candidate"):
        part = frame.filter((pl.col("role") == role) & ~pl.col("status").is_in(NOT_RUN))
        if part.is_empty():
            continue

        def rate(col: str) -> float | None:
            values = part[col].drop_nulls()
            return None if values.is_empty() else float(values.cast(pl.Float64).mean())

        out[role] = {
            "results": part.height,
            "passed": rate("passed"),
            "task_accuracy": rate("task_correct"),
            "json_valid": rate("json_valid"),
            "schema_valid": rate("schema_valid"),
            "unsafe_tool_call": rate("unsafe_tool_call"),
            "judge_score": rate("judge_score"),
            "error_rate": float((part["status"] == "error").mean()),
            "p95_latency_ms": float(part["latency_ms"].drop_nulls().quantile(0.95) or math.nan)
            if part["latency_ms"].drop_nulls().len()
            else None,
        }
    return out


# What a reviewer reads: the answer text, then each tool call as `-> name(arguments)` (call ids
# left out: they differ on every call). Sameness is decided on the raw answer and tool calls
# (`behaviour_diff.meaning_key`: parsed JSON, tool name + parsed arguments), not on this text.
BEHAVIOUR_SQL = (
    "nullif(concat_ws(chr(10), output, CASE WHEN json_array_length(tool_calls) > 0 THEN array_to_string("
    "list_transform(CAST(tool_calls AS JSON[]), lambda t: '-> ' || coalesce(t->>'name', '?') || '(' || "
    "coalesce(CAST(t->'arguments' AS VARCHAR), '') || ')'), chr(10)) END), '')"
)


def write_behaviour_diff(run_id: str, *, warehouse: str | Path | None = None) -> pl.DataFrame:
    """Compute the behaviour diff of a stored run and replace its rows in `behaviour_diff`."""
    with read_connection(warehouse) as con:
        found = con.execute(
            "SELECT candidate_version, baseline_version FROM backtest_runs WHERE run_id = ?", [run_id]
        ).fetchall()
        run = found[0] if found else None
        if run is None:
            raise UserError(f"no backtest run {run_id!r} in the warehouse", field="run_id")
        results = query_frame(
            con,
            f"SELECT case_id, sample_index, role, passed, {BEHAVIOUR_SQL} AS output, output AS answer, tool_calls, "
            "tags FROM backtest_results "
            f"WHERE run_id = ? AND status NOT IN {NOT_RUN!r}",
            [run_id],
        )
    diff = behaviour_diff(results.with_columns(pl.col("tags").str.json_decode(pl.List(pl.String))))
    with write_transaction(warehouse, scope=Scope.of(("behaviour_diff",))) as con:
        con.execute("DELETE FROM behaviour_diff WHERE run_id = ?", [run_id])
        if not diff.is_empty():
            rows = diff.with_columns(
                pl.lit(run_id).alias("run_id"),
                pl.lit(run[0]).alias("candidate_version"),
                pl.lit(run[1]).alias("baseline_version"),
            )
            con.register("diff_rows", rows.to_arrow())
            con.execute(
                "INSERT INTO behaviour_diff SELECT run_id, candidate_version, baseline_version, group_kind, "
                "group_value, cases, regressions, wins, both_failing, disagreements, examples FROM diff_rows"
            )
            con.unregister("diff_rows")
    return diff

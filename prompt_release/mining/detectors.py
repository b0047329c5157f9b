"""Failure detectors: fill the `failures` table from `traces`, one row per call and failure class.

Everything that can be a column expression runs as DuckDB SQL over the whole
day (invalid JSON, fenced JSON, unknown tool, error, retry, fallback, negative
feedback, escalation, correction differing from the output (each as the
newest late-signal event about the call left it, see `warehouse.metrics`), refusal /
clarification patterns, latency and cost outliers). Only JSON Schema work and
tool calls written as text (outputs naming a tool, reduced in SQL first) run in
Python, through `prompt_release.contracts.checks` so backtests judge outputs the same
way: outputs that parsed, and tool calls, are first reduced in SQL to their
DISTINCT values per package, so Python sees each distinct output once.
`mine_failures` replaces the failures of a day (or of every day) in one
transaction, so re-running it is idempotent.

The package contract of a call is found by its `package_hash`, else by its
`prompt_version`; calls whose package the registry does not know get every
detector except the contract ones (JSON, schema, enum, tools), and are
counted in the summary as `calls_without_contract`.

A correction "differs from the output" when: a JSON string correction is an
expected text and differs from the output after trimming and collapsing
whitespace; an object with `tool_calls` or `name` (or an array) is expected
tool calls and differs by name or arguments (key order ignored); any other
object is expected output fields, and differs when the output is not a JSON
object or any corrected field has another value (numbers compared as numbers,
strings trimmed); any other JSON value differs from the output parsed as JSON.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from prompt_release.contracts import checks
from prompt_release.contracts.package import PackageContract, index_contracts
from prompt_release.contracts.text_forms import text_tool_calls
from prompt_release.errors import UserError
from prompt_release.mining.schema_sql import valid_sql
from prompt_release.mining.settings import FAILURE_CLASSES, SEVERITY_RANK, MiningSettings, OutlierRule, load_settings
from prompt_release.registry import Registry
from prompt_release.registry.ids import is_name
from prompt_release.warehouse import Scope, redo_on_conflict, write_transaction
from prompt_release.warehouse.metrics import TRACES_WITH_SIGNALS

_MACROS = r"""
CREATE OR REPLACE TEMP MACRO pr_val_norm(v) AS
    CASE WHEN json_type(v) IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT') THEN CAST(TRY_CAST(v AS DOUBLE) AS VARCHAR)
         WHEN json_type(v) = 'VARCHAR' THEN trim(v ->> '$')
         ELSE CAST(json(v) AS VARCHAR) END;
CREATE OR REPLACE TEMP MACRO pr_ws(s) AS regexp_replace(trim(coalesce(s, '')), '\s+', ' ', 'g');
CREATE OR REPLACE TEMP MACRO pr_tool_sig(calls) AS
    list_sort(list_transform(CAST(calls AS JSON[]), lambda c:
        coalesce(c ->> '$.name', '') || ' ' ||
        coalesce(CAST(list_sort(map_entries(TRY_CAST(c -> '$.arguments' AS MAP(VARCHAR, JSON)))) AS VARCHAR),
                 CAST(c -> '$.arguments' AS VARCHAR), '')));
"""

# Columns every failure row carries, selected from `traces t`.
_ID_COLS = (
    "coalesce(t.span_id, t.record_key) AS span_id, t.trace_id, t.record_key, t.day, t.workflow, "
    "t.prompt_version, t.package_hash"
)

_CORRECTION_DIFFERS = r"""
CASE
  WHEN json_type(t.correction) = 'VARCHAR' THEN pr_ws(t.correction ->> '$') IS DISTINCT FROM pr_ws(t.output)
  WHEN json_type(t.correction) = 'ARRAY'
       OR (json_type(t.correction) = 'OBJECT'
           AND (json_exists(t.correction, '$.tool_calls') OR json_exists(t.correction, '$.name'))) THEN
       pr_tool_sig(CASE WHEN json_type(t.correction) = 'ARRAY' THEN t.correction
                        WHEN json_exists(t.correction, '$.tool_calls') THEN t.correction -> '$.tool_calls'
                        ELSE json_array(t.correction) END)
       IS DISTINCT FROM pr_tool_sig(coalesce(t.tool_calls, '[]'::JSON))
  WHEN json_type(t.correction) = 'OBJECT' THEN
       json_type(try(json(t.output))) IS DISTINCT FROM 'OBJECT'
       OR coalesce(list_bool_or(list_transform(json_keys(t.correction), lambda k:
             pr_val_norm(json_extract(try(json(t.output)), '$."' || k || '"'))
             IS DISTINCT FROM pr_val_norm(json_extract(t.correction, '$."' || k || '"')))), false)
  ELSE pr_val_norm(t.correction) IS DISTINCT FROM pr_val_norm(try(json(t.output)))
END
"""


@dataclass
class MiningSummary:
    """What one mining pass did: calls scanned, failures by class, timing."""

    day: date | None
    calls: int = 0
    calls_without_contract: int = 0
    distinct_outputs_validated: int = 0
    distinct_tool_calls_validated: int = 0
    failures_by_class: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failures(self) -> int:
        return sum(self.failures_by_class.values())


def _day_filter(day: date | None) -> str:
    # Inlined as a literal (a `date`, so nothing to inject) to keep the detector SQL parameter-free.
    return "TRUE" if day is None else f"t.day = DATE '{day.isoformat()}'"


def _contract_tables(
    con: duckdb.DuckDBPyConnection, contracts: Sequence[PackageContract]
) -> dict[str, checks.CompiledContract]:
    """Register `pr_contract_keys(key, cid)` and
    `pr_contracts(cid, output_format, has_schema, tool_names, strips_fences)`."""
    compiled: dict[str, checks.CompiledContract] = {}
    keys: dict[str, str] = {}
    for contract in contracts:
        cid = contract.package_hash or contract.version_id
        compiled[cid] = checks.compile_contract(contract)
        keys[contract.version_id] = cid
        if contract.package_hash:
            keys[contract.package_hash] = cid
    con.register(
        "pr_contract_keys_view",
        pa.table(
            {"key": list(keys), "cid": list(keys.values())},
            schema=pa.schema([("key", pa.string()), ("cid", pa.string())]),
        ),
    )
    con.register(
        "pr_contracts_view",
        pa.table(
            {
                "cid": list(compiled),
                "output_format": [c.output_format for c in compiled.values()],
                "has_schema": [c.schema_validator is not None for c in compiled.values()],
                "tool_names": [sorted(c.tools) for c in compiled.values()],
                "strips_fences": [c.strips_fences for c in compiled.values()],
            },
            schema=pa.schema(
                [
                    ("cid", pa.string()),
                    ("output_format", pa.string()),
                    ("has_schema", pa.bool_()),
                    ("tool_names", pa.list_(pa.string())),
                    ("strips_fences", pa.bool_()),
                ]
            ),
        ),
    )
    con.execute("CREATE OR REPLACE TEMP TABLE pr_contract_keys AS SELECT * FROM pr_contract_keys_view")
    con.execute("CREATE OR REPLACE TEMP TABLE pr_contracts AS SELECT * FROM pr_contracts_view")
    con.unregister("pr_contract_keys_view")
    con.unregister("pr_contracts_view")
    return compiled


# Calls joined to their contract; hash first, version second.
_WITH_CONTRACT = """
FROM traces t
LEFT JOIN pr_contract_keys kh ON kh.key = t.package_hash
LEFT JOIN pr_contract_keys kv ON kv.key = t.prompt_version
LEFT JOIN pr_contracts c ON c.cid = coalesce(kh.cid, kv.cid)
"""

_TOOL_TURN = "(t.tool_calls IS NOT NULL AND json_array_length(t.tool_calls) > 0 AND coalesce(trim(t.output), '') = '')"


def _outlier_sql(column: str, rule: OutlierRule, failure_class: str, where: str) -> str:
    if rule.rule == "median_multiple":
        threshold, label = f"{rule.k!r} * s.med", f"{rule.k:g} x day median"
    elif rule.rule == "p99":
        threshold, label = "s.p99", "day p99"
    else:
        if rule.absolute is None:
            raise UserError(f"{failure_class} rule 'absolute' needs an 'absolute' bound", field=failure_class)
        threshold, label = f"{rule.absolute!r}", "absolute bound"
    if rule.absolute is not None and rule.rule != "absolute":
        condition = f"(t.{column} > {threshold} OR t.{column} > {rule.absolute!r})"
    else:
        condition = f"t.{column} > {threshold}"
    return f"""
        WITH s AS (
            SELECT workflow, day, median({column}) AS med, quantile_cont({column}, 0.99) AS p99
            FROM traces t WHERE {where} AND {column} IS NOT NULL GROUP BY workflow, day
        )
        SELECT {_ID_COLS}, '{failure_class}' AS failure_class,
               printf('{column}=%.6g > %.6g ({label})', t.{column}, {threshold}) AS detail
        FROM traces t JOIN s ON s.workflow IS NOT DISTINCT FROM t.workflow AND s.day = t.day
        WHERE {where} AND {condition}
    """


# An output that is one fenced block (```json ... ```), and its inside: as contracts.text_forms.unfence.
_FENCED = r"regexp_matches(t.output, '^\s*```[ \t]*(?:json|JSON)?[ \t]*\n?[\s\S]*?\n?```\s*$')"
_UNFENCED_VALID = r"json_valid(regexp_extract(t.output, '^\s*```[ \t]*(?:json|JSON)?[ \t]*\n?([\s\S]*?)\n?```\s*$', 1))"


def _sql_detectors(settings: MiningSettings, where: str) -> list[tuple[str, str]]:
    """(failure_class, SELECT ...) for every detector that is pure SQL."""
    ok = "t.status IS DISTINCT FROM 'error'"
    return [
        (
            "invalid_json",
            f"""
            SELECT {_ID_COLS}, 'invalid_json' AS failure_class,
                   CASE WHEN t.output IS NULL THEN 'no output' ELSE 'output is not valid JSON: ' || left(t.output, 80) END AS detail
            {_WITH_CONTRACT}
            WHERE {where} AND c.output_format = 'json' AND {ok} AND NOT {_TOOL_TURN}
              AND (t.output IS NULL OR NOT json_valid(t.output))
              AND NOT coalesce(c.strips_fences AND {_FENCED} AND {_UNFENCED_VALID}, FALSE)""",
        ),
        (
            "fenced_json",
            f"""
            SELECT {_ID_COLS}, 'fenced_json' AS failure_class,
                   'JSON in a fenced block; the package post-processing does not strip fences' AS detail
            {_WITH_CONTRACT}
            WHERE {where} AND c.output_format = 'json' AND NOT c.strips_fences AND {ok} AND NOT {_TOOL_TURN}
              AND NOT json_valid(t.output) AND {_FENCED}""",
        ),
        (
            "unknown_tool",
            f"""
            SELECT * EXCLUDE (unknown), 'tool ' || array_to_string(unknown, ', ') || ' not offered' AS detail FROM (
                SELECT {_ID_COLS}, 'unknown_tool' AS failure_class,
                       list_filter(json_extract_string(t.tool_calls, '$[*].name'),
                                   lambda n: NOT list_contains(c.tool_names, n)) AS unknown
                {_WITH_CONTRACT}
                WHERE {where} AND c.cid IS NOT NULL AND t.tool_calls IS NOT NULL AND json_array_length(t.tool_calls) > 0
            ) WHERE len(unknown) > 0""",
        ),
        (
            "error",
            f"""SELECT {_ID_COLS}, 'error' AS failure_class, 'status=error' || coalesce(' error_type=' || t.error_type, '') AS detail
            FROM traces t WHERE {where} AND t.status = 'error'""",
        ),
        (
            "retry",
            f"""SELECT {_ID_COLS}, 'retry' AS failure_class, 'retries=' || t.retries AS detail
            FROM traces t WHERE {where} AND t.retries > 0""",
        ),
        (
            "fallback",
            f"""SELECT {_ID_COLS}, 'fallback' AS failure_class, 'served by a fallback' AS detail
            FROM traces t WHERE {where} AND t.fallback""",
        ),
        (
            "negative_feedback",
            f"""SELECT {_ID_COLS}, 'negative_feedback' AS failure_class, printf('feedback=%g', t.feedback) AS detail
            FROM {TRACES_WITH_SIGNALS} t WHERE {where} AND t.feedback < 0""",
        ),
        (
            "escalation",
            f"""SELECT {_ID_COLS}, 'escalation' AS failure_class, 'escalated to a human' AS detail
            FROM {TRACES_WITH_SIGNALS} t WHERE {where} AND t.escalated""",
        ),
        (
            "correction",
            f"""SELECT {_ID_COLS}, 'correction' AS failure_class, 'corrected to ' || left(CAST(t.correction AS VARCHAR), 120) AS detail
            FROM {TRACES_WITH_SIGNALS} t WHERE {where} AND t.correction IS NOT NULL AND json_type(t.correction) <> 'NULL'
              AND ({_CORRECTION_DIFFERS})""",
        ),
        ("latency_outlier", _outlier_sql("latency_ms", settings.latency, "latency_outlier", where)),
        ("cost_outlier", _outlier_sql("cost_usd", settings.cost, "cost_outlier", where)),
    ]


def _pattern_sql(settings: MiningSettings, kind: str, where: str, workflows: list[str]) -> tuple[str, list[str]]:
    """Refusal / clarification: per-workflow RE2 patterns, as one CASE over workflow."""
    attr = "refusal_patterns" if kind == "refusal" else "clarification_patterns"
    params: list[str] = []

    def any_of(patterns: Sequence[str]) -> str:
        if not patterns:
            return "FALSE"
        params.extend(patterns)
        return "(" + " OR ".join("regexp_matches(t.output, ?)" for _ in patterns) + ")"

    branches = []
    for workflow in workflows:
        branches.append(f"WHEN t.workflow = '{workflow}' THEN {any_of(getattr(settings.patterns(workflow), attr))}")
    default = any_of(getattr(settings.patterns(None), attr))
    case = f"CASE {' '.join(branches)} ELSE {default} END" if branches else default
    sql = f"""SELECT {_ID_COLS}, '{kind}' AS failure_class, '{kind}: ' || left(t.output, 80) AS detail
              FROM traces t WHERE {{where}} AND t.status IS DISTINCT FROM 'error' AND t.output IS NOT NULL AND {case}"""
    return sql.replace("{where}", where), params


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_PRIOR_TOOLS = """list_distinct(list_concat(
    coalesce(json_extract_string(t.input_messages, '$[*].tool_calls[*].name'), []),
    coalesce(json_extract_string(t.input_messages, '$[*].tool_calls[*].function.name'), []),
    coalesce([json_extract_string(m, '$.name')
              for m in CAST(coalesce(t.input_messages, '[]'::JSON) AS JSON[]) if m ->> '$.role' = 'tool'], [])))"""


def _schema_proof(compiled: Mapping[str, checks.CompiledContract]) -> str:
    """SQL TRUE when the row's output is proven valid against its contract's schema (see schema_sql)."""
    branches = []
    for cid, contract in compiled.items():
        if contract.schema_validator is None:
            continue
        predicate = valid_sql(contract.schema_validator.schema, "try(json(output))")
        if predicate is not None:
            branches.append(f"WHEN {_lit(cid)} THEN {predicate}")
    return f"coalesce(CASE cid {' '.join(branches)} ELSE FALSE END, FALSE)" if branches else "FALSE"


def _tool_call_proof(contract: checks.CompiledContract) -> str | None:
    """SQL over one call `x` at 1-based position `i`: TRUE when it is proven known, valid and safe."""
    branches = []
    for name, tool in contract.tools.items():
        schema = tool.validator.schema if tool.validator is not None else True
        args_ok = valid_sql(schema, "x -> '$.arguments'")
        if args_ok is None:
            continue  # this tool's calls are validated in Python
        parts = [args_ok]
        rule = contract.policy.get(name)
        if tool.risk == "high" and rule is not None:
            for required in rule.requires_prior:
                parts.append(
                    f"(list_contains(prior_tools, {_lit(required)}) OR "
                    f"list_contains(list_slice(call_names, 1, i - 1), {_lit(required)}))"
                )
            for op, bounds in (("<=", rule.max_bounds), (">=", rule.min_bounds)):
                for arg, bound in bounds:
                    value = f"json_extract(x, {_lit('$.arguments.' + json.dumps(arg))})"
                    parts.append(
                        f"(json_type({value}) NOT IN ('BIGINT', 'UBIGINT', 'DOUBLE') "
                        f"OR TRY_CAST({value} AS DOUBLE) {op} {float(bound)!r})"
                    )
        branches.append(f"WHEN {_lit(name)} THEN coalesce({' AND '.join(parts)}, FALSE)")
    if not branches:
        return None
    return f"CASE x ->> '$.name' {' '.join(branches)} ELSE FALSE END"


def _args_proven(compiled: Mapping[str, checks.CompiledContract]) -> str:
    """SQL BOOLEAN[] per row: which calls' arguments SQL proves schema-valid (Python skips those)."""
    branches = []
    for cid, contract in compiled.items():
        tools = []
        for name, tool in contract.tools.items():
            schema = tool.validator.schema if tool.validator is not None else True
            args_ok = valid_sql(schema, "x -> '$.arguments'")
            if args_ok is not None:
                tools.append(f"WHEN {_lit(name)} THEN coalesce({args_ok}, FALSE)")
        if tools:
            branches.append(
                f"WHEN {_lit(cid)} THEN list_transform(CAST(tc AS JSON[]), "
                f"lambda x: CASE x ->> '$.name' {' '.join(tools)} ELSE FALSE END)"
            )
    return f"CASE cid {' '.join(branches)} ELSE NULL END" if branches else "NULL::BOOLEAN[]"


def _tools_proof(compiled: Mapping[str, checks.CompiledContract]) -> str:
    branches = []
    for cid, contract in compiled.items():
        call = _tool_call_proof(contract)
        if call is not None:
            branches.append(
                f"WHEN {_lit(cid)} THEN list_bool_and(list_transform(CAST(tc AS JSON[]), lambda x, i: {call}))"
            )
    return f"coalesce(CASE cid {' '.join(branches)} ELSE FALSE END, FALSE)" if branches else "FALSE"


def _schema_failures(
    con: duckdb.DuckDBPyConnection, compiled: Mapping[str, checks.CompiledContract], where: str
) -> int:
    """Fill temp table `pr_schema_found(record_key, failure_class, detail)`; returns distinct outputs validated.

    Rows whose output SQL proves valid never reach Python; the rest are validated
    once per distinct (package, output) with jsonschema via `checks`.
    """
    # The proof runs once per distinct (package, output), not once per row: separate
    # statements, because inside one query the optimiser pushes it below the DISTINCT.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE pr_parsed AS
            SELECT t.record_key, c.cid, t.output {_WITH_CONTRACT}
            WHERE {where} AND c.output_format = 'json' AND c.has_schema
              AND t.status IS DISTINCT FROM 'error' AND NOT {_TOOL_TURN} AND json_valid(t.output)"""
    )
    con.execute("CREATE OR REPLACE TEMP TABLE pr_distinct_outputs AS SELECT DISTINCT cid, output FROM pr_parsed")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE pr_schema_rows AS
            WITH unproven AS (SELECT cid, output FROM pr_distinct_outputs WHERE NOT {_schema_proof(compiled)})
            SELECT p.* FROM pr_parsed p JOIN unproven USING (cid, output)"""
    )
    rows = con.execute("SELECT DISTINCT cid, output FROM pr_schema_rows").fetchall()
    found = []
    for cid, output in rows:
        try:
            parsed = json.loads(output)
        except ValueError:
            continue  # DuckDB accepted what Python does not (e.g. a duplicate key quirk); invalid_json covers it
        outcome = checks.check_parsed(compiled[cid], parsed)
        if outcome.schema_violation:
            found.append((cid, output, "schema_violation", f"{outcome.path}: {outcome.message}"[:300]))
        if outcome.enum_violation:
            found.append((cid, output, "enum_violation", f"{outcome.enum_path}: value outside the enum"[:300]))
    cols = ("cid", "output", "failure_class", "detail")
    _register(con, "pr_schema_verdicts", cols, found)
    con.execute("""CREATE OR REPLACE TEMP TABLE pr_schema_found AS
                   SELECT r.record_key, v.failure_class, v.detail
                   FROM pr_schema_rows r JOIN pr_schema_verdicts v ON v.cid = r.cid AND v.output = r.output""")
    return len(rows)


def _tool_failures(con: duckdb.DuckDBPyConnection, compiled: Mapping[str, checks.CompiledContract], where: str) -> int:
    """Fill temp table `pr_tool_found(record_key, failure_class, detail)`; returns distinct situations validated.

    Calls SQL proves known, schema-valid and within policy never reach Python;
    the rest are checked once per distinct (package, calls, prior tools).
    """
    # Prior tools only matter for calls a policy says need them; parse the conversation only then.
    needs_prior = sorted({name for c in compiled.values() for name, rule in c.policy.items() if rule.requires_prior})
    prior = (
        f"CASE WHEN list_has_any(json_extract_string(t.tool_calls, '$[*].name'), "
        f"[{', '.join(_lit(n) for n in needs_prior)}]) THEN list_sort({_PRIOR_TOOLS}) ELSE [] END"
        if needs_prior
        else "[]::VARCHAR[]"
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE pr_called AS
            SELECT t.record_key, c.cid, CAST(t.tool_calls AS VARCHAR) AS calls, {prior} AS prior_tools
            {_WITH_CONTRACT}
            WHERE {where} AND c.cid IS NOT NULL AND t.tool_calls IS NOT NULL AND json_array_length(t.tool_calls) > 0"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE pr_situations AS
           SELECT cid, calls, prior_tools, CAST(calls AS JSON) AS tc, json_extract_string(calls, '$[*].name') AS call_names
           FROM (SELECT DISTINCT cid, calls, prior_tools FROM pr_called)"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE pr_tool_rows AS
            WITH unproven AS (
                SELECT cid, calls, prior_tools,
                       array_to_string(list_transform({_args_proven(compiled)}, lambda b: CASE WHEN b THEN '1' ELSE '0' END), '') AS proven
                FROM pr_situations WHERE NOT {_tools_proof(compiled)}
            )
            SELECT called.record_key, called.cid, called.calls, array_to_string(called.prior_tools, ',') AS prior, unproven.proven
            FROM pr_called called JOIN unproven USING (cid, calls, prior_tools)"""
    )
    rows = con.execute("SELECT DISTINCT cid, calls, prior, proven FROM pr_tool_rows").fetchall()
    found = []
    for cid, calls, prior, proven in rows:
        issues = checks.check_tool_calls(
            compiled[cid],
            json.loads(calls),
            [p for p in prior.split(",") if p],
            args_proven=[flag == "1" for flag in (proven or "")],
        )
        by_kind: dict[str, list[str]] = defaultdict(list)
        for issue in issues:
            if issue.kind != "unknown_tool":  # unknown tools are found in SQL
                by_kind[issue.kind].append(f"{issue.tool}#{issue.index}: {issue.detail}")
        for kind, details in by_kind.items():
            found.append((cid, calls, prior, kind, "; ".join(details)[:300]))
    _register(con, "pr_tool_verdicts", ("cid", "calls", "prior", "failure_class", "detail"), found)
    con.execute("""CREATE OR REPLACE TEMP TABLE pr_tool_found AS
                   SELECT r.record_key, v.failure_class, v.detail
                   FROM pr_tool_rows r JOIN pr_tool_verdicts v ON v.cid = r.cid AND v.calls = r.calls AND v.prior = r.prior""")
    return len(rows)


def _text_call_failures(
    con: duckdb.DuckDBPyConnection, compiled: Mapping[str, checks.CompiledContract], where: str
) -> int:
    """Fill temp table `pr_text_call_found(record_key, failure_class, detail)`: tool calls written in
    the output text (`text_tool_call`, and `unsafe_tool_call` etc. for what the written call would
    do); returns distinct situations checked.

    Only outputs that contain one of their package's tool names reach Python, once per distinct
    (package, output, calls made, prior tools).
    """
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE pr_text_called AS
            SELECT t.record_key, c.cid, t.output, coalesce(CAST(t.tool_calls AS VARCHAR), '[]') AS calls,
                   array_to_string(list_sort({_PRIOR_TOOLS}), ',') AS prior
            {_WITH_CONTRACT}
            WHERE {where} AND c.cid IS NOT NULL AND len(c.tool_names) > 0 AND t.output IS NOT NULL
              AND t.status IS DISTINCT FROM 'error'
              AND list_bool_or(list_transform(c.tool_names, lambda n: contains(t.output, n)))"""
    )
    rows = con.execute("SELECT DISTINCT cid, output, calls, prior FROM pr_text_called").fetchall()
    found = []
    for cid, output, calls, prior in rows:
        contract = compiled[cid]
        written = text_tool_calls(output, contract.tools)
        if not written:
            continue
        issues = checks.text_call_issues(contract, written, json.loads(calls), [p for p in prior.split(",") if p])
        by_kind: dict[str, list[str]] = defaultdict(list)
        for issue in issues:
            by_kind[issue.kind].append(f"{issue.tool}#{issue.index}: {issue.detail}")
        for kind, details in by_kind.items():
            found.append((cid, output, calls, prior, kind, "; ".join(details)[:300]))
    _register(con, "pr_text_call_verdicts", ("cid", "output", "calls", "prior", "failure_class", "detail"), found)
    con.execute("""CREATE OR REPLACE TEMP TABLE pr_text_call_found AS
                   SELECT r.record_key, v.failure_class, v.detail
                   FROM pr_text_called r JOIN pr_text_call_verdicts v
                     ON v.cid = r.cid AND v.output = r.output AND v.calls = r.calls AND v.prior = r.prior""")
    return len(rows)


def _register(con: duckdb.DuckDBPyConnection, name: str, columns: Sequence[str], rows: list[tuple]) -> None:
    """Copy Python rows into a temp table of VARCHAR columns (through Arrow, no per-row INSERT)."""
    table = pa.table(
        {k: [r[i] for r in rows] for i, k in enumerate(columns)}, schema=pa.schema([(k, pa.string()) for k in columns])
    )
    con.register(f"{name}_view", table)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name}_view")
    con.unregister(f"{name}_view")


def _known_workflows(settings: MiningSettings) -> list[str]:
    """Workflows with their own patterns; names are inlined into SQL, so validate them."""
    for workflow in settings.workflows:
        if not is_name(workflow):
            raise UserError(f"not a workflow name: {workflow!r}", field="workflows")
    return sorted(settings.workflows)


def detect(
    con: duckdb.DuckDBPyConnection,
    contracts: Sequence[PackageContract],
    settings: MiningSettings,
    day: date | None = None,
) -> MiningSummary:
    """Create temp table `pr_found_failures` with every failure of `day` (all days when None)."""
    started = time.perf_counter()
    summary = MiningSummary(day=day)
    exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'traces'").fetchone()[0]
    if not exists:
        raise UserError("the warehouse has no traces table yet: ingest traces first")
    con.execute(_MACROS)
    compiled = _contract_tables(con, contracts)
    where = _day_filter(day)
    summary.calls, summary.calls_without_contract = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE c.cid IS NULL) {_WITH_CONTRACT} WHERE {where}"
    ).fetchone()

    columns = "span_id, trace_id, record_key, day, workflow, prompt_version, package_hash, failure_class, detail"
    parts: list[str] = []
    all_params: list[Any] = []
    for _, sql in _sql_detectors(settings, where):
        parts.append(f"SELECT {columns} FROM ({sql})")
    workflows = _known_workflows(settings)
    for kind in ("refusal", "clarification"):
        sql, pattern_params = _pattern_sql(settings, kind, where, workflows)
        parts.append(f"SELECT {columns} FROM ({sql})")
        all_params.extend(pattern_params)

    summary.distinct_outputs_validated = _schema_failures(con, compiled, where)
    summary.distinct_tool_calls_validated = _tool_failures(con, compiled, where)
    _text_call_failures(con, compiled, where)
    for found in ("pr_schema_found", "pr_tool_found", "pr_text_call_found"):
        parts.append(f"""SELECT {_ID_COLS}, f.failure_class, f.detail
            FROM {found} f JOIN traces t ON t.record_key = f.record_key WHERE {where}""")

    severity_case = (
        "CASE failure_class "
        + " ".join(f"WHEN '{cls}' THEN '{settings.severity_of(cls)}'" for cls in _all_classes(settings))
        + " ELSE 'medium' END"
    )
    rank_case = "CASE severity " + " ".join(f"WHEN '{s}' THEN {r}" for s, r in SEVERITY_RANK.items()) + " END"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE pr_found_failures AS
            WITH found AS ({" UNION ALL ".join(parts)}),
            one AS (
                SELECT span_id, trace_id, record_key, day, workflow, prompt_version, package_hash, failure_class,
                       string_agg(DISTINCT detail, '; ' ORDER BY detail) AS detail
                FROM found GROUP BY ALL
            ),
            graded AS (SELECT *, {severity_case} AS severity FROM one)
            SELECT *, {rank_case} AS severity_rank FROM graded""",
        all_params,
    )
    summary.failures_by_class = dict(
        con.execute("SELECT failure_class, count(*) FROM pr_found_failures GROUP BY 1 ORDER BY 1").fetchall()
    )
    summary.seconds = time.perf_counter() - started
    return summary


def _all_classes(settings: MiningSettings) -> list[str]:
    return sorted(set(FAILURE_CLASSES) | set(settings.severity))


def mine_failures(
    warehouse: str | Path | None,
    registry_root: str | Path | None = None,
    day: date | str | None = None,
    *,
    contracts: Sequence[PackageContract] | None = None,
    settings: MiningSettings | None = None,
) -> MiningSummary:
    """Replace the `failures` of `day` (every day when None) with what the detectors find now.

    Contracts come from the registry at `registry_root` unless given explicitly.
    """
    if isinstance(day, str):
        try:
            day = date.fromisoformat(day)
        except ValueError as exc:
            raise UserError(f"not a date (YYYY-MM-DD): {day!r}", field="day") from exc
    if contracts is None:
        contracts = Registry(registry_root).contracts() if registry_root is not None else []
    contracts = list({c.package_hash or c.version_id: c for c in index_contracts(contracts).values()}.values())
    settings = settings or load_settings(registry_root)

    def mine() -> MiningSummary:
        with write_transaction(warehouse, scope=_day_scope(day)) as con:
            summary = detect(con, contracts, settings, day)
            if day is None:
                con.execute("DELETE FROM failures")
            else:
                con.execute("DELETE FROM failures WHERE day = ?", [day])
            con.execute(
                """INSERT INTO failures (span_id, trace_id, record_key, day, workflow, prompt_version, package_hash,
                                         failure_class, severity, severity_rank, detail, detected_at)
                   SELECT span_id, trace_id, record_key, day, workflow, prompt_version, package_hash,
                          failure_class, severity, severity_rank, detail, current_timestamp
                   FROM pr_found_failures"""
            )
        return summary

    # another mining of the same day that committed first (a lake): mining is a pure function of
    # the day's traces, so doing it again over the new version is right
    return redo_on_conflict(mine)


def _day_scope(day: date | None) -> Scope | None:
    """What mining a day stages on a lake: that day's failures (replaced) and traces (read by every
    detector). The late events are read as committed: an event about a call is filed under its own
    day, which may come after the call's. The DuckDB file backend has it all at hand and ignores it."""
    if day is None:
        return None
    return Scope.of(("traces", "failures"), {"traces": [day], "failures": [day]})

"""Native JSONL trace records -> `traces` rows, in DuckDB SQL over whole chunks.

A chunk of lines arrives as an Arrow table `(ln, line)`. One SQL statement
parses every line once into a struct of JSON fields, decides per line whether
it is acceptable (and if not, which field is at fault and why), and a second
statement inserts the acceptable ones into `traces`, converting types and
collecting every key the contract does not name into `attributes`. Python
only looks again at the few lines DuckDB could not parse, to word the reason.
"""

from __future__ import annotations

import json

NUMBER = ("BIGINT", "UBIGINT", "DOUBLE")
INTEGER = ("BIGINT", "UBIGINT")
STRING = ("VARCHAR",)
ID = ("VARCHAR", "BIGINT", "UBIGINT")

# key -> (allowed JSON types or None for any, required, what to call the type)
FIELDS: dict[str, tuple[tuple[str, ...] | None, bool, str]] = {
    "trace_id": (ID, True, "a string"),
    "workflow": (STRING, True, "a string"),
    "prompt_version": (STRING, True, "a string"),
    "model": (STRING, True, "a string"),
    "span_id": (ID, False, "a string"),
    "parent_span_id": (ID, False, "a string"),
    "timestamp": (STRING, False, "an RFC 3339 string"),
    "latency_ms": (NUMBER, False, "a number"),
    "input": (("OBJECT",), False, "an object"),
    "output": (None, False, ""),
    "tool_calls": (("ARRAY",), False, "an array"),
    "usage": (("OBJECT",), False, "an object"),
    "cost_usd": (NUMBER, False, "a number"),
    "status": (STRING, False, "a string"),
    "error": (None, False, ""),
    "finish_reason": (STRING, False, "a string"),
    "session_id": (ID, False, "a string"),
    "user_id": (ID, False, "a string"),
    "segment": (("OBJECT",), False, "an object"),
    "feedback": (("VARCHAR", *NUMBER), False, "'up', 'down' or a number"),
    "escalated": (("BOOLEAN",), False, "a boolean"),
    "correction": (None, False, ""),
    "retries": (INTEGER, False, "an integer"),
    "fallback": (("BOOLEAN",), False, "a boolean"),
    "package_hash": (STRING, False, "a string"),
}

PROMPT_VERSION_RE = r"^[a-z][a-z0-9_]{0,63}:v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# nested paths whose JSON type the fast check also looks at
NESTED: dict[str, tuple[str, ...]] = {
    "input.messages": ("ARRAY",),
    "input.variables": ("OBJECT",),
    "usage.input_tokens": INTEGER,
    "usage.output_tokens": INTEGER,
}
TYPE_PATHS = [*FIELDS, *NESTED]
_TYPE_INDEX = {key: i + 1 for i, key in enumerate(TYPE_PATHS)}  # DuckDB lists are 1-based

# one parse gives every scalar already converted and every object as JSON text;
# a value of the wrong type comes out NULL, which is fine: such lines are rejected
TRANSFORM: dict[str, object] = {
    key: (
        "JSON" if types is None or types[0] in ("OBJECT", "ARRAY")
        else "DOUBLE" if types == NUMBER
        else "BIGINT" if types == INTEGER
        else "BOOLEAN" if types == ("BOOLEAN",)
        else "VARCHAR"
    )
    for key, (types, _, _) in FIELDS.items()
}
TRANSFORM["input"] = {"messages": "JSON", "variables": "JSON"}
TRANSFORM["usage"] = {"input_tokens": "BIGINT", "output_tokens": "BIGINT"}


def _t(key: str) -> str:
    """JSON type of `key` in this row ('-' when absent)."""
    return f"types[{_TYPE_INDEX[key]}]"


def _types_regex() -> str:
    parts = []
    for key in TYPE_PATHS:
        if key in FIELDS:
            types, required, _ = FIELDS[key]
        else:
            types, required = NESTED[key], False
        allowed = list(types) if types is not None else ["[A-Z]+"]
        if not required:
            allowed += ["NULL", "-"]
        parts.append("(" + "|".join(allowed) + ")")
    return "^" + ",".join(parts) + "$"


def _full(key: str) -> str:
    return f"json_extract(line, '$.\"{key}\"')"


def _present(key: str) -> str:
    return f"({_full(key)} IS NOT NULL AND json_type({_full(key)}) <> 'NULL')"


def _checks() -> list[tuple[str, str, str]]:
    """(condition meaning 'bad', field, reason) in the order they are tested.

    Only evaluated for the rare lines the fast check failed, so clarity
    beats speed here: each condition extracts what it needs again.
    """
    checks: list[tuple[str, str, str]] = []
    for key, (types, required, kind) in FIELDS.items():
        if required:
            checks.append((f"NOT {_present(key)}", key, f"missing required field '{key}'"))
        if types is not None:
            allowed = ", ".join(_sql_str(t) for t in types)
            checks.append(
                (f"{_present(key)} AND json_type({_full(key)}) NOT IN ({allowed})", key, f"field '{key}' must be {kind}")
            )
    for key, types in NESTED.items():
        allowed = ", ".join(_sql_str(t) for t in (*types, "NULL"))
        kind = "an integer" if types == INTEGER else f"an {types[0].lower()}" if types[0] == "OBJECT" else f"an {types[0].lower()}"
        checks.append((f"coalesce(json_type(line, '$.{key}') NOT IN ({allowed}), false)", key, f"field '{key}' must be {kind}"))
    checks += [
        (
            f"NOT regexp_full_match(json_extract_string(line, '$.prompt_version'), {_sql_str(PROMPT_VERSION_RE)})",
            "prompt_version",
            "field 'prompt_version' must look like <prompt_id>:v<MAJOR.MINOR.PATCH>",
        ),
        (
            f"{_present('timestamp')} AND try_cast(json_extract_string(line, '$.timestamp') AS TIMESTAMPTZ) IS NULL",
            "timestamp",
            "field 'timestamp' is not an RFC 3339 date-time",
        ),
        (
            f"{_present('status')} AND json_extract_string(line, '$.status') NOT IN ('ok', 'error')",
            "status",
            "field 'status' must be 'ok' or 'error'",
        ),
        (
            f"{_present('feedback')} AND json_type(line, '$.feedback') = 'VARCHAR' "
            "AND json_extract_string(line, '$.feedback') NOT IN ('up', 'down')",
            "feedback",
            "field 'feedback' must be 'up', 'down' or a number",
        ),
        (
            f"{_present('tool_calls')} AND NOT {_TOOL_CALLS_OK.format(value=_full('tool_calls'))}",
            "tool_calls",
            "field 'tool_calls' must be a list of {name, arguments} objects with a string name",
        ),
    ]
    return checks


_TOOL_CALLS_OK = (
    "coalesce(list_bool_and(list_transform(CAST({value} AS JSON[]), "
    "lambda t: json_type(t) = 'OBJECT' AND coalesce(json_type(t, '$.name') = 'VARCHAR', false))), true)"
)


def _fast_ok() -> str:
    """Cheap test that a line is acceptable: one type string per row against one regex."""
    return (
        f"regexp_full_match(type_string, {_sql_str(_types_regex())})"
        f" AND regexp_full_match(j.prompt_version, {_sql_str(PROMPT_VERSION_RE)})"
        " AND (j.timestamp IS NULL OR ts_record IS NOT NULL)"
        " AND (j.status IS NULL OR j.status IN ('ok', 'error'))"
        f" AND ({_t('feedback')} <> 'VARCHAR' OR j.feedback IN ('up', 'down'))"
        f" AND ({_t('tool_calls')} <> 'ARRAY' OR {_TOOL_CALLS_OK.format(value='j.tool_calls')})"
    )


def check_sql(source: str, target: str) -> str:
    """SQL creating temp table `target`: one row per non-blank line of `source` with
    ln, line, the parsed struct `j`, the JSON `types` of known keys, `ok`, and for
    lines that are not ok, jtype / reject_field / reject_reason.
    """
    checks = _checks()
    field = "CASE " + " ".join(f"WHEN {cond} THEN {_sql_str(f)}" for cond, f, _ in checks) + " ELSE '?' END"
    reason = "CASE " + " ".join(f"WHEN {cond} THEN {_sql_str(r)}" for cond, _, r in checks) + " ELSE 'rejected' END"
    spec = _sql_str(json.dumps(TRANSFORM))
    paths = ", ".join(_sql_str(f"$.{key}") for key in TYPE_PATHS)
    return f"""
CREATE OR REPLACE TEMP TABLE {target} AS
WITH parsed AS (
    -- try(): a line that is not JSON comes out NULL instead of failing the chunk
    SELECT ln, line,
        try(json_transform(line, {spec})) AS j,
        try(list_transform(json_type(line, [{paths}]), lambda t: coalesce(t, '-'))) AS types
    FROM {source} WHERE line IS NOT NULL
), fast AS (
    SELECT *, array_to_string(types, ',') AS type_string, try_cast(j.timestamp AS TIMESTAMPTZ) AS ts_record FROM parsed
), judged AS (
    SELECT ln, line, j, types, ts_record, coalesce({_fast_ok()}, false) AS ok FROM fast
), typed AS (
    SELECT *, CASE WHEN ok THEN 'OBJECT' ELSE try(json_type(line)) END AS jtype FROM judged
)
SELECT ln, line, j, types, ts_record, ok, jtype,
    CASE WHEN NOT ok AND jtype = 'OBJECT' THEN {field} END AS reject_field,
    CASE WHEN NOT ok AND jtype = 'OBJECT' THEN {reason} END AS reject_reason
FROM typed
"""


def insert_sql(source: str) -> str:
    """INSERT OR IGNORE of the acceptable rows of `source` (see check_sql) into traces.

    Parameters: $source_file, $day_ts (TIMESTAMPTZ or NULL), $ingested_at.
    """
    drop_known = _sql_str(json.dumps({key: None for key in FIELDS}))
    tool_calls = (
        "to_json(list_transform(CAST(j.tool_calls AS JSON[]), lambda t: {'name': t->>'name', 'arguments': "
        "CASE WHEN json_type(t, '$.arguments') = 'VARCHAR' AND json_valid(t->>'arguments') "
        "AND json_type(t->>'arguments') = 'OBJECT' THEN json(t->>'arguments') ELSE t->'arguments' END}))"
    )
    ts = "coalesce(ts_record, $day_ts, $ingested_at)"
    return f"""
INSERT OR IGNORE INTO traces
SELECT
    CAST(j.span_id AS VARCHAR),
    CAST(j.trace_id AS VARCHAR),
    CAST(j.parent_span_id AS VARCHAR),
    {ts},
    CAST(timezone('UTC', {ts}) AS DATE),
    CASE WHEN ts_record IS NOT NULL THEN 'record' WHEN $day_ts IS NOT NULL THEN 'day_folder' ELSE 'ingest_time' END,
    j.workflow,
    split_part(j.prompt_version, ':', 1),
    j.prompt_version,
    j.package_hash,
    j.model,
    CASE WHEN {_t('input.messages')} = 'ARRAY' THEN j.input.messages END,
    CASE WHEN {_t('input.variables')} = 'OBJECT' THEN j.input.variables END,
    CASE WHEN {_t('output')} = 'VARCHAR' THEN j.output->>'$'
        WHEN {_t('output')} IN ('-', 'NULL') THEN NULL ELSE CAST(j.output AS VARCHAR) END,
    CASE WHEN {_t('tool_calls')} = 'ARRAY' THEN {tool_calls} END,
    j.finish_reason,
    CASE WHEN j.status IS NOT NULL THEN j.status
        WHEN {_t('error')} IN ('-', 'NULL') THEN 'ok'
        WHEN {_t('error')} = 'BOOLEAN' THEN CASE WHEN CAST(j.error AS BOOLEAN) THEN 'error' ELSE 'ok' END
        ELSE 'error' END,
    CASE WHEN {_t('error')} = 'VARCHAR' THEN j.error->>'$'
        WHEN {_t('error')} = 'OBJECT' THEN coalesce(j.error->>'$.type', j.error->>'$.message', CAST(j.error AS VARCHAR))
        WHEN {_t('error')} IN ('-', 'NULL', 'BOOLEAN') THEN NULL ELSE CAST(j.error AS VARCHAR) END,
    j.latency_ms,
    j.usage.input_tokens,
    j.usage.output_tokens,
    j.cost_usd,
    CAST(j.session_id AS VARCHAR),
    CAST(j.user_id AS VARCHAR),
    CASE WHEN {_t('segment')} = 'OBJECT' THEN j.segment END,
    CASE WHEN j.feedback = 'up' THEN 1.0 WHEN j.feedback = 'down' THEN -1.0 ELSE try_cast(j.feedback AS DOUBLE) END,
    j.escalated,
    CASE WHEN {_t('correction')} NOT IN ('-', 'NULL') THEN j.correction END,
    CAST(j.retries AS INTEGER),
    j.fallback,
    nullif(json_merge_patch(line, {drop_known}), '{{}}'),
    'native',
    $source_file,
    ln,
    coalesce(CAST(j.span_id AS VARCHAR), sha256(CAST(json(line) AS VARCHAR))),
    $ingested_at
FROM {source}
WHERE ok
"""


def rejects_sql(source: str) -> str:
    """Rows of `source` that are not acceptable: (ln, jtype, reject_field, reject_reason)."""
    return f"""
SELECT ln, jtype, reject_field, reject_reason FROM {source}
WHERE NOT ok
ORDER BY ln
"""


def describe_unparsable(raw: bytes) -> tuple[str, str | None]:
    """Word the reason a line DuckDB could not take as a JSON object: (reason, field)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"line is not valid UTF-8 (byte {exc.start}: {exc.reason})", None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"invalid JSON: {exc.msg} at column {exc.colno}", None
    except RecursionError:
        return "invalid JSON: nested too deeply", None
    if not isinstance(value, dict):
        return f"line is JSON but not an object (got {type(value).__name__})", None
    return "invalid JSON (rejected by the JSON parser)", None

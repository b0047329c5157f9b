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


def _present(key: str) -> str:
    return f"(j.{key} IS NOT NULL AND json_type(j.{key}) <> 'NULL')"


def _checks() -> list[tuple[str, str, str]]:
    """(condition meaning 'bad', field, reason) in the order they are tested."""
    checks: list[tuple[str, str, str]] = []
    for key, (types, required, kind) in FIELDS.items():
        if required:
            checks.append((f"NOT {_present(key)}", key, f"missing required field '{key}'"))
        if types is not None:
            allowed = ", ".join(_sql_str(t) for t in types)
            checks.append(
                (f"{_present(key)} AND json_type(j.{key}) NOT IN ({allowed})", key, f"field '{key}' must be {kind}")
            )
    checks += [
        (
            f"NOT regexp_full_match(j.prompt_version->>'$', {_sql_str(PROMPT_VERSION_RE)})",
            "prompt_version",
            "field 'prompt_version' must look like <prompt_id>:v<MAJOR.MINOR.PATCH>",
        ),
        (
            f"{_present('timestamp')} AND try_cast(j.timestamp->>'$' AS TIMESTAMPTZ) IS NULL",
            "timestamp",
            "field 'timestamp' is not an RFC 3339 date-time",
        ),
        (
            f"{_present('status')} AND (j.status->>'$') NOT IN ('ok', 'error')",
            "status",
            "field 'status' must be 'ok' or 'error'",
        ),
        (
            f"{_present('feedback')} AND json_type(j.feedback) = 'VARCHAR' AND (j.feedback->>'$') NOT IN ('up', 'down')",
            "feedback",
            "field 'feedback' must be 'up', 'down' or a number",
        ),
        (
            f"{_present('input')} AND json_type(j.input, '$.messages') NOT IN ('ARRAY', 'NULL')",
            "input.messages",
            "field 'input.messages' must be an array",
        ),
        (
            f"{_present('input')} AND json_type(j.input, '$.variables') NOT IN ('OBJECT', 'NULL')",
            "input.variables",
            "field 'input.variables' must be an object",
        ),
        (
            f"{_present('usage')} AND json_type(j.usage, '$.input_tokens') NOT IN ('BIGINT', 'UBIGINT', 'NULL')",
            "usage.input_tokens",
            "field 'usage.input_tokens' must be an integer",
        ),
        (
            f"{_present('usage')} AND json_type(j.usage, '$.output_tokens') NOT IN ('BIGINT', 'UBIGINT', 'NULL')",
            "usage.output_tokens",
            "field 'usage.output_tokens' must be an integer",
        ),
        (
            f"{_present('tool_calls')} AND NOT list_bool_and(list_transform(CAST(j.tool_calls AS JSON[]), "
            "lambda t: json_type(t) = 'OBJECT' AND coalesce(json_type(t, '$.name') = 'VARCHAR', false)))",
            "tool_calls",
            "field 'tool_calls' must be a list of {name, arguments} objects with a string name",
        ),
    ]
    return checks


def _transform_spec() -> str:
    return json.dumps({key: "JSON" for key in FIELDS})


def _reject_case() -> tuple[str, str]:
    checks = _checks()
    field = "CASE " + " ".join(f"WHEN {cond} THEN {_sql_str(f)}" for cond, f, _ in checks) + " END"
    reason = "CASE " + " ".join(f"WHEN {cond} THEN {_sql_str(r)}" for cond, _, r in checks) + " END"
    return field, reason


def check_sql(source: str, target: str) -> str:
    """SQL creating temp table `target` (ln, line, j, jtype, reject_field, reject_reason)."""
    field, reason = _reject_case()
    spec = _sql_str(_transform_spec())
    return f"""
CREATE OR REPLACE TEMP TABLE {target} AS
WITH typed AS (
    SELECT ln, line, CASE WHEN json_valid(line) THEN json_type(line) END AS jtype FROM {source}
    WHERE line IS NOT NULL
), parsed AS (
    SELECT ln, line, jtype, CASE WHEN jtype = 'OBJECT' THEN json_transform(line, {spec}) END AS j FROM typed
)
SELECT ln, line, jtype, j,
    CASE WHEN jtype = 'OBJECT' THEN {field} END AS reject_field,
    CASE WHEN jtype = 'OBJECT' THEN {reason} END AS reject_reason
FROM parsed
"""


def _str(key: str) -> str:
    return f"(j.{key}->>'$')"


def insert_sql(source: str) -> str:
    """INSERT OR IGNORE of the acceptable rows of `source` into traces.

    Parameters: $source_file, $day_ts (TIMESTAMPTZ or NULL), $ingested_at.
    """
    drop_known = _sql_str(json.dumps({key: None for key in FIELDS}))
    ts = f"try_cast({_str('timestamp')} AS TIMESTAMPTZ)"
    ts_expr = f"coalesce({ts}, $day_ts, $ingested_at)"
    tool_calls = (
        "CASE WHEN j.tool_calls IS NOT NULL AND json_type(j.tool_calls) = 'ARRAY' THEN to_json(list_transform("
        "CAST(j.tool_calls AS JSON[]), lambda t: {'name': t->>'name', 'arguments': "
        "CASE WHEN json_type(t, '$.arguments') = 'VARCHAR' AND json_valid(t->>'arguments') "
        "AND json_type(t->>'arguments') = 'OBJECT' THEN json(t->>'arguments') ELSE t->'arguments' END})) END"
    )
    return f"""
INSERT OR IGNORE INTO traces
SELECT
    {_str('span_id')} AS span_id,
    {_str('trace_id')} AS trace_id,
    {_str('parent_span_id')} AS parent_span_id,
    {ts_expr} AS ts,
    CAST(timezone('UTC', {ts_expr}) AS DATE) AS day,
    CASE WHEN {ts} IS NOT NULL THEN 'record' WHEN $day_ts IS NOT NULL THEN 'day_folder' ELSE 'ingest_time' END AS ts_source,
    {_str('workflow')} AS workflow,
    split_part({_str('prompt_version')}, ':', 1) AS prompt_id,
    {_str('prompt_version')} AS prompt_version,
    {_str('package_hash')} AS package_hash,
    {_str('model')} AS model,
    CASE WHEN json_type(j.input, '$.messages') = 'ARRAY' THEN j.input->'$.messages' END AS input_messages,
    CASE WHEN json_type(j.input, '$.variables') = 'OBJECT' THEN j.input->'$.variables' END AS variables,
    CASE json_type(j.output) WHEN 'VARCHAR' THEN j.output->>'$' WHEN 'NULL' THEN NULL ELSE CAST(j.output AS VARCHAR) END AS output,
    {tool_calls} AS tool_calls,
    {_str('finish_reason')} AS finish_reason,
    coalesce({_str('status')}, CASE WHEN j.error IS NOT NULL AND json_type(j.error) NOT IN ('NULL', 'BOOLEAN') THEN 'error'
        WHEN json_type(j.error) = 'BOOLEAN' AND CAST(j.error AS BOOLEAN) THEN 'error' ELSE 'ok' END) AS status,
    CASE json_type(j.error) WHEN 'VARCHAR' THEN j.error->>'$'
        WHEN 'OBJECT' THEN coalesce(j.error->>'$.type', j.error->>'$.message', CAST(j.error AS VARCHAR))
        WHEN 'NULL' THEN NULL WHEN 'BOOLEAN' THEN NULL ELSE CAST(j.error AS VARCHAR) END AS error_type,
    CAST(j.latency_ms AS DOUBLE) AS latency_ms,
    CAST(j.usage->'$.input_tokens' AS BIGINT) AS input_tokens,
    CAST(j.usage->'$.output_tokens' AS BIGINT) AS output_tokens,
    CAST(j.cost_usd AS DOUBLE) AS cost_usd,
    {_str('session_id')} AS session_id,
    {_str('user_id')} AS user_id,
    CASE WHEN json_type(j.segment) = 'OBJECT' THEN j.segment END AS segment,
    CASE WHEN json_type(j.feedback) = 'VARCHAR' THEN CASE j.feedback->>'$' WHEN 'up' THEN 1.0 WHEN 'down' THEN -1.0 END
        ELSE CAST(j.feedback AS DOUBLE) END AS feedback,
    CAST(j.escalated AS BOOLEAN) AS escalated,
    CASE WHEN json_type(j.correction) <> 'NULL' THEN j.correction END AS correction,
    CAST(j.retries AS INTEGER) AS retries,
    CAST(j.fallback AS BOOLEAN) AS fallback,
    nullif(json_merge_patch(line, {drop_known}), '{{}}') AS attributes,
    'native' AS source_format,
    $source_file AS source_file,
    ln AS source_line,
    coalesce({_str('span_id')}, sha256(CAST(json(line) AS VARCHAR))) AS record_key,
    $ingested_at AS ingested_at
FROM {source}
WHERE jtype = 'OBJECT' AND reject_field IS NULL
"""


def rejects_sql(source: str) -> str:
    """Rows of `source` that are not acceptable: (ln, jtype, reject_field, reject_reason)."""
    return f"""
SELECT ln, jtype, reject_field, reject_reason FROM {source}
WHERE jtype IS DISTINCT FROM 'OBJECT' OR reject_field IS NOT NULL
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

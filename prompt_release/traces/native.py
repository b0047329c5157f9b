"""Native JSONL trace records -> `traces` rows, in DuckDB SQL over whole chunks.

A chunk of lines arrives as an Arrow table `(ln, line)`. One SQL statement
parses every line once into a struct of JSON fields, decides per line whether
it is acceptable (and if not, which field is at fault and why), and a second
statement inserts the acceptable ones into `traces`, converting types and
collecting every key the contract does not name into `attributes`. Python
only looks again at the few lines DuckDB could not parse, to word the reason.

That careful path is the reference; `fast_insert_sql` below is the fast path
most lines take (one parse, no staging table, plain INSERT), and hands every
line it cannot prove equivalent back to the careful path.
"""

from __future__ import annotations

import json

from prompt_release.registry.ids import VERSION_ID_PATTERN

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

# numeric fields whose values feed aggregates (p95 latency, cost per success, feedback rate)
FINITE = ("latency_ms", "cost_usd", "feedback")

# A line's prompt_version must be a version id the registry accepts
# (VERSION_ID_PATTERN); one it would refuse (a pre-release, `v01.0.0`) is rejected.


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
        "JSON"
        if types is None or types[0] in ("OBJECT", "ARRAY")
        else "DOUBLE"
        if types == NUMBER
        else "BIGINT"
        if types == INTEGER
        else "BOOLEAN"
        if types == ("BOOLEAN",)
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
                (
                    f"{_present(key)} AND json_type({_full(key)}) NOT IN ({allowed})",
                    key,
                    f"field '{key}' must be {kind}",
                )
            )
    for key, types in NESTED.items():
        allowed = ", ".join(_sql_str(t) for t in (*types, "NULL"))
        kind = (
            "an integer"
            if types == INTEGER
            else f"an {types[0].lower()}"
            if types[0] == "OBJECT"
            else f"an {types[0].lower()}"
        )
        checks.append(
            (f"coalesce(json_type(line, '$.{key}') NOT IN ({allowed}), false)", key, f"field '{key}' must be {kind}")
        )
    for key in FINITE:
        # JSON has no NaN/Infinity, but DuckDB's parser takes them (and 1e400 overflows to inf):
        # one such value would make every aggregate over the column inf or NaN
        checks.append(
            (
                f"{_present(key)} AND json_type({_full(key)}) IN ('DOUBLE', 'BIGINT', 'UBIGINT') "
                f"AND NOT coalesce(isfinite(try_cast(json_extract_string(line, '$.\"{key}\"') AS DOUBLE)), false)",
                key,
                f"field '{key}' must be a finite number (not NaN, Infinity or out of range)",
            )
        )
    checks += [
        (
            f"NOT regexp_full_match(json_extract_string(line, '$.prompt_version'), {_sql_str(VERSION_ID_PATTERN)})",
            "prompt_version",
            "field 'prompt_version' must be a version id the registry accepts: <prompt_id>:v<MAJOR.MINOR.PATCH>",
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
            f"{_present('retries')} AND json_type(line, '$.retries') IN ('BIGINT', 'UBIGINT') "
            "AND try_cast(json_extract_string(line, '$.retries') AS INTEGER) IS NULL",
            "retries",
            "field 'retries' is out of range for an integer",
        ),
        (
            f"{_present('tool_calls')} AND NOT {_TOOL_CALLS_OK.format(value=_full('tool_calls'))}",
            "tool_calls",
            "field 'tool_calls' must be a list of {name, arguments} objects with a string name",
        ),
    ]
    return checks


# try(): AND does not short-circuit in DuckDB, so this also meets non-arrays (whose type test fails anyway)
_TOOL_CALLS_OK = (
    "coalesce(list_bool_and(list_transform(try(CAST({value} AS JSON[])), "
    "lambda t: json_type(t) = 'OBJECT' AND coalesce(json_type(t, '$.name') = 'VARCHAR', false))), true)"
)


def _fast_ok() -> str:
    """Cheap test that a line is acceptable: one type string per row against one regex."""
    return (
        f"regexp_full_match(type_string, {_sql_str(_types_regex())})"
        f" AND regexp_full_match(j.prompt_version, {_sql_str(VERSION_ID_PATTERN)})"
        " AND (j.timestamp IS NULL OR ts_record IS NOT NULL)"
        " AND (j.status IS NULL OR j.status IN ('ok', 'error'))"
        f" AND ({_t('feedback')} <> 'VARCHAR' OR j.feedback IN ('up', 'down'))"
        f" AND ({_t('tool_calls')} <> 'ARRAY' OR {_TOOL_CALLS_OK.format(value='j.tool_calls')})"
        # a number past INTEGER would fail the whole insert's CAST
        " AND (j.retries IS NULL OR try_cast(j.retries AS INTEGER) IS NOT NULL)"
        " AND (j.latency_ms IS NULL OR isfinite(j.latency_ms))"
        " AND (j.cost_usd IS NULL OR isfinite(j.cost_usd))"
        f" AND ({_t('feedback')} IN ('-', 'NULL', 'VARCHAR') OR coalesce(isfinite(try_cast(j.feedback AS DOUBLE)), false))"
    )


def check_sql(source: str, per_row: bool = False) -> str:
    """SELECT of one row per non-blank line of `source` with ln, line, the parsed
    struct `j`, the JSON `types` of known keys, `ok`, and for lines that are not
    ok, jtype / reject_field / reject_reason. `per_row`: `source` also has the
    ROW_COLUMNS, passed through (see fast_insert_sql).
    """
    extra = "".join(f", {c}" for c in ROW_COLUMNS) if per_row else ""
    checks = _checks()
    field = "CASE " + " ".join(f"WHEN {cond} THEN {_sql_str(f)}" for cond, f, _ in checks) + " ELSE '?' END"
    reason = "CASE " + " ".join(f"WHEN {cond} THEN {_sql_str(r)}" for cond, _, r in checks) + " ELSE 'rejected' END"
    spec = _sql_str(json.dumps(TRANSFORM))
    paths = ", ".join(_sql_str(f"$.{key}") for key in TYPE_PATHS)
    return f"""
WITH parsed AS (
    -- try(): a line that is not JSON comes out NULL instead of failing the chunk
    SELECT ln, line{extra},
        try(json_transform(line, {spec})) AS j,
        try(list_transform(json_type(line, [{paths}]), lambda t: coalesce(t, '-'))) AS types
    FROM {source} WHERE line IS NOT NULL
), fast AS (
    SELECT *, array_to_string(types, ',') AS type_string, try_cast(j.timestamp AS TIMESTAMPTZ) AS ts_record FROM parsed
), judged AS (
    SELECT ln, line{extra}, j, types, ts_record, coalesce({_fast_ok()}, false) AS ok FROM fast
), typed AS (
    SELECT *, CASE WHEN ok THEN 'OBJECT' ELSE try(json_type(line)) END AS jtype FROM judged
)
SELECT ln, line{extra}, j, types, ts_record, ok, jtype,
    CASE WHEN NOT ok AND jtype = 'OBJECT' THEN {field} END AS reject_field,
    CASE WHEN NOT ok AND jtype = 'OBJECT' THEN {reason} END AS reject_reason
FROM typed
"""


def insert_sql(source: str, per_row: bool = False) -> str:
    """INSERT OR IGNORE of the acceptable rows of `source` (see check_sql) into traces;
    of rows sharing a record_key, the first (by ln) is the one offered, so which
    line a repeated record is stored from does not depend on the plan.

    Parameters: $source_file, $day_ts (TIMESTAMPTZ or NULL), $ingested_at; with
    `per_row`, source_file and day_ts are columns of `source` (as is source_line,
    stored instead of ln) and the statement returns the source_file of every row inserted.
    """
    source_file, day_ts, source_line = ROW_COLUMNS if per_row else ("$source_file", "$day_ts", "ln")
    drop_known = _sql_str(json.dumps({key: None for key in FIELDS}))
    tool_calls = (
        "to_json(list_transform(CAST(j.tool_calls AS JSON[]), lambda t: {'name': t->>'name', 'arguments': "
        "CASE WHEN json_type(t, '$.arguments') = 'VARCHAR' AND json_valid(t->>'arguments') "
        "AND json_type(t->>'arguments') = 'OBJECT' THEN json(t->>'arguments') ELSE t->'arguments' END}))"
    )
    ts = f"coalesce(ts_record, {day_ts}, $ingested_at)"
    return f"""
INSERT OR IGNORE INTO traces
SELECT
    CAST(j.span_id AS VARCHAR),
    CAST(j.trace_id AS VARCHAR),
    CAST(j.parent_span_id AS VARCHAR),
    {ts},
    CAST(timezone('UTC', {ts}) AS DATE),
    CASE WHEN ts_record IS NOT NULL THEN 'record' WHEN {day_ts} IS NOT NULL THEN 'day_folder' ELSE 'ingest_time' END,
    j.workflow,
    split_part(j.prompt_version, ':', 1),
    j.prompt_version,
    j.package_hash,
    j.model,
    CASE WHEN {_t("input.messages")} = 'ARRAY' THEN j.input.messages END,
    CASE WHEN {_t("input.variables")} = 'OBJECT' THEN j.input.variables END,
    CASE WHEN {_t("output")} = 'VARCHAR' THEN j.output->>'$'
        WHEN {_t("output")} IN ('-', 'NULL') THEN NULL ELSE CAST(j.output AS VARCHAR) END,
    CASE WHEN {_t("tool_calls")} = 'ARRAY' THEN {tool_calls} END,
    j.finish_reason,
    CASE WHEN j.status IS NOT NULL THEN j.status
        WHEN {_t("error")} IN ('-', 'NULL') THEN 'ok'
        WHEN {_t("error")} = 'BOOLEAN' THEN CASE WHEN CAST(j.error AS BOOLEAN) THEN 'error' ELSE 'ok' END
        ELSE 'error' END,
    CASE WHEN {_t("error")} = 'VARCHAR' THEN j.error->>'$'
        WHEN {_t("error")} = 'OBJECT' THEN coalesce(j.error->>'$.type', j.error->>'$.message', CAST(j.error AS VARCHAR))
        WHEN {_t("error")} IN ('-', 'NULL', 'BOOLEAN') THEN NULL ELSE CAST(j.error AS VARCHAR) END,
    j.latency_ms,
    j.usage.input_tokens,
    j.usage.output_tokens,
    j.cost_usd,
    CAST(j.session_id AS VARCHAR),
    CAST(j.user_id AS VARCHAR),
    CASE WHEN {_t("segment")} = 'OBJECT' THEN j.segment END,
    CASE WHEN j.feedback = 'up' THEN 1.0 WHEN j.feedback = 'down' THEN -1.0 ELSE try_cast(j.feedback AS DOUBLE) END,
    j.escalated,
    CASE WHEN {_t("correction")} NOT IN ('-', 'NULL') THEN j.correction END,
    CAST(j.retries AS INTEGER),
    j.fallback,
    nullif(json_merge_patch(line, {drop_known}), '{{}}'),
    'native',
    {source_file},
    {source_line},
    {CAREFUL_RECORD_KEY},
    $ingested_at
FROM {source}
WHERE ok
QUALIFY row_number() OVER (PARTITION BY {CAREFUL_RECORD_KEY} ORDER BY ln) = 1
{"RETURNING source_file" if per_row else ""}
"""


CAREFUL_RECORD_KEY = "coalesce(CAST(j.span_id AS VARCHAR), sha256(CAST(json(line) AS VARCHAR)))"
# Columns of a source holding lines of many files (`per_row`): the file, its day
# folder's midnight (or NULL) and the line number in it; `ln` is then only a row id.
ROW_COLUMNS = ("source_file", "day_ts", "source_line")


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


# ---------------------------------------------------------------------------
# The fast path: no staging table, no json_type pass, no json_merge_patch, a plain INSERT.
#
# `fast_insert_sql` parses each line into a struct whose every field is JSON
# text (json_transform) plus its key list (json_keys), tells types apart by
# the first character of that text instead of asking json_type per path,
# builds `attributes` from the file's unknown keys (fields of the same parse)
# instead of json_merge_patch, and inserts with a plain INSERT guarded by an
# anti-join on record_key (INSERT OR IGNORE alone cost ~4 s of CPU per million
# rows, as much as the rest of the insert). It is sound, not complete: it
# inserts only lines it can prove the careful path (check_sql + insert_sql)
# would accept and convert to the same row (attributes: same keys and values,
# key order may differ), and hands every other line -- rejects, but also
# anything unusual: an unknown key not yet seen in the file, an empty `input`,
# an id past BIGINT -- to the careful path through `_native_defer(ln)`, which
# words reject reasons and dedups with INSERT OR IGNORE as before.
# tests/traces/test_native_fast_path.py compares both paths row for row.

FAST_DEFER = "_native_defer"


def fast_unknown_keys_ok(key: str, taken: set[str]) -> bool:
    """Whether an unknown key can be a field of the fast path's struct: struct field
    names are case-insensitive in DuckDB and may not be empty."""
    return bool(key) and key.lower() not in taken


def _fast_spec(unknown: list[str]) -> str:
    spec: dict[str, object] = {key: "JSON" for key in FIELDS}
    spec["input"] = {"messages": "JSON", "variables": "JSON"}
    spec["usage"] = {"input_tokens": "JSON", "output_tokens": "JSON"}
    for key in unknown:
        spec[key] = "JSON"
    return _sql_str(json.dumps(spec))


def _ident(key: str) -> str:
    return '"' + key.replace('"', '""') + '"'


def _f(key: str) -> str:
    # as VARCHAR: a JSON value cast to DOUBLE/BOOLEAN would be parsed ('"5"' -> 5), the text is what is tested
    return f"CAST(j.{_ident(key)} AS VARCHAR)"


def _is_str(x: str) -> str:
    return f"starts_with({x}, '\"')"


def _unescape(x: str) -> str:
    # JSON text of a string -> the string; only escaped strings need the parser
    return f"CASE WHEN contains({x}, '\\') THEN {x}->>'$' ELSE substr({x}, 2, length({x}) - 2) END"


def _is_int(x: str) -> str:
    # json_type says BIGINT/UBIGINT for integer literals; UBIGINT-only values go the careful way
    return f"(regexp_full_match({x}, '-?[0-9]+') AND try_cast({x} AS BIGINT) IS NOT NULL)"


def _is_num(x: str) -> str:
    return f"(NOT {_is_str(x)} AND coalesce(isfinite(try_cast({x} AS DOUBLE)), false))"


def _fast_type_ok(key: str, x: str) -> str:
    types, required, _ = FIELDS[key]
    if types is None:
        test = "true"
    elif types == ID:
        test = f"({_is_str(x)} OR {_is_int(x)})"
    elif types == STRING:
        test = _is_str(x)
    elif types == NUMBER:
        test = _is_num(x)
    elif types == INTEGER:
        test = _is_int(x)
    elif types == ("OBJECT",):
        test = f"starts_with({x}, '{{')"
    elif types == ("ARRAY",):
        test = f"starts_with({x}, '[')"
    elif types == ("BOOLEAN",):
        test = f"{x} IN ('true', 'false')"
    elif key == "feedback":
        test = f"({x} IN ('\"up\"', '\"down\"') OR {_is_num(x)})"
    else:  # pragma: no cover - a new field kind must be taught to the fast path
        raise AssertionError(f"no fast type test for {key}")
    return f"{x} IS NOT NULL AND {test}" if required else f"({x} IS NULL OR {test})"


def _surely_ok(unknown: list[str]) -> str:
    allowed = ", ".join(_sql_str(k) for k in [*FIELDS, *unknown])
    present = " + ".join(f"(j.{_ident(k)} IS NOT NULL)::INTEGER" for k in [*FIELDS, *unknown])
    nested = [
        # a struct target gives all-NULL fields for a non-object: require a field
        # present, so `input`/`usage` surely were objects (else the careful way)
        "(j.input IS NULL OR (j.input.messages IS NOT NULL OR j.input.variables IS NOT NULL))",
        "(j.input.messages IS NULL OR starts_with(j.input.messages, '['))",
        "(j.input.variables IS NULL OR starts_with(j.input.variables, '{'))",
        "(j.usage IS NULL OR (j.usage.input_tokens IS NOT NULL OR j.usage.output_tokens IS NOT NULL))",
        f"(j.usage.input_tokens IS NULL OR {_is_int('CAST(j.usage.input_tokens AS VARCHAR)')})",
        f"(j.usage.output_tokens IS NULL OR {_is_int('CAST(j.usage.output_tokens AS VARCHAR)')})",
    ]
    rules = [
        "j IS NOT NULL",
        # every key of the line is a field of the parse: cheap when no key is null
        # (then the keys are exactly the non-NULL fields), else ask the list
        f"CASE WHEN len(keys) = {present} THEN true ELSE list_has_all([{allowed}], keys) END",
        *(_fast_type_ok(key, _f(key)) for key in FIELDS if key not in ("input", "usage")),
        *nested,
        f"regexp_full_match(prompt_version, {_sql_str(VERSION_ID_PATTERN)})",
        "(j.timestamp IS NULL OR ts_record IS NOT NULL)",
        f"(j.status IS NULL OR {_unescape(_f('status'))} IN ('ok', 'error'))",
        "(j.retries IS NULL OR try_cast(CAST(j.retries AS VARCHAR) AS INTEGER) IS NOT NULL)",
        f"(j.tool_calls IS NULL OR {_TOOL_CALLS_OK.format(value='j.tool_calls')})",
    ]
    return " AND ".join(rules)


def fast_insert_sql(
    source: str, unknown: list[str], skip_lines: bool, skip_stored: bool = True, per_row: bool = False
) -> str:
    """Plain INSERT into traces of the lines of `source` (ln, line) that are surely
    acceptable and whose record_key is not in traces yet; every other non-blank line
    is passed to the `_native_defer(ln)` function (and not inserted). With
    `skip_lines`, lines listed in temp table `_native_skip(ln)` are left out entirely.
    `skip_stored=False` drops the anti-join on keys already in traces (each
    chunk would hash every stored key again): only for a file ingested into a
    table that was empty when it began, where the unique index turns a key
    repeated across chunks into a ConstraintException (see `ingest._optimistic`).

    `unknown`: keys outside the contract that may appear (each becomes a field of
    the parse, so attributes are built without re-parsing the line). Parameters and
    `per_row` as insert_sql (then `ln` is the row id that `_native_defer` and `_native_skip` name).
    """
    source_file, day_ts, source_line = ROW_COLUMNS if per_row else ("$source_file", "$day_ts", "ln")
    extra = "".join(f", {c}" for c in ROW_COLUMNS) if per_row else ""
    parts = ", ".join(
        f"CASE WHEN j.{_ident(k)} IS NOT NULL THEN {_sql_str(json.dumps(k) + ':')} || {_f(k)} "
        f"WHEN list_contains(keys, {_sql_str(k)}) THEN {_sql_str(json.dumps(k) + ':null')} END"
        for k in unknown
    )
    attributes = f"nullif('{{' || concat_ws(',', {parts}) || '}}', '{{}}')" if unknown else "NULL"

    def ident(key: str) -> str:
        x = _f(key)
        return f"CASE WHEN {_is_str(x)} THEN {_unescape(x)} ELSE {x} END"

    def text(key: str) -> str:
        return _unescape(_f(key))

    tool_calls = (
        "to_json(list_transform(CAST(j.tool_calls AS JSON[]), lambda t: {'name': t->>'name', 'arguments': "
        "CASE WHEN json_type(t, '$.arguments') = 'VARCHAR' AND json_valid(t->>'arguments') "
        "AND json_type(t->>'arguments') = 'OBJECT' THEN json(t->>'arguments') ELSE t->'arguments' END}))"
    )
    ts = f"coalesce(ts_record, {day_ts}, $ingested_at)"
    skip = "AND ln NOT IN (SELECT ln FROM _native_skip)" if skip_lines else ""
    stored = "AND NOT EXISTS (SELECT 1 FROM traces t WHERE t.record_key = named.record_key)" if skip_stored else ""
    return f"""
INSERT INTO traces
WITH parsed AS (
    SELECT ln, line{extra},
        try(json_transform(line, {_fast_spec(unknown)})) AS j,
        try(json_keys(line)) AS keys
    FROM {source} WHERE line IS NOT NULL {skip}
), named AS (
    SELECT *,
        CASE WHEN {_is_str(_f("prompt_version"))} THEN {text("prompt_version")} END AS prompt_version,
        try_cast(CASE WHEN {_is_str(_f("timestamp"))} THEN {text("timestamp")} END AS TIMESTAMPTZ) AS ts_record,
        coalesce({ident("span_id")}, sha256(CAST(try(json(line)) AS VARCHAR))) AS record_key
    FROM parsed
)
SELECT
    {ident("span_id")},
    {ident("trace_id")},
    {ident("parent_span_id")},
    {ts},
    CAST(timezone('UTC', {ts}) AS DATE),
    CASE WHEN ts_record IS NOT NULL THEN 'record' WHEN {day_ts} IS NOT NULL THEN 'day_folder' ELSE 'ingest_time' END,
    {text("workflow")},
    split_part(prompt_version, ':', 1),
    prompt_version,
    {text("package_hash")},
    {text("model")},
    j.input.messages,
    j.input.variables,
    CASE WHEN {_is_str(_f("output"))} THEN {text("output")} ELSE {_f("output")} END,
    CASE WHEN j.tool_calls IS NOT NULL THEN {tool_calls} END,
    {text("finish_reason")},
    CASE WHEN j.status IS NOT NULL THEN {text("status")}
        WHEN j.error IS NULL OR {_f("error")} = 'false' THEN 'ok' ELSE 'error' END,
    CASE WHEN {_is_str(_f("error"))} THEN {text("error")}
        WHEN starts_with({_f("error")}, '{{') THEN coalesce(j.error->>'$.type', j.error->>'$.message', {_f("error")})
        WHEN {_f("error")} IN ('true', 'false') THEN NULL ELSE {_f("error")} END,
    CAST({_f("latency_ms")} AS DOUBLE),
    CAST(CAST(j.usage.input_tokens AS VARCHAR) AS BIGINT),
    CAST(CAST(j.usage.output_tokens AS VARCHAR) AS BIGINT),
    CAST({_f("cost_usd")} AS DOUBLE),
    {ident("session_id")},
    {ident("user_id")},
    j.segment,
    CASE WHEN {_f("feedback")} = '"up"' THEN 1.0 WHEN {_f("feedback")} = '"down"' THEN -1.0 ELSE CAST({_f("feedback")} AS DOUBLE) END,
    CAST({_f("escalated")} AS BOOLEAN),
    j.correction,
    CAST({_f("retries")} AS INTEGER),
    CAST({_f("fallback")} AS BOOLEAN),
    {attributes},
    'native',
    {source_file},
    {source_line},
    record_key,
    $ingested_at
FROM named
-- the test inside CASE WHEN runs as a filter: each AND narrows the rows the next one sees
WHERE CASE WHEN {_surely_ok(unknown)} THEN true ELSE {FAST_DEFER}(ln) END
    {stored}
{"RETURNING source_file" if per_row else ""}
"""


def duplicate_lines_sql(source: str) -> str:
    """Line numbers of `source` whose record_key may occur twice in it (same span_id
    as transformed by the careful path, else same minified JSON): the plain INSERT
    of the fast path must not see them, the careful path's INSERT OR IGNORE dedups them."""
    return f"""
SELECT ln FROM (
    SELECT ln, hash(coalesce(
        try(json_transform(line, '{{"span_id": "VARCHAR"}}')).span_id,
        '{{' || CAST(try(json(line)) AS VARCHAR),
        line)) AS h
    FROM {source} WHERE line IS NOT NULL
)
QUALIFY count(*) OVER (PARTITION BY h) > 1
"""

"""Translate the common subset of JSON Schema into a DuckDB SQL predicate that proves validity.

Mining must run at scan speed, and jsonschema in Python costs ~100 us a value.
This module turns a schema into a SQL boolean over a JSON expression that is
TRUE only when the value is certainly valid; the detectors then send only the
rows it cannot prove valid through jsonschema (which stays the judge and gives
the failing path). Soundness rule: SQL is never more lenient than jsonschema.
Supported: `type` (object, array without items rules, string, number, integer,
boolean, null, or a list of them), `properties`, `required`,
`additionalProperties` (boolean), all-string `enum`, `minimum`, `maximum`,
`exclusiveMinimum`, `exclusiveMaximum`, and `pattern` made of plain regex
syntax (RE2 reads `\\d`, `\\w` as ASCII, stricter than Python's Unicode
classes, so still sound). Annotations (`$schema`, `title`, `description`,
`$id`, `examples`, `default`) are ignored. Anything else makes `valid_sql`
return None: that schema is validated row by row in Python.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_ANNOTATIONS = {"$schema", "$id", "title", "description", "examples", "default", "$comment"}
_SUPPORTED = _ANNOTATIONS | {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "pattern",
}
_SAFE_PATTERN = re.compile(r"^[\w\s\^\$\[\]\-\{\},.+*?|()\\:/@#]*$")
_NUMERIC = "('BIGINT', 'UBIGINT', 'DOUBLE')"
_TYPES = {
    "object": "json_type({e}) = 'OBJECT'",
    "array": "json_type({e}) = 'ARRAY'",
    "string": "json_type({e}) = 'VARCHAR'",
    "number": f"json_type({{e}}) IN {_NUMERIC}",
    "integer": "json_type({e}) IN ('BIGINT', 'UBIGINT')",
    "boolean": "json_type({e}) = 'BOOLEAN'",
    "null": "json_type({e}) = 'NULL'",
}


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _key_path(key: str) -> str:
    return _lit("$." + json.dumps(key))


def valid_sql(schema: Any, expr: str, _depth: int = 0) -> str | None:
    """A SQL predicate TRUE only if the JSON value `expr` satisfies `schema`; None if unsupported."""
    if schema is True or schema == {}:
        return "TRUE"
    if not isinstance(schema, Mapping) or set(schema) - _SUPPORTED:
        return None
    # Bind the value once (a one-element list and a lambda): DuckDB re-parses JSON text on
    # every json_* call, so repeating `expr` in each test would parse it many times.
    var = f"pr_v{_depth}"
    body = _valid_body(schema, var, _depth)
    if body is None:
        return None
    return f"coalesce(list_transform([{expr}], lambda {var}: {body})[1], FALSE)"


def _valid_body(schema: Mapping, e: str, _depth: int) -> str | None:
    parts: list[str] = [f"{e} IS NOT NULL"]
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not all(k in _TYPES for k in kinds):
            return None
        parts.append("(" + " OR ".join(_TYPES[k].format(e=e) for k in kinds) + ")")
    if "enum" in schema:
        values = schema["enum"]
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            return None
        parts.append(f"(json_type({e}) = 'VARCHAR' AND ({e} ->> '$') IN ({', '.join(_lit(v) for v in values)}))")
    bounds = [("minimum", ">="), ("maximum", "<="), ("exclusiveMinimum", ">"), ("exclusiveMaximum", "<")]
    for keyword, op in bounds:
        if keyword in schema:
            bound = schema[keyword]
            if isinstance(bound, bool) or not isinstance(bound, (int, float)):
                return None
            # Only numbers are bounded; other types pass this keyword (as in JSON Schema).
            parts.append(f"(json_type({e}) NOT IN {_NUMERIC} OR TRY_CAST({e} AS DOUBLE) {op} {float(bound)!r})")
    if "pattern" in schema:
        pattern = schema["pattern"]
        if not isinstance(pattern, str) or not _SAFE_PATTERN.match(pattern):
            return None
        parts.append(f"(json_type({e}) <> 'VARCHAR' OR regexp_matches({e} ->> '$', {_lit(pattern)}))")
    object_rules = [k for k in ("properties", "required", "additionalProperties") if k in schema]
    if object_rules:
        sub: list[str] = []
        props = schema.get("properties") or {}
        if not isinstance(props, Mapping):
            return None
        for name, prop_schema in props.items():
            inner = valid_sql(prop_schema, f"json_extract({e}, {_key_path(name)})", _depth + 1)
            if inner is None:
                return None
            sub.append(f"(NOT json_exists({e}, {_key_path(name)}) OR {inner})")
        for name in schema.get("required") or []:
            sub.append(f"json_exists({e}, {_key_path(name)})")
        extra = schema.get("additionalProperties", True)
        if extra is False:
            allowed = ", ".join(_lit(k) for k in props) or "NULL"
            sub.append(f"len(list_filter(json_keys({e}), lambda k: NOT list_contains([{allowed}], k))) = 0")
        elif extra is not True:
            return None
        if sub:
            parts.append(f"(json_type({e}) <> 'OBJECT' OR ({' AND '.join(sub)}))")
    return "(" + " AND ".join(parts) + ")"

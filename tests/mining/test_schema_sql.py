"""The SQL proof of JSON Schema validity never accepts what jsonschema rejects."""

from __future__ import annotations

import json

import duckdb
import pytest
from jsonschema import Draft202012Validator

from prompt_release.mining.schema_sql import valid_sql
from tests.mining.support import ORDER, ROUTE_SCHEMA

VALUES = [
    {"route": "billing", "confidence": 0.9},
    {"route": "billing", "confidence": 1},
    {"route": "billing", "confidence": 0},
    {"route": "refunds", "confidence": 0.9},
    {"route": "billing", "confidence": 1.5},
    {"route": "billing"},
    {"route": "billing", "confidence": 0.5, "extra": 1},
    {"route": 3, "confidence": 0.5},
    {"route": None, "confidence": 0.5},
    {"route": "billing", "confidence": "0.5"},
    {"route": "billing", "confidence": True},
    [],
    "billing",
    3,
    None,
    {"order_id": "ORD-123456", "amount_usd": 50, "reason": "late"},
    {"order_id": "ORD-123456", "amount_usd": 0, "reason": "late"},
    {"order_id": "ORD-123456", "amount_usd": 1000, "reason": "other"},
    {"order_id": "ORD-123456", "amount_usd": 1000.5, "reason": "other"},
    {"order_id": "ORD-12345", "amount_usd": 5, "reason": "late"},
    {"order_id": "ORD-1234567", "amount_usd": 5, "reason": "late"},
    {"order_id": "ORD-123456", "amount_usd": 5, "reason": "lost"},
    {"order_id": "ORD-123456", "amount_usd": 5},
    {"order_id": "ORD-123456"},
    {"order_id": "xORD-123456", "amount_usd": 5, "reason": "late"},
    {"order_id": "ORD-١٢٣٤٥٦", "amount_usd": 5, "reason": "late"},  # Unicode digits: Python \\d would accept
]
SCHEMAS = [
    ROUTE_SCHEMA,
    ORDER.tools[0].parameters,
    ORDER.tools[1].parameters,
    {"type": ["string", "null"]},
    {"type": "integer", "minimum": 1},
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_sql_proof_is_sound_and_usually_decisive(schema):
    predicate = valid_sql(schema, "CAST($v AS JSON)")
    assert predicate is not None
    validator = Draft202012Validator(schema)
    con = duckdb.connect()
    for value in VALUES:
        proven = con.execute(f"SELECT {predicate}", {"v": json.dumps(value)}).fetchone()[0]
        if proven:
            assert validator.is_valid(value), value
        elif value != {"order_id": "ORD-١٢٣٤٥٦", "amount_usd": 5, "reason": "late"}:
            # Beyond soundness, the subset it handles it decides exactly (so Python sees only failures).
            assert not validator.is_valid(value), value


def test_unsupported_keywords_fall_back_to_python():
    assert valid_sql({"type": "string", "minLength": 3}, "x") is None
    assert valid_sql({"oneOf": [{"type": "string"}]}, "x") is None
    assert valid_sql({"type": "object", "properties": {"a": {"format": "email"}}}, "x") is None

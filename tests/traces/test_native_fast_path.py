"""The native fast path stores exactly what the careful path stores, line for line.

The fast path (one parse, plain INSERT) only takes lines it can prove the
careful path would accept, and must convert them to the very same row; every
other line goes the careful way. Both are run over the sample history and
over lines chosen to sit on the fast path's edges, and the tables compared.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pytest

from prompt_release.sample import generator as gen
from prompt_release.traces import ingest as ingest_module
from prompt_release.traces import ingest_paths

BASE = {"trace_id": "t", "workflow": "w", "prompt_version": "w:v1.0.0", "model": "m"}


def edge_lines() -> list[str]:
    records = [
        {**BASE, "span_id": "a1", "output": None, "parent_span_id": None},  # null-valued known keys
        {**BASE, "span_id": "a2", "route": None, "extra": {"k": [1, 2]}},  # null-valued and nested unknown keys
        {**BASE, "span_id": "a3", "Trace_ID": "x", "TRACE_id": 1},  # unknown keys differing from known ones in case
        {**BASE, "span_id": 7, "trace_id": 12345678901, "session_id": 5, "user_id": 'u"q\\'},  # numbers as ids, escapes
        {**BASE, "span_id": "a5", "input": {}, "usage": {}},  # empty objects: careful way
        {**BASE, "span_id": "a6", "input": {"messages": []}, "usage": {"input_tokens": 3}},
        {**BASE, "span_id": "a7", "latency_ms": 12, "cost_usd": 1e-7, "retries": 0, "feedback": 0.5},
        {**BASE, "span_id": "a8", "feedback": "up", "escalated": True, "fallback": False, "correction": "billing"},
        {**BASE, "span_id": "a9", "error": True, "status": None},
        {**BASE, "span_id": "b1", "error": {"message": "boom"}, "finish_reason": "length"},
        {**BASE, "span_id": "b2", "error": False},
        {**BASE, "span_id": "b3", "error": 42, "output": {"x": "é\u2028"}},
        {
            **BASE,
            "span_id": "b4",
            "output": 'plain \u00e9 "quoted"',
            "tool_calls": [{"name": "f", "arguments": '{"a": 1}'}],
        },
        {**BASE, "span_id": "b5", "timestamp": "2026-01-02T03:04:05.123+02:00", "segment": {"tier": "gold"}},
        {**BASE, "span_id": "b6", "usage": {"input_tokens": 1.5}},  # reject
        {**BASE, "span_id": "b7", "retries": 1.0},  # reject
        {**BASE, "span_id": "b8", "workflow": 3},  # reject
        {**BASE, "span_id": "b9", "latency_ms": "3"},  # reject
        {**BASE, "span_id": "c1", "retries": 99999999999},  # beyond INTEGER
        {**BASE, "span_id": "c2", "": "empty key", "a.b": 1, 'q"k': 2},
        {**BASE, "span_id": "c3", "feedback": "meh"},  # reject
        {**BASE, "input": {"messages": [{"role": "user", "content": "no span id"}]}},
        {**BASE, "escalated": "true"},  # reject
        {**BASE, "span_id": "c4", "status": "weird"},  # reject
        {**BASE, "span_id": "c5", "span_id_2": 1, "input": "not an object"},  # reject
        {**BASE, "span_id": "c6", "usage": [1]},  # reject
        {**BASE, "span_id": 18446744073709551615},  # UBIGINT id: careful way
        # strings that print like another JSON type, and their non-string twins
        {**BASE, "span_id": "e1", "workflow": "5", "model": "true", "finish_reason": ""},
        {**BASE, "span_id": "e2", "workflow": 5},  # reject
        {**BASE, "span_id": "e3", "model": True},  # reject
        {**BASE, "span_id": "e4", "model": "NaN", "status": "ok", "finish_reason": "[x"},
        {**BASE, "span_id": "e5", "model": float("nan")},  # reject (json.dumps writes NaN)
        {**BASE, "span_id": "e6", "workflow": float("-inf")},  # reject
        {**BASE, "span_id": "e7", "workflow": "-Infinity", "session_id": "-x", "user_id": "{not json"},
        {**BASE, "span_id": "123", "trace_id": "0af7651916cd43dd8448eb211c80319c"},
        {**BASE, "span_id": 124, "parent_span_id": "-12", "user_id": -12},
        {**BASE, "span_id": 1.5},  # reject
        {**BASE, "span_id": "1.5", "session_id": "1e5"},
        {**BASE, "span_id": "e8", "trace_id": 99999999999999999999999},  # a DOUBLE to the parser: reject
        {**BASE, "span_id": "e9", "trace_id": "99999999999999999999999"},
        {**BASE, "span_id": "f1", "trace_id": -9223372036854775809},  # reject
        {**BASE, "span_id": "f2", "trace_id": -9223372036854775808, "model": {"name": "m"}},  # reject
        {**BASE, "span_id": "f3", "prompt_version": ["w:v1.0.0"]},  # reject
        {**BASE, "span_id": "f6", "timestamp": 1764288000},  # reject
        {**BASE, "span_id": "f7", "timestamp": "2026-13-45T00:00:00Z"},  # reject
        {**BASE, "span_id": "f8", "timestamp": "2026-11-27 10:00:00", "package_hash": "123"},
        {**BASE, "span_id": "f9", "package_hash": 123},  # reject
    ]
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    lines += [
        '{"trace_id": "t", "workflow": "w", "prompt_version": "w:v1.0.0", "model": "m", "span_id": -0}',
        '{"trace_id": "t", "workflow": "w", "prompt_version": "w:v1.0.0", "model": "m", "span_id": "f4", "user_id": 1E+2}',
        '{"trace_id": "t", "workflow": "w", "prompt_version": "w:v1.0.0", "model": "m", "span_id": "f5", "status": "o\\u006b"}',
        '{"trace_id": "t", "trace_id": "u", "workflow": "w", "prompt_version": "w:v1.0.0", "model": "m", "span_id": "d1"}',
        "[1]",
        "{",
        '"s"',
        "  ",
        "",
        f"{json.dumps({**BASE, 'span_id': 'd2'})}  ",
    ]
    return lines


def table(warehouse: Path) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(
            "SELECT * EXCLUDE (ingested_at, attributes, ts, day), CASE WHEN ts_source <> 'ingest_time' THEN ts END, "
            "attributes FROM traces ORDER BY source_file, source_line, record_key"
        ).fetchall()
        rejects = con.execute(
            "SELECT source_file, line_number, reason, field, raw_length FROM ingest_rejects ORDER BY 1, 2"
        ).fetchall()
    finally:
        con.close()
    # attributes: same keys and values; key order is not part of the contract
    return [row[:-1] + (json.loads(row[-1]) if row[-1] is not None else None,) for row in rows], rejects


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fastpath")
    gen.generate(root / "history", days=2, seed=3, scale=0.3, start_date=date(2025, 6, 1))
    (root / "edges.jsonl").write_text("\n".join(edge_lines()) + "\n")
    return root


def test_fast_and_careful_paths_store_the_same(files: Path, tmp_path: Path, monkeypatch) -> None:
    fast = ingest_paths([files], warehouse=tmp_path / "fast.duckdb", format="auto")
    monkeypatch.setattr(ingest_module, "FAST_PATH", False)
    careful = ingest_paths([files], warehouse=tmp_path / "careful.duckdb", format="auto")
    assert fast.model_dump() == careful.model_dump()
    assert fast.total.stored > 100 and fast.total.rejected >= 10
    fast_rows, fast_rejects = table(tmp_path / "fast.duckdb")
    careful_rows, careful_rejects = table(tmp_path / "careful.duckdb")
    assert fast_rejects == careful_rejects
    assert len(fast_rows) == len(careful_rows)
    for got, want in zip(fast_rows, careful_rows):
        assert got == want

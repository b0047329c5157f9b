"""Ingest stores only prompt versions the registry accepts (docs/ingest.md, "Prompt versions")."""

from __future__ import annotations

import json

import duckdb
import pytest

from prompt_release.errors import UserError
from prompt_release.registry.ids import parse_version_id
from prompt_release.traces import ingest_paths
from tests.traces.otlp_builders import request, span

REFUSED = [
    "support_router:v1.6.0-rc1",
    "support_router:v1.6.0+build.7",
    "support_router:v01.6.0",
    "support_router:v1.6",
    "support_router:v1234567.0.0",
]


def _line(i: int, version: str) -> str:
    return json.dumps(
        {
            "trace_id": f"tr_{i}",
            "span_id": f"sp_{i}",
            "workflow": "support_router",
            "prompt_version": version,
            "model": "m",
            "timestamp": "2026-11-27T10:00:00Z",
        }
    )


def _rows(warehouse, sql):
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("version", REFUSED)
def test_the_registry_refuses_what_ingest_refuses(version):
    with pytest.raises(UserError):
        parse_version_id(version)


def test_native_line_with_a_version_the_registry_refuses_is_rejected(tmp_path, warehouse):
    path = tmp_path / "calls.jsonl"
    path.write_text(
        "\n".join([_line(0, "support_router:v1.6.0")] + [_line(i + 1, v) for i, v in enumerate(REFUSED)]) + "\n"
    )
    summary = ingest_paths([path], warehouse=warehouse)
    assert (summary.total.stored, summary.total.rejected) == (1, len(REFUSED))
    assert _rows(warehouse, "SELECT prompt_version FROM traces") == [("support_router:v1.6.0",)]
    rejects = _rows(warehouse, "SELECT line_number, field, reason FROM ingest_rejects ORDER BY line_number")
    assert [r[0] for r in rejects] == list(range(2, 2 + len(REFUSED)))
    assert all(r[1] == "prompt_version" and "registry accepts" in r[2] for r in rejects)


def test_otlp_call_with_a_version_the_registry_refuses_is_stored_without_one(tmp_path, warehouse):
    trace = "0af7651916cd43dd8448eb211c80319c"
    good = span(
        trace,
        "c000000000000001",
        "chat",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "m",
            "gen_ai.prompt.name": "support_router",
            "gen_ai.prompt.version": "1.6.0",
        },
    )
    pre = span(
        trace,
        "c000000000000002",
        "chat",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "m",
            "gen_ai.prompt.name": "support_router",
            "gen_ai.prompt.version": "1.6.0-rc1",
        },
    )
    full = span(
        trace,
        "c000000000000003",
        "chat",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "m",
            "gen_ai.prompt.version": "support_router:v1.6.0-rc1",
        },
    )
    path = tmp_path / "otlp.jsonl"
    path.write_text(request(good, pre, full) + "\n")
    summary = ingest_paths([path], warehouse=warehouse)
    assert (summary.total.stored, summary.total.rejected, summary.total.prompt_version_missing) == (3, 0, 2)
    assert _rows(warehouse, "SELECT span_id, prompt_version FROM traces ORDER BY span_id") == [
        ("c000000000000001", "support_router:v1.6.0"),
        ("c000000000000002", None),
        ("c000000000000003", None),
    ]

"""Late signals: feedback / escalation / correction / outcome events after the call, native and OTLP."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from prompt_release.mining.detectors import mine_failures
from prompt_release.release.canary import canary_metrics
from prompt_release.release.metrics import compute_version_metrics
from prompt_release.traces import ingest_paths
from prompt_release.warehouse import read_connection
from tests.traces.otlp_builders import request, span

DAY = "2026-11-27"
VERSION = "support_router:v1.5.2"


def call(i: int, **extra) -> str:
    record = {
        "trace_id": f"tr_{i}",
        "span_id": f"sp_{i}",
        "workflow": "support_router",
        "prompt_version": VERSION,
        "model": "m",
        "timestamp": f"{DAY}T10:00:00Z",
        "output": '{"route": "billing", "confidence": 0.9}',
        "latency_ms": 100,
    }
    record.update(extra)
    return json.dumps(record)


def rows(warehouse, sql: str, params=None):
    with read_connection(warehouse) as con:
        return con.execute(sql, params or []).fetchall()


def balanced(summary) -> None:
    for f in summary.files:
        assert f.records == f.stored + f.duplicates + f.rejected + f.non_call_spans, f


def negative_rate(warehouse, day: str = DAY) -> float:
    compute_version_metrics(warehouse, day)
    ((rate,),) = rows(
        warehouse, "SELECT negative_feedback_rate FROM version_metrics WHERE prompt_version = ?", [VERSION]
    )
    return rate


# file and lake backends (the S3 lake is the same code as the local-folder lake)
@pytest.mark.parametrize("any_warehouse", ["file", "lake"], indirect=True)
def test_late_feedback_line_counts_once_joins_its_call_and_an_unknown_call_is_kept(tmp_path, any_warehouse) -> None:
    day = tmp_path / "landing" / DAY
    day.mkdir(parents=True)
    (day / "calls.jsonl").write_text("\n".join(call(i) for i in range(4)) + "\n")
    first = ingest_paths([day / "calls.jsonl"], warehouse=any_warehouse)
    assert first.total.stored == 4 and first.total.events == 0
    assert negative_rate(any_warehouse) == 0.0

    down = json.dumps({"event": "feedback", "span_id": "sp_1", "value": "down", "timestamp": f"{DAY}T10:05:00Z"})
    lines = [
        down,
        down,  # the same event twice counts once
        json.dumps({"event": "escalation", "trace_id": "tr_2"}),
        json.dumps({"event": "feedback", "span_id": "sp_missing", "value": -1}),  # call not (yet) ingested
        json.dumps({"event": "feedback", "span_id": "sp_3", "value": "meh"}),  # bad value: rejected, named
        call(9),  # a call line in the same file still ingests
    ]
    (day / "later.jsonl").write_text("\n".join(lines) + "\n")
    summary = ingest_paths([day / "later.jsonl"], warehouse=any_warehouse)
    balanced(summary)
    (f,) = summary.files
    assert (f.lines_read, f.stored, f.duplicates, f.rejected) == (6, 4, 1, 1)
    assert (f.events, f.event_duplicates, f.events_unknown_call) == (3, 1, 1)
    ((reason, field, line),) = rows(any_warehouse, "SELECT reason, field, line_number FROM ingest_rejects")
    assert field == "value" and line == 5 and "feedback" in reason
    assert rows(any_warehouse, "SELECT events, event_duplicates, events_unknown_call FROM ingest_files "
                "WHERE source_file LIKE '%later.jsonl'") == [(3, 1, 1)]  # fmt: skip
    # the orphan event is stored, waiting for its call
    assert rows(any_warehouse, "SELECT kind, value FROM events WHERE span_id = 'sp_missing'") == [("feedback", -1.0)]

    # re-ingesting the file adds nothing
    again = ingest_paths([day / "later.jsonl"], warehouse=any_warehouse)
    assert again.total.events == 0 and again.total.event_duplicates == 4
    assert rows(any_warehouse, "SELECT count(*) FROM events") == [(3,)]

    # joined to the call: 1 of 5 calls has negative feedback now, 1 escalated (by trace)
    assert negative_rate(any_warehouse) == 1 / 5
    ((escalation,),) = rows(
        any_warehouse, "SELECT escalation_rate FROM version_metrics WHERE prompt_version = ?", [VERSION]
    )
    assert escalation == 1 / 5

    # the canary sees it too (no registry: failures from the failures table, empty here)
    metrics = canary_metrics(any_warehouse, "support_router", datetime.fromisoformat(f"{DAY}T00:00:00+00:00"),
                             versions=[VERSION])  # fmt: skip
    m = metrics.versions[VERSION]
    assert (m.traces, m.negative_feedback_rate, m.escalation_rate) == (5, 1 / 5, 1 / 5)


def test_newest_feedback_wins_over_the_logged_one_and_over_older_events(tmp_path, warehouse) -> None:
    day = tmp_path / "landing" / DAY
    day.mkdir(parents=True)
    (day / "calls.jsonl").write_text(call(1, feedback="down") + "\n" + call(2) + "\n")
    (day / "events.jsonl").write_text(
        json.dumps({"event": "feedback", "span_id": "sp_1", "value": "up", "timestamp": f"{DAY}T11:00:00Z"})
        + "\n"
        + json.dumps({"event": "feedback", "span_id": "sp_2", "value": "up", "timestamp": f"{DAY}T11:00:00Z"})
        + "\n"
        + json.dumps({"event": "feedback", "span_id": "sp_2", "value": "down", "timestamp": f"{DAY}T12:00:00Z"})
        + "\n"
    )
    ingest_paths([day], warehouse=warehouse)
    assert negative_rate(warehouse) == 1 / 2  # sp_1 changed its mind to up; sp_2's last word is down


CALL_ATTRS = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "m",
    "gen_ai.prompt.version": VERSION,
    "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "ok"}]}]),
}
TRACE = "0af7651916cd43dd8448eb211c80319c"
OTLP_DAY = "2025-11-28"  # the builders' span start time
CALL = "b7ad6b7169203331"


def test_otlp_feedback_events_and_annotations_count_once_and_join_their_calls(tmp_path, warehouse) -> None:
    day = tmp_path / "landing" / DAY
    day.mkdir(parents=True)
    other = "c7ad6b7169203332"
    calls = request(
        span(TRACE, CALL, "chat m", CALL_ATTRS),
        span("1af7651916cd43dd8448eb211c80319c", other, "chat m", CALL_ATTRS),
    )
    (day / "calls.jsonl").write_text(calls + "\n")
    ingest_paths([day / "calls.jsonl"], warehouse=warehouse)
    assert negative_rate(warehouse, OTLP_DAY) == 0.0

    # later: an OTel GenAI evaluation event on a span whose parent is the call, and an
    # OpenInference annotation about the other call's trace, and a judge's score
    late = request(
        span(TRACE, "d7ad6b7169203333", "user feedback", {}, parent=CALL,
             events=[("gen_ai.evaluation.result", {"gen_ai.evaluation.name": "user_feedback",
                                                    "gen_ai.evaluation.score.label": "thumbs_down"})]),
        span("1af7651916cd43dd8448eb211c80319c", "e7ad6b7169203334", "annotate", {
            "trace.annotations.0.annotation.name": "escalation",
            "trace.annotations.0.annotation.label": "escalated",
            "trace.annotations.0.annotation.annotator_kind": "HUMAN",
            "annotations.0.annotation.name": "relevance",
            "annotations.0.annotation.score": 0.2,
        }, parent=other),
    )  # fmt: skip
    (day / "late.jsonl").write_text(late + "\n" + late + "\n")  # exported twice
    summary = ingest_paths([day / "late.jsonl"], warehouse=warehouse)
    balanced(summary)
    (f,) = summary.files
    assert (f.non_call_spans, f.events, f.event_duplicates, f.events_unknown_call) == (4, 3, 3, 0)
    got = rows(
        warehouse, "SELECT kind, name, span_id, trace_id, value, annotator, source_format FROM events ORDER BY kind"
    )
    assert got == [
        ("escalation", "escalation", None, "1af7651916cd43dd8448eb211c80319c", 1.0, "human", "openinference"),
        ("evaluation", "relevance", other, "1af7651916cd43dd8448eb211c80319c", 0.2, None, "openinference"),
        ("feedback", "user_feedback", CALL, TRACE, -1.0, None, "otlp_genai"),
    ]
    assert negative_rate(warehouse, OTLP_DAY) == 1 / 2
    ((escalation,),) = rows(
        warehouse, "SELECT escalation_rate FROM version_metrics WHERE prompt_version = ?", [VERSION]
    )
    assert escalation == 1 / 2


def test_mining_sees_late_signals(tmp_path, warehouse) -> None:
    day = tmp_path / "landing" / DAY
    day.mkdir(parents=True)
    (day / "calls.jsonl").write_text(call(1) + "\n" + call(2) + "\n")
    (day / "events.jsonl").write_text(
        json.dumps({"event": "feedback", "span_id": "sp_1", "value": "down"})
        + "\n"
        + json.dumps({"event": "correction", "span_id": "sp_2", "value": {"route": "technical"}})
        + "\n"
    )
    ingest_paths([day], warehouse=warehouse)
    mine_failures(warehouse, None, day=DAY)
    found = rows(warehouse, "SELECT span_id, failure_class FROM failures ORDER BY span_id, failure_class")
    assert ("sp_1", "negative_feedback") in found and ("sp_2", "correction") in found


def test_events_landing_before_their_calls_in_one_commit_are_not_reported_unknown(tmp_path, warehouse) -> None:
    from prompt_release.traces import ingest_day

    day = tmp_path / "landing" / DAY
    day.mkdir(parents=True)
    # events-*.jsonl sorts before traces-*.jsonl: the calls arrive later in the same transaction
    (day / "events-1.jsonl").write_text(json.dumps({"event": "feedback", "span_id": "sp_1", "value": "down"}) + "\n")
    (day / "traces-1.jsonl").write_text(call(1) + "\n")
    for summary in (
        ingest_paths([day], warehouse=warehouse),
        ingest_day(tmp_path / "landing", DAY, warehouse=warehouse),
    ):
        assert summary.total.events + summary.total.event_duplicates == 1
        assert summary.total.events_unknown_call == 0
        assert rows(warehouse, "SELECT sum(events_unknown_call) FROM ingest_files") == [(0,)]

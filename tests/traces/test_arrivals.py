"""The ingest-on-arrival cursor: new and grown landing files, once each, in small batches."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from prompt_release.traces.arrivals import ArrivalCursor, new_files

NOW = datetime.now(UTC)


def land(landing, name: str, text: str, age_s: float = 10.0, day=None):
    folder = landing / (day or NOW.date().isoformat())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    stamp = (NOW - timedelta(seconds=age_s)).timestamp()
    os.utime(path, (stamp, stamp))
    return str(path.resolve())


def test_new_files_once_each_then_again_only_when_changed(tmp_path) -> None:
    landing = tmp_path / "landing"
    a = land(landing, "traces-a.jsonl", "{}\n", age_s=20)
    b = land(landing, "events-b.jsonl", "{}\n", age_s=10)
    land(landing, "notes.txt", "not a trace file", age_s=10)
    land(landing, "old.jsonl", "{}\n", age_s=10, day="2020-01-01")  # the nightly catch-up's
    files, cursor = new_files(landing, ArrivalCursor(), now=NOW)
    assert files == [a, b]
    assert new_files(landing, ArrivalCursor.parse(cursor.dump()), now=NOW) == ([], cursor)
    # a file that grew is handed out again; one still being written (within settle_s) waits
    land(landing, "traces-a.jsonl", "{}\n{}\n", age_s=5)
    c = land(landing, "traces-c.jsonl", "{}\n", age_s=0.1)
    files, cursor = new_files(landing, cursor, now=NOW)
    assert files == [a]
    files, _ = new_files(landing, cursor, now=NOW + timedelta(seconds=5))
    assert files == [c]


def test_a_batch_is_small_and_the_next_look_continues_where_it_stopped(tmp_path) -> None:
    landing = tmp_path / "landing"
    paths = [land(landing, f"traces-{i:02d}.jsonl", "{}\n", age_s=30 - i) for i in range(5)]
    first, cursor = new_files(landing, ArrivalCursor(), now=NOW, max_files=2)
    second, cursor = new_files(landing, cursor, now=NOW, max_files=2)
    third, cursor = new_files(landing, cursor, now=NOW, max_files=2)
    assert first + second + third == paths and len(first) == len(second) == 2

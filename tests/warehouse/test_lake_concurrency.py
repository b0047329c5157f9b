"""Several writers on one lake at once: every commit lands once, nothing is half-visible."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from prompt_release.warehouse import read_connection
from tests.conftest import REPO_ROOT

LINES = 600


def day_file(landing: Path, day: str, *, name: str = "calls.jsonl") -> tuple[Path, int]:
    """A landing file: LINES lines with 3 rejects and 5 keys repeated inside the file."""
    folder = landing / day
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(LINES - 8):
        lines.append(
            json.dumps(
                {
                    "trace_id": f"tr_{day}_{i}",
                    "span_id": f"sp_{day}_{i}",
                    "workflow": "wf",
                    "prompt_version": "wf:v1.0.0",
                    "model": "m",
                    "latency_ms": i,
                    "timestamp": f"{day}T10:00:00Z",
                }
            )
        )
    lines += [lines[i] for i in range(5)]  # duplicates of the file's own lines
    lines += ['{"trace_id": ', "not json", '{"trace_id": 5}']  # rejects
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path, len(lines)


def start_ingest(path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "prompt_release", "ingest", str(path), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(procs: list[subprocess.Popen]) -> list[dict]:
    summaries = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        summaries.append(json.loads(out))
    return summaries


def totals(summary: dict) -> dict:
    return summary["total"] if "total" in summary else summary


def test_four_processes_ingesting_four_days_at_once_all_land(lake_warehouse: str, tmp_path: Path) -> None:
    days = ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]
    files = [day_file(tmp_path / "landing", day) for day in days]
    summaries = [totals(s) for s in finish([start_ingest(path) for path, _ in files])]
    for summary, (_, lines) in zip(summaries, files, strict=True):
        assert summary["stored"] + summary["duplicates"] + summary["rejected"] == lines
        assert (summary["stored"], summary["duplicates"], summary["rejected"]) == (LINES - 8, 5, 3)
    with read_connection(lake_warehouse) as con:
        by_day = con.sql(
            "SELECT day::VARCHAR, count(*), count(DISTINCT record_key) FROM traces GROUP BY 1 ORDER BY 1"
        ).fetchall()
        assert by_day == [(day, LINES - 8, LINES - 8) for day in days]
        accounted = con.sql("SELECT count(*), sum(stored), sum(duplicates), sum(rejected) FROM ingest_files").fetchall()
        assert accounted == [(4, 4 * (LINES - 8), 20, 12)]
        assert con.sql("SELECT count(*) FROM ingest_rejects").fetchall() == [(12,)]


def test_two_processes_ingesting_the_same_file_store_it_once(lake_warehouse: str, tmp_path: Path) -> None:
    path, lines = day_file(tmp_path / "landing", "2026-11-05")
    finish([start_ingest(path), start_ingest(path)])
    with read_connection(lake_warehouse) as con:
        assert con.sql("SELECT count(*), count(DISTINCT record_key) FROM traces").fetchall() == [(LINES - 8, LINES - 8)]

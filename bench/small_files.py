"""Benchmark the per-file overhead of ingest: many tiny native files (issue 12: exporters
that rotate many small files).

Writes `--files` files of `--lines` lines each to a temporary folder, then ingests
(a) the first `--before` of them one transaction per file (`GROUP_FILES = 1`,
as before small files shared a transaction; the smaller buffers and the
skipped reader thread of one-chunk files stay on, so main, which has neither,
is slower still) and (b) all of them
with the default grouping, each into a fresh warehouse, in this one run. Prints
files per second of both, their ratio, and checks the accounting of (b):
stored + duplicates + rejected = lines of every file. Target: 10,000 small files
in under 5 minutes.

    python bench/small_files.py [--files 10000] [--lines 3] [--before 200]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prompt_release.traces import ingest as ingest_module  # noqa: E402
from prompt_release.traces import ingest_paths  # noqa: E402


def write_files(folder: Path, files: int, lines: int) -> list[Path]:
    paths = []
    for f in range(files):
        path = folder / f"export-{f:06d}.jsonl"
        with open(path, "w") as out:
            for i in range(lines):
                out.write(
                    json.dumps(
                        {
                            "trace_id": f"tr_{f}",
                            "span_id": f"sp_{f}_{i}",
                            "workflow": "support_router",
                            "prompt_version": "support_router:v1.5.2",
                            "model": "m",
                            "timestamp": "2026-11-27T10:00:00Z",
                            "latency_ms": 120.0 + i,
                            "input_messages": [{"role": "user", "content": f"ticket {f}-{i}"}],
                            "output": "ok",
                        }
                    )
                    + "\n"
                )
        paths.append(path)
    return paths


def timed(paths: list[Path], warehouse: Path, group_files: int | None):
    saved = ingest_module.GROUP_FILES
    if group_files is not None:
        ingest_module.GROUP_FILES = group_files
    try:
        start = time.perf_counter()
        summary = ingest_paths(paths, warehouse=warehouse)
        return time.perf_counter() - start, summary
    finally:
        ingest_module.GROUP_FILES = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--lines", type=int, default=3)
    parser.add_argument("--before", type=int, default=200, help="files ingested one transaction each")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "landing"
        folder.mkdir()
        paths = write_files(folder, args.files, args.lines)
        before_s, _ = timed(paths[: args.before], Path(tmp) / "before.duckdb", 1)
        after_s, summary = timed(paths, Path(tmp) / "after.duckdb", None)
    before_rate, after_rate = args.before / before_s, args.files / after_s
    print(f"one transaction per file: {args.before:,} files in {before_s:.1f} s = {before_rate:,.1f} files/s")
    print(f"grouped (default):        {args.files:,} files in {after_s:.1f} s = {after_rate:,.1f} files/s")
    print(f"ratio grouped / per file: {after_rate / before_rate:.1f}x")
    bad = [f for f in summary.files if f.stored + f.duplicates + f.rejected != f.records or f.records != args.lines]
    print(
        f"accounting: {summary.total.stored:,} stored, {summary.total.duplicates:,} duplicates, "
        f"{summary.total.rejected:,} rejected of {args.files * args.lines:,} lines; "
        f"{len(bad)} files off (must be 0)"
    )
    print(
        f"target 10,000 files in under 300 s: "
        f"{'met' if args.files >= 10_000 and after_s < 300 else 'not measured' if args.files < 10_000 else 'missed'}"
    )


if __name__ == "__main__":
    main()

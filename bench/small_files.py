"""Benchmark the per-file overhead of ingest: many tiny native files (issue 12: exporters
that rotate many small files).

Writes `--files` files of `--lines` lines each to a temporary folder, then ingests,
each into a fresh warehouse, in this one run:
(a) the first `--before` of them one transaction per file (`GROUP_FILES = 1`);
(b) the first `--grouped` of them grouped in transactions but with every file its
    own SQL passes (`BATCH_FILE_BYTES = 0`: small files sharing a transaction,
    as before they shared a pass too);
(c) all of them with the defaults: small files of a transaction in one SQL pass.
Prints files per second of each and their ratios, and checks the accounting of (c):
stored + duplicates + rejected = lines of every file. Target: 10,000 small files
in under 5 minutes (33 files/s).

    python bench/small_files.py [--files 10000] [--lines 3] [--before 50] [--grouped 500]
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


def timed(paths: list[Path], warehouse: Path, **settings):
    saved = {name: getattr(ingest_module, name) for name in settings}
    for name, value in settings.items():
        setattr(ingest_module, name, value)
    try:
        start = time.perf_counter()
        summary = ingest_paths(paths, warehouse=warehouse)
        return time.perf_counter() - start, summary
    finally:
        for name, value in saved.items():
            setattr(ingest_module, name, value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--lines", type=int, default=3)
    parser.add_argument("--before", type=int, default=50, help="files ingested one transaction each")
    parser.add_argument("--grouped", type=int, default=500, help="files ingested grouped, one SQL pass each")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "landing"
        folder.mkdir()
        paths = write_files(folder, args.files, args.lines)
        before_s, _ = timed(paths[: args.before], Path(tmp) / "before.duckdb", GROUP_FILES=1)
        grouped_s, _ = timed(paths[: args.grouped], Path(tmp) / "grouped.duckdb", BATCH_FILE_BYTES=0)
        after_s, summary = timed(paths, Path(tmp) / "after.duckdb")
    before_rate, grouped_rate, after_rate = args.before / before_s, args.grouped / grouped_s, args.files / after_s
    print(f"one transaction per file:      {args.before:,} files in {before_s:.1f} s = {before_rate:,.1f} files/s")
    print(f"grouped, one pass per file:    {args.grouped:,} files in {grouped_s:.1f} s = {grouped_rate:,.1f} files/s")
    print(f"grouped, one pass per batch:   {args.files:,} files in {after_s:.1f} s = {after_rate:,.1f} files/s")
    print(
        f"ratios: one pass per batch / one pass per file {after_rate / grouped_rate:.1f}x, "
        f"/ one transaction per file {after_rate / before_rate:.1f}x"
    )
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

"""Peak memory of `prompt-release ingest` on small gzip files that expand to about 1 GB.

Two bombs, each a few MB compressed: one line of ~1 GB (no newline: rejected
as too long) and ~1 GB of repeated trace lines (mostly duplicates), plus the
same lines as a 10 MB file for reference. Each ingest runs in a fresh
process; its peak RSS comes from the kernel (`ru_maxrss` of the child).

    .venv/bin/python bench/gzip_bomb.py [--gb 1.0]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LINE = (
    json.dumps(
        {
            "trace_id": "tr_1",
            "span_id": "sp_1",
            "workflow": "support_router",
            "prompt_version": "support_router:v1.5.2",
            "model": "m",
            "output": "x" * 900,
        }
    )
    + "\n"
)


def write_gzip(path: Path, piece: bytes, total: int, tail: bytes = b"") -> None:
    block = piece * max(1, (8 << 20) // len(piece))
    with gzip.open(path, "wb", compresslevel=9) as out:
        written = 0
        while written < total:
            out.write(block)
            written += len(block)
        out.write(tail)


def run(path: Path, workdir: Path) -> tuple[float, float, str]:
    env = {**os.environ, "PROMPT_RELEASE_ANALYST_SNAPSHOT": "0"}
    warehouse = workdir / f"{path.stem}.duckdb"
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run(
        [sys.executable, "-m", "prompt_release", "ingest", "--json", "--warehouse", str(warehouse), str(path)],
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if done.returncode:
        return wall, peak / 1024, "FAILED: " + done.stderr.strip().splitlines()[-1]
    total = json.loads(done.stdout)["total"]
    # ru_maxrss of children is the max over all children so far: runs go smallest first
    del before
    return (
        wall,
        peak / 1024,
        f"stored {total['stored']:,}, duplicates {total['duplicates']:,}, rejected {total['rejected']:,}",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=1.0)
    args = parser.parse_args()
    size = int(args.gb * (1 << 30))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        cases = [
            ("reference: 10 MB of lines", workdir / "small.jsonl.gz", LINE.encode(), 10 << 20, b""),
            (f"{args.gb:g} GB in one line", workdir / "one_line.jsonl.gz", b"x" * 4096, size, b"\n" + LINE.encode()),
            (f"{args.gb:g} GB of repeated lines", workdir / "lines.jsonl.gz", LINE.encode(), size, b""),
        ]
        print(f"{'file':32} {'gzip MB':>8} {'peak RSS MB':>12} {'wall s':>7}  result")
        for label, path, piece, total, tail in cases:
            write_gzip(path, piece, total, tail)
            wall, peak_mb, result = run(path, workdir)
            print(f"{label:32} {path.stat().st_size / 1e6:8.2f} {peak_mb:12.0f} {wall:7.1f}  {result}", flush=True)


if __name__ == "__main__":
    main()

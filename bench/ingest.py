"""Benchmark trace ingestion against DuckDB's own read_json on the same file.

Generates ~1M native JSONL lines and an OTLP file of 200k spans into
bench/.data (git-ignored), then times (a) DuckDB `read_json` into a plain
table and (b) `prompt_release.traces.ingest_paths` into a fresh warehouse,
run in a subprocess so its peak RSS can be measured. Prints throughputs, the
ratio ours / DuckDB's (target >= 0.6) and peak memory (target <= 2 GB).

On a shared machine one run's wall time moves by a third from one minute to
the next, so each comparison runs `--rounds` times, the two sides alternating,
and reports the median of each side, the median of the per-round ratios, and
both sides' CPU seconds (user + system), which the neighbours move less.

    python bench/ingest.py [--lines 1000000] [--spans 200000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / ".data"
sys.path.insert(0, str(ROOT))
from tests.traces.otlp_builders import request, span  # noqa: E402


def make_native(path: Path, n: int) -> None:
    rnd = random.Random(7)
    with open(path, "w") as out:
        for i in range(n):
            record = {
                "trace_id": f"tr_{i // 3}",
                "span_id": f"sp_{i:09d}",
                "workflow": "support_router",
                "prompt_version": "support_router:v1.5.2",
                "model": "production-default",
                "timestamp": f"2026-11-27T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
                "latency_ms": round(rnd.uniform(200, 2000), 1),
                "input": {
                    "messages": [
                        {"role": "system", "content": "You route support tickets. " * 6},
                        {"role": "user", "content": f"I cannot log in to my account {i}"},
                    ],
                    "variables": {"ticket": f"I cannot log in {i}", "customer_tier": "gold"},
                },
                "output": {"route": "account_recovery", "confidence": 0.9},
                "usage": {"input_tokens": 140, "output_tokens": 14},
                "cost_usd": 0.0011,
                "status": "ok",
                "finish_reason": "stop",
                "session_id": f"s{i % 5000}",
                "user_id": f"u{i % 900}",
                "segment": {"tier": "gold", "locale": "en"},
                "route": "account_recovery",
                "schema_valid": True,
            }
            if i % 11 == 0:
                record["feedback"] = "down"
            out.write(json.dumps(record) + "\n")


def make_otlp(path: Path, spans: int) -> None:
    with open(path, "w") as out:
        for t in range(spans // 2):  # one agent span + one chat span per trace, a line each 50 traces
            trace = f"{t:032x}"
            agent = span(
                trace,
                f"{2 * t + 1:016x}",
                "invoke_agent",
                {
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.prompt.name": "order_agent",
                    "gen_ai.prompt.version": "2.0.0",
                    "gen_ai.conversation.id": f"c{t}",
                },
            )
            chat = span(
                trace,
                f"{2 * t + 2:016x}",
                "chat",
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.usage.input_tokens": 120,
                    "gen_ai.usage.output_tokens": 12,
                    "gen_ai.input.messages": json.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": f"Where is ORD-{t:06d}?"}]}]
                    ),
                    "gen_ai.output.messages": json.dumps(
                        [
                            {
                                "role": "assistant",
                                "parts": [
                                    {
                                        "type": "tool_call",
                                        "id": "c1",
                                        "name": "lookup_order",
                                        "arguments": {"order_id": f"ORD-{t:06d}"},
                                    }
                                ],
                            }
                        ]
                    ),
                },
                parent=f"{2 * t + 1:016x}",
            )
            out.write(request(agent, chat) + "\n")


def child_run(code: str) -> tuple[float, float, float]:
    """(seconds, CPU seconds, peak RSS MiB) of running `code` in a fresh interpreter."""
    # the child reports its own peak RSS and CPU: RUSAGE_CHILDREN would keep the
    # maximum over every child this process ever ran
    code += (
        "\nimport resource; u = resource.getrusage(resource.RUSAGE_SELF)"
        "\nprint('USAGE', u.ru_utime + u.ru_stime, u.ru_maxrss)"
    )
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    seconds = time.perf_counter() - start
    cpu, peak_kb = done.stdout.split("USAGE")[-1].split()
    return seconds, float(cpu), int(peak_kb) / 1024


def compare(label: str, path: Path, units: int, unit: str, rounds: int) -> None:
    ref_db = DATA / "reference.duckdb"
    our_db = DATA / "ours.duckdb"
    ref_code = (
        f"import duckdb; c = duckdb.connect({str(ref_db)!r}); "
        f"c.execute(\"CREATE TABLE t AS SELECT * FROM read_json({str(path)!r}, format='newline_delimited')\")"
    )
    our_code = (
        f"from prompt_release.traces import ingest_paths; "
        f"s = ingest_paths([{str(path)!r}], warehouse={str(our_db)!r}); assert s.total.rejected == 0, s"
    )
    refs, ours = [], []
    for _ in range(rounds):
        for db in (ref_db, our_db):
            for f in db.parent.glob(db.name.removesuffix(".duckdb") + "*"):  # also the analyst snapshot
                f.unlink()
        refs.append(child_run(ref_code))
        ours.append(child_run(our_code))
    size = path.stat().st_size / 1e6
    ref_s, ref_cpu = statistics.median(r[0] for r in refs), statistics.median(r[1] for r in refs)
    our_s, our_cpu = statistics.median(r[0] for r in ours), statistics.median(r[1] for r in ours)
    ref_mb, our_mb = max(r[2] for r in refs), max(r[2] for r in ours)
    ratios = sorted(r[0] / o[0] for r, o in zip(refs, ours))
    print(f"{label}: {units:,} {unit}, {size:,.0f} MB, median of {rounds} alternating rounds")
    print(
        f"  duckdb read_json -> table : {ref_s:6.2f} s  {units / ref_s:>10,.0f} {unit}/s  {size / ref_s:6.1f} MB/s  "
        f"CPU {ref_cpu:5.1f} s  peak RSS {ref_mb:,.0f} MiB"
    )
    print(
        f"  prompt-release ingest     : {our_s:6.2f} s  {units / our_s:>10,.0f} {unit}/s  {size / our_s:6.1f} MB/s  "
        f"CPU {our_cpu:5.1f} s  peak RSS {our_mb:,.0f} MiB"
    )
    print(
        f"  ratio ours / duckdb       : {statistics.median(ratios):.2f}  (target >= 0.6; rounds "
        f"{', '.join(f'{r:.2f}' for r in ratios)}; CPU {ref_cpu / our_cpu:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each side (median reported)")
    args = parser.parse_args()
    DATA.mkdir(parents=True, exist_ok=True)
    native_path = DATA / f"native_{args.lines}.jsonl"
    otlp_path = DATA / f"otlp_{args.spans}.jsonl"
    if not native_path.exists():
        make_native(native_path, args.lines)
    if not otlp_path.exists():
        make_otlp(otlp_path, args.spans)
    compare("native", native_path, args.lines, "lines", args.rounds)
    compare("otlp", otlp_path, args.spans, "spans", args.rounds)


if __name__ == "__main__":
    main()

"""Benchmark of the model client layer alone against the simulator (bench/backtest.py runs the whole backtest).

The simulator runs in its own process with no added latency. At concurrency
64 it measures calls per second and client CPU per call for (a) a bare loop
of `openai.AsyncOpenAI` calls (the client stack's limit), (b) `run_calls`
uncached with cache writes, then (c) `run_calls` fully cached. Rounds of (a)
and (b) alternate and the median is reported, because the machine is shared.
Run: `python bench/backtest_client.py [--calls 4000] [--rounds 3]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import openai  # noqa: E402

from prompt_release.llm import CallRequest, LLMSettings, run_calls  # noqa: E402
from prompt_release.llm.simulator import start_simulator  # noqa: E402

SYSTEM = (
    "You are the support router. Read the ticket and pick the team.\n"
    "[route] account_recovery: password, locked out, 2fa, sign in\n"
    "[route] billing: invoice, charge, refund, payment\n"
    "[route] shipping: delivery, package, tracking\n"
    "[default-route] general\n[format] json\n"
    "Answer with the JSON object only."
)
TOPICS = (
    "I was charged twice on my invoice",
    "I am locked out after a password reset",
    "my package tracking has not moved",
    "do you have a student discount",
)
CONCURRENCY = 64


def messages(i: int, salt: str) -> list[dict]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Ticket {salt}-{i}: {TOPICS[i % len(TOPICS)]}. Customer tier: gold."},
    ]


async def bare_loop(base_url: str, n: int, salt: str) -> tuple[float, float]:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> str | None:
        async with gate:
            reply = await client.chat.completions.create(
                model="sim", messages=messages(i, salt), temperature=0, max_tokens=64, seed=0
            )
            return reply.choices[0].message.content

    wall, cpu = time.perf_counter(), time.process_time()
    outputs = await asyncio.gather(*(one(i) for i in range(n)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await client.close()
    assert all(outputs)
    return n / wall, cpu / n * 1e6


async def ours(base_url: str, n: int, salt: str, warehouse: Path) -> tuple[float, float, int]:
    settings = LLMSettings(base_url=base_url, max_concurrency=CONCURRENCY)
    requests = [
        CallRequest(
            model="sim",
            messages=messages(i, salt),
            parameters={"temperature": 0, "max_tokens": 64},
            package_hash="sha256:bench",
            tag=str(i),
        )
        for i in range(n)
    ]
    wall, cpu = time.perf_counter(), time.process_time()
    results = await run_calls(requests, settings, warehouse=warehouse)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert all(r.status == "ok" for r in results)
    return n / wall, cpu / n * 1e6, sum(r.cached for r in results)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = args.calls
    with tempfile.TemporaryDirectory() as tmp, start_simulator(subprocess_mode=True) as sim:
        warehouse = Path(tmp) / "bench.duckdb"
        asyncio.run(bare_loop(sim.base_url, 200, "warmup"))
        bare, mine = [], []
        for r in range(args.rounds):
            bare.append(asyncio.run(bare_loop(sim.base_url, n, f"bare{r}")))
            mine.append(asyncio.run(ours(sim.base_url, n, f"ours{r}", warehouse))[:2])
            print(
                f"round {r + 1}: bare {bare[-1][0]:7.0f} calls/s {bare[-1][1]:6.0f} us CPU/call | "
                f"run_calls {mine[-1][0]:7.0f} calls/s {mine[-1][1]:6.0f} us CPU/call",
                flush=True,
            )
        cached = [asyncio.run(ours(sim.base_url, n, f"ours{r}", warehouse)) for r in range(args.rounds)]
        assert all(c[2] == n for c in cached), "cached run made calls"
        server = sim.stats()
    bare_rate, bare_cpu = statistics.median(b[0] for b in bare), statistics.median(b[1] for b in bare)
    our_rate, our_cpu = statistics.median(m[0] for m in mine), statistics.median(m[1] for m in mine)
    cached_rate = statistics.median(c[0] for c in cached)
    print()
    print(
        f"{n} calls at concurrency {CONCURRENCY}, simulator in its own process, zero added latency, "
        f"median of {args.rounds} alternating rounds"
    )
    print(f"{'':34s} {'calls/s':>10s} {'CPU us/call':>12s} {'rate vs bare':>13s}")
    print(f"{'(a) bare AsyncOpenAI loop':34s} {bare_rate:10.0f} {bare_cpu:12.0f} {1.0:13.2f}")
    print(
        f"{'(b) run_calls, uncached + cache':34s} {our_rate:10.0f} {our_cpu:12.0f} {our_rate / bare_rate:13.2f}"
        f"   target >= 0.75"
    )
    print(
        f"{'(c) run_calls, fully cached':34s} {cached_rate:10.0f} {'':>12s} {cached_rate / bare_rate:13.2f}"
        f"   target >= 10,000 calls/s"
    )
    print(f"server: {server['chat_requests']} chat requests")


if __name__ == "__main__":
    main()

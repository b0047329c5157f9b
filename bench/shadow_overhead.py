"""What shadow mode adds to the served call's path: the same served call with and without a ShadowRunner.

The served call is what an app does per request: `PromptClient.get()` with a
routing key, render, the model call (a stand-in that sleeps `--model-ms`, so
the numbers are the client's own cost, not a network's), `TraceLogger.log`,
and, in the shadow run, `ShadowRunner.submit` with every request in the share
(share 1.0, the worst case) while background workers render, call (also
`--model-ms`) and log the shadow answers, competing for the interpreter with
the served thread. Both runs are measured in this run, interleaved in rounds;
the figures are per served call: median and p99 in microseconds, the
difference (target: under 1 ms) and the ratio.

    python bench/shadow_overhead.py [--requests N] [--model-ms MS] [--rounds R]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prompt_release.registry import Registry  # noqa: E402
from prompt_release.runtime import PromptClient, ShadowRunner, TraceLogger  # noqa: E402

VARIABLES = {"ticket": "I was charged twice for my subscription this month.", "customer_tier": "pro"}
ANSWER = '{"route": "billing", "confidence": 0.9}'


def measure(
    requests: int, model_ms: float, registry: Path, landing: Path, shadow: bool
) -> tuple[list[float], list[float], dict]:
    client = PromptClient(registry=registry, ttl_s=3600)
    logger = TraceLogger(landing=landing)

    def model(prompt, messages) -> dict:
        time.sleep(model_ms / 1000.0)
        return {"output": ANSWER, "latency_ms": model_ms, "usage": {"input_tokens": 90, "output_tokens": 9}}

    runner = ShadowRunner(client, logger, model, share=1.0, workers=2, max_queue=256) if shadow else None
    client.get("support_router", routing_key="warm")
    timings, submits = [], []
    for i in range(requests):
        user = f"user-{i}"
        started = time.perf_counter()
        served = client.get("support_router", routing_key=user)
        messages = served.messages(VARIABLES, [{"role": "user", "content": VARIABLES["ticket"]}])
        answer = model(served, messages)
        record = logger.log(served, messages=messages, variables=VARIABLES, user_id=user, **answer)
        if runner is not None:
            submitted = time.perf_counter()
            runner.submit(
                served,
                served_span_id=record["span_id"],
                variables=VARIABLES,
                conversation=messages[1:],
                routing_key=user,
            )
            submits.append((time.perf_counter() - submitted) * 1e6)
        timings.append((time.perf_counter() - started) * 1e6)
    stats = runner.close(timeout=30) if runner is not None else {}
    logger.close()
    return timings, submits, stats


def p99(values: list[float]) -> float:
    return sorted(values)[int(0.99 * (len(values) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="served calls per round and side")
    parser.add_argument("--model-ms", type=float, default=2.0, help="the stand-in model call's duration")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="shadow-bench-"))
    try:
        registry = work / "registry"
        for name in ("prompts", "schemas"):
            shutil.copytree(ROOT / name, registry / name)
        Registry(registry).move_label("support_router", "shadow", "1.6.0", reason="bench", actor="bench")
        plain: list[float] = []
        shadowed: list[float] = []
        submits: list[float] = []
        totals: dict[str, int] = {}
        for r in range(args.rounds):
            plain += measure(args.requests, args.model_ms, registry, work / f"plain-{r}", shadow=False)[0]
            timings, submit_us, stats = measure(
                args.requests, args.model_ms, registry, work / f"shadow-{r}", shadow=True
            )
            shadowed += timings
            submits += submit_us
            for key, value in stats.items():
                totals[key] = totals.get(key, 0) + value
    finally:
        shutil.rmtree(work, ignore_errors=True)

    base, with_shadow = statistics.median(plain), statistics.median(shadowed)
    print(
        f"served call (get + render + {args.model_ms:g} ms model stand-in + log), "
        f"{args.rounds} x {args.requests} calls per side, shadow share 1.0"
    )
    print(f"  without shadow   median {base:9.1f} us   p99 {p99(plain):9.1f} us")
    print(f"  with shadow      median {with_shadow:9.1f} us   p99 {p99(shadowed):9.1f} us")
    print(f"  overhead         median {with_shadow - base:9.1f} us   p99 {p99(shadowed) - p99(plain):9.1f} us")
    print(f"  submit() alone   median {statistics.median(submits):9.1f} us   p99 {p99(submits):9.1f} us")
    print(f"  ratio            median {with_shadow / base:9.3f}x   p99 {p99(shadowed) / p99(plain):9.3f}x")
    print(
        f"  shadow runs: {totals.get('logged', 0)} logged, {totals.get('dropped', 0)} dropped (queue full), "
        f"{totals.get('errors', 0)} errors"
    )
    overhead = with_shadow - base
    print(f"  target: median overhead < 1000 us: {'met' if overhead < 1000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

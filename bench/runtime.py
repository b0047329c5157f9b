"""Cost of a cached `PromptClient.get()` + `render()` beside a bare jinja2 render.

Both render the same template (support_router's production version) with the
same variables in the same run; the reference is a plain `jinja2.Template`
compiled once, i.e. the least a templated prompt can cost. Target: cached
get()+render() under 50 microseconds per call.

    python bench/runtime.py [--registry PATH] [--calls N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jinja2  # noqa: E402

from prompt_release.runtime import PromptClient  # noqa: E402

VARIABLES = {"ticket": "I can't sign in: the 2fa code never arrives and I'm locked out.", "customer_tier": "pro"}


def per_call_us(fn, calls: int, repeats: int = 5) -> float:
    """(best, median) microseconds per call over `repeats` runs; the best is the least noisy."""
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        timings.append((time.perf_counter() - start) / calls * 1e6)
    return min(timings), statistics.median(timings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", default=str(ROOT))
    parser.add_argument("--calls", type=int, default=50_000)
    args = parser.parse_args()

    client = PromptClient(registry=args.registry, ttl_s=3600)
    prompt = client.get("support_router")  # warm: first load reads and compiles
    bare = jinja2.Template(prompt.package.system_prompt_source())
    assert bare.render(**VARIABLES) == prompt.render(**VARIABLES)[0]["content"]

    def client_call() -> None:
        client.get("support_router").render(**VARIABLES)

    def canary_call() -> None:
        client.get("support_router", routing_key="user-42", segment={"customer_tier": "pro"}).render(**VARIABLES)

    def bare_call() -> None:
        bare.render(**VARIABLES)

    bare_best, bare_median = per_call_us(bare_call, args.calls)
    client_best, client_median = per_call_us(client_call, args.calls)
    routed_best, routed_median = per_call_us(canary_call, args.calls)

    print(f"template: {prompt.version_id} ({prompt.package_hash[:19]}), {args.calls} calls x 5 runs, best (median)")
    print(f"  bare jinja2 render               {bare_best:8.2f} us/call ({bare_median:.2f})")
    print(f"  PromptClient get()+render()      {client_best:8.2f} us/call ({client_median:.2f})")
    print(f"  ... with routing key + segment   {routed_best:8.2f} us/call ({routed_median:.2f})")
    print(f"  ratio client/bare                {client_best / bare_best:8.2f}x")
    print(f"  ratio routed/bare                {routed_best / bare_best:8.2f}x")
    print(f"  target < 50 us/call: {'met' if client_best < 50 and routed_best < 50 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

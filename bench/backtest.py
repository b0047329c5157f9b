"""Benchmark of a whole backtest against the simulator beside a bare `AsyncOpenAI` loop (issue 5, acceptance 4).

Sets up a copy of the sample registry with a golden dataset of 2,000
distinct support_router cases (written directly through the golden store),
starts the simulator in its own process with no added latency, and in one run
measures at concurrency 64:

(a) a bare loop of `openai.AsyncOpenAI` calls (one client, a semaphore of 64)
    sending the same rendered messages and parameters the backtest sends, 2
    prompts x 2,000 = 4,000 calls: the client stack's limit;
(b) `run_backtest` of support_router:v1.6.0 vs v1.5.2, golden cases only, on a
    fresh warehouse: 4,000 calls, every check, every cache write, every result
    row and the final warehouse transaction included;
(c) the same backtest again, now fully cached: cases per second of the whole run
    (every request prepared and looked up, every check and row rebuilt; the
    rows reproduce the stored ones, so only the run record is rewritten).

Rounds of (a) and (b) alternate and medians are reported (the machine is
shared); the client's CPU per call is `time.process_time()` of this process
(all its threads: the cache writer included), the simulator's CPU is not in it.
Targets: (b) >= 0.75 x (a) in calls/s, (c) >= 10,000 cases/s.

    python bench/backtest.py [--cases 2000] [--rounds 3] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import openai  # noqa: E402

from prompt_release.evaluation.backtest import BacktestSettings, run_backtest  # noqa: E402
from prompt_release.golden import store as golden_store  # noqa: E402
from prompt_release.golden.model import (  # noqa: E402
    CaseInput,
    Contract,
    Expected,
    GoldenCase,
    Manifest,
    Provenance,
    Tags,
    case_id_for,
    content_hash,
    parse_version_ref,
)
from prompt_release.llm.settings import LLMSettings  # noqa: E402
from prompt_release.llm.simulator import start_simulator  # noqa: E402
from prompt_release.registry import Registry  # noqa: E402
from prompt_release.sample.content import support_ticket  # noqa: E402
from prompt_release.warehouse import read_connection, write_transaction  # noqa: E402

CANDIDATE, BASELINE = "support_router:v1.6.0", "support_router:v1.5.2"
WORKFLOW, DATASET = "support_router", "support_router_golden"
ROUTES = ("account_recovery", "billing", "technical", "shipping", "general")
TIERS = ("free", "pro", "enterprise")


def make_registry(base: Path) -> Path:
    registry = base / "registry"
    registry.mkdir()
    for folder in ("prompts", "schemas", "evals"):
        shutil.copytree(ROOT / folder, registry / folder)
    return registry


def write_golden(registry: Path, n: int, seed: int = 7) -> str:
    """A golden version of exactly `n` distinct support_router cases with a route label each."""
    rng = random.Random(seed)
    cases: dict[str, GoldenCase] = {}
    while len(cases) < n:
        route = ROUTES[len(cases) % len(ROUTES)]
        # A reference number keeps every ticket distinct (the case id hashes the input).
        ticket = f"{support_ticket(rng, route, long=rng.random() < 0.04).text} (ref {len(cases) + 1:05d})"
        variables = {"ticket": ticket, "customer_tier": rng.choice(TIERS)}
        messages = [{"role": "user", "content": ticket}]
        case_id = case_id_for({"messages": messages, "variables": variables})
        cases[case_id] = GoldenCase(
            case_id=case_id,
            workflow=WORKFLOW,
            input=CaseInput(messages=messages, variables=variables),
            expected=Expected(kind="label", value={"route": route}, source="label_file"),
            contract=Contract(
                prompt_id=WORKFLOW, output_format="json", checks=["json_valid", "schema_valid", "enum_values"]
            ),
            tags=Tags(intent=route, segment=variables["customer_tier"]),
            provenance=Provenance(note="bench/backtest.py"),
        )
    final = sorted(cases.values(), key=lambda c: c.case_id)
    data = golden_store.cases_bytes(final)
    intents = Counter(c.tags.intent for c in final)
    manifest = Manifest(
        dataset=DATASET,
        version=1,
        version_id=f"{DATASET}:v1",
        workflow=WORKFLOW,
        content_hash=content_hash(final),
        parent_version=None,
        case_count=len(final),
        labelled_count=len(final),
        counts_by_failure_class={},
        counts_by_tag={"intent": dict(sorted(intents.items()))},
        changes={"added": [c.case_id for c in final], "removed": [], "changed": []},
        source_spans={},
        cases_file="v1.jsonl",
        cases_sha256=golden_store.sha256_bytes(data),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    golden_store.write_version(registry, manifest, data)
    return manifest.version_id


def bare_requests(registry: Path, version: str) -> list[dict]:
    """The SDK arguments the backtest sends, built once, outside any timing: 2 prompts x every case."""
    reg = Registry(registry)
    _, cases = golden_store.read_version(registry, *parse_version_ref(version))
    out = []
    for vid in (CANDIDATE, BASELINE):
        package = reg.load_package(vid)
        fmt = package.response_format()
        for case in cases:
            out.append(
                {
                    "model": package.model,
                    "messages": package.render(case.input.variables, messages=case.input.messages),
                    **package.parameters,
                    "seed": 0,
                    **({"response_format": fmt} if fmt else {}),
                }
            )
    # Alternate the prompts as the backtest does.
    half = len(out) // 2
    return [r for pair in zip(out[:half], out[half:], strict=True) for r in pair]


async def bare_loop(base_url: str, requests: list[dict], concurrency: int) -> tuple[float, float]:
    """(calls/s, client CPU us/call) of plain SDK calls at `concurrency`."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    gate = asyncio.Semaphore(concurrency)

    async def one(kwargs: dict) -> str | None:
        async with gate:
            reply = await client.chat.completions.create(**kwargs)
            return reply.choices[0].message.content

    wall, cpu = time.perf_counter(), time.process_time()
    outputs = await asyncio.gather(*(one(r) for r in requests))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await client.close()
    assert all(outputs), "the bare loop got an empty answer"
    return len(requests) / wall, cpu / len(requests) * 1e6


def backtest(registry: Path, warehouse: Path, base_url: str, concurrency: int, dataset: str):
    settings = BacktestSettings(
        candidate=CANDIDATE, baseline=BASELINE, dataset=dataset, history_days=0, replay_baseline=False
    )
    llm = LLMSettings(base_url=base_url, max_concurrency=concurrency)
    wall, cpu = time.perf_counter(), time.process_time()
    outcome = run_backtest(settings, registry_root=registry, warehouse=warehouse, llm_settings=llm)
    return outcome, time.perf_counter() - wall, time.process_time() - cpu


def fresh_warehouse(path: Path) -> Path:
    with write_transaction(path):  # migrated up front, as a nightly run's warehouse is
        pass
    return path


def warehouse_floor_ms(warehouse: Path, repeats: int = 5) -> float:
    """Median wall time of what every backtest pays the warehouse whatever its size: one read
    connection (the cache lookup) and one empty write transaction (with the analyst snapshot)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        with read_connection(warehouse):
            pass
        with write_transaction(warehouse):
            pass
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    n, conc = args.cases, args.concurrency
    with tempfile.TemporaryDirectory() as tmp, start_simulator(subprocess_mode=True, port=0) as sim:
        base = Path(tmp)
        registry = make_registry(base)
        dataset = write_golden(registry, n)
        requests = bare_requests(registry, dataset)
        asyncio.run(bare_loop(sim.base_url, requests[:300], conc))  # warm both processes up
        bare, ours = [], []
        for r in range(args.rounds):
            bare.append(asyncio.run(bare_loop(sim.base_url, requests, conc)))
            outcome, wall, cpu = backtest(
                registry, fresh_warehouse(base / f"round{r}.duckdb"), sim.base_url, conc, dataset
            )
            assert outcome.cases == n and outcome.calls_made == 2 * n and outcome.calls_cached == 0, outcome
            ours.append((outcome.calls_made / wall, cpu / outcome.calls_made * 1e6))
            print(
                f"round {r + 1}: bare {bare[-1][0]:6.0f} calls/s {bare[-1][1]:5.0f} us CPU/call | "
                f"backtest {ours[-1][0]:6.0f} calls/s {ours[-1][1]:5.0f} us CPU/call "
                f"({ours[-1][0] / bare[-1][0]:.2f}x)",
                flush=True,
            )
        cached = []
        for r in range(args.rounds):
            outcome, wall, cpu = backtest(
                registry, base / f"round{args.rounds - 1}.duckdb", sim.base_url, conc, dataset
            )
            assert outcome.cases == n and outcome.calls_cached == 2 * n and outcome.calls_made == 0, outcome
            assert outcome.results_kept, outcome  # same rows as stored: only the run record is rewritten
            cached.append((n / wall, cpu / n * 1e6))
            print(f"cached {r + 1}: {cached[-1][0]:7.0f} cases/s {cached[-1][1]:5.1f} us CPU/case", flush=True)
        summary = outcome.summary
        floor = warehouse_floor_ms(base / f"round{args.rounds - 1}.duckdb")
    bare_rate, bare_cpu = statistics.median(b[0] for b in bare), statistics.median(b[1] for b in bare)
    our_rate, our_cpu = statistics.median(o[0] for o in ours), statistics.median(o[1] for o in ours)
    cached_rate, cached_cpu = statistics.median(c[0] for c in cached), statistics.median(c[1] for c in cached)
    ratio = our_rate / bare_rate
    print()
    print(
        f"{n} cases x 2 prompts ({CANDIDATE} vs {BASELINE}), concurrency {conc}, simulator in its own "
        f"process, zero added latency; medians of {args.rounds} rounds"
    )
    print(f"{'':44s} {'rate':>14s} {'CPU us':>8s} {'vs bare':>8s}  target")
    print(f"{'(a) bare AsyncOpenAI loop':44s} {bare_rate:8.0f} call/s {bare_cpu:8.0f} {1.0:8.2f}")
    print(
        f"{'(b) backtest, uncached (checks, cache, rows)':44s} {our_rate:8.0f} call/s {our_cpu:8.0f} "
        f"{ratio:8.2f}  >= 0.75 x bare   {verdict(ratio >= 0.75)}"
    )
    print(
        f"{'(c) backtest, fully cached':44s} {cached_rate:8.0f} case/s {cached_cpu:8.1f} {'':8s}  "
        f">= 10,000 case/s {verdict(cached_rate >= 10_000)}"
    )
    print(
        f"  of (c)'s {1000 * n / cached_rate:.0f} ms per run, {floor:.0f} ms is the warehouse floor any run pays "
        "(open to read the cache, open to write, commit, analyst snapshot)"
    )
    for role in ("baseline", "candidate"):
        s = summary.get(role, {})
        print(
            f"  {role}: {s.get('results')} results, passed {s.get('passed'):.3f}, "
            f"handoff accuracy {s.get('task_accuracy'):.3f}"
        )


if __name__ == "__main__":
    main()

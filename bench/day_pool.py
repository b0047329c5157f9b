"""Issue 14: ingest of several days through Dagster, one run per day, as the pools let them run.

Each run is a Dagster run of the `traces` asset for one day partition, in its
own process (as a deployment's run workers are), against one Dagster instance
(a temporary home, SQLite) whose pools limit the steps: on a lake `traces` is in
the pool `warehouse_day`, on the DuckDB file in `warehouse`. The same DAYS days
are ingested three ways, each into a new store, all runs started at once:

- the lake with `warehouse_day` limited to 1 (the steps one at a time, as every
  writing step was before the pool split);
- the lake with `warehouse_day` at its default limit (2);
- the DuckDB file (`warehouse`, limit 1), for reference.

Printed: each way's wall time from the first run's start to the last run's end,
the lines/s, the ratio of the lake at limit 2 to the lake at limit 1, and the
most runs whose ingest steps were in progress at once (from the steps' events).
Each figure with the load average: the cores are shared.

    .venv/bin/python bench/day_pool.py               # 4 days of 100k lines
    .venv/bin/python bench/day_pool.py --quick       # 4 days of 10k lines, to check it runs
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import dagster as dg  # noqa: E402

from bench.scale import day_file  # noqa: E402
from prompt_release.warehouse import read_connection  # noqa: E402
from prompt_release_dagster.resources import POOL_LIMITS, WAREHOUSE_DAY_POOL, WAREHOUSE_POOL  # noqa: E402

DAYS = [dt.date(2026, 12, 1) + dt.timedelta(days=i) for i in range(8)]

# One run: the `traces` asset of one day, materialized in this process against the shared instance.
_RUN = r"""
import sys
import dagster as dg
from prompt_release_dagster.definitions import defs
from prompt_release_dagster.resources import LandingResource, WarehouseResource
warehouse, landing, day = sys.argv[1:4]
result = dg.materialize(
    [defs().get_assets_def("traces")],
    partition_key=day,
    instance=dg.DagsterInstance.get(),
    resources={"warehouse": WarehouseResource(path=warehouse), "landing": LandingResource(root=landing)},
    tags={"bench": "day_pool"},
)
sys.exit(0 if result.success else 1)
"""


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def most_at_once(home: Path) -> int:
    """The most runs whose `traces` step was in progress at the same moment."""
    os.environ["DAGSTER_HOME"] = str(home)
    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    edges = []
    with dg.DagsterInstance.get() as instance:
        for run in instance.get_runs():
            for record in instance.get_records_for_run(run.run_id, of_type=kinds).records:
                entry = record.event_log_entry
                starting = entry.dagster_event.event_type == dg.DagsterEventType.STEP_START
                edges.append((entry.timestamp, 1 if starting else -1))
    level = peak = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        level += step
        peak = max(peak, level)
    return peak


def ingest_days(work: Path, name: str, warehouse: str, landing: Path, days: list[str], day_limit: int) -> float:
    home = work / f"home_{name}"
    home.mkdir()
    (home / "dagster.yaml").write_text("concurrency:\n  pools:\n    default_limit: 1\ntelemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    with dg.DagsterInstance.get() as instance:
        for pool, limit in {**POOL_LIMITS, WAREHOUSE_DAY_POOL: day_limit}.items():
            instance.event_log_storage.set_concurrency_slots(pool, limit)
    env = {**os.environ, "PYTHONPATH": str(REPO), "DAGSTER_HOME": str(home), "PROMPT_RELEASE_WAREHOUSE": warehouse}
    env["PROMPT_RELEASE_CONFIG"] = str(work / "no-state-file")
    start = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, "-c", _RUN, warehouse, str(landing), day], env=env, cwd=REPO) for day in days
    ]
    failed = [proc.args[-1] for proc in procs if proc.wait() != 0]
    seconds = time.perf_counter() - start
    if failed:
        raise SystemExit(f"{name}: the runs of {failed} failed")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--day-lines", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10x fewer lines per day")
    args = parser.parse_args()
    lines = args.day_lines // 10 if args.quick else args.day_lines
    results: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        results.append(line)

    with tempfile.TemporaryDirectory(prefix="bench_day_pool_") as tmp:
        work = Path(tmp)
        landing = work / "landing"
        days = [day.isoformat() for day in DAYS[: args.days]]
        for day in DAYS[: args.days]:
            day_file(landing, day, lines)
        say(f"{args.days} days of {lines:,} lines, one Dagster run per day, all started at once")
        ways = [
            ("lake, warehouse_day limit 1", "lake1", str(work / "one.lake"), 1, WAREHOUSE_DAY_POOL),
            ("lake, warehouse_day limit 2", "lake2", str(work / "two.lake"), 2, WAREHOUSE_DAY_POOL),
            ("file, warehouse limit 1", "file", str(work / "file.duckdb"), 2, WAREHOUSE_POOL),
        ]
        took: dict[str, float] = {}
        for label, name, warehouse, limit, pool in ways:
            seconds = ingest_days(work, name, warehouse, landing, days, limit)
            with read_connection(warehouse) as con:
                stored, distinct = con.execute("SELECT count(*), count(DISTINCT record_key) FROM traces").fetchone()
            assert stored == distinct == args.days * lines, (stored, distinct)
            took[name] = seconds
            say(
                f"   {label:<28} (pool {pool}): {seconds:7.1f} s, {stored / seconds:9,.0f} lines/s, "
                f"at most {most_at_once(work / f'home_{name}')} ingest steps at once; {load()}"
            )
        say(f"   lake, limit 2 vs limit 1: {took['lake1'] / took['lake2']:.2f}x the lines/s")
    print("\nsummary\n" + "\n".join(results))


if __name__ == "__main__":
    main()

"""Issue 14, acceptance 4: ingest at production volume, the lake beside the DuckDB file backend.

Three measurements, each ingest a fresh `prompt-release ingest` process (wall
time, and its own peak RSS: VmHWM, read as it exits):

1. cost of one write step (ingest of a DAY_LINES-line day) into a store holding
   1x vs 20x that history, on each backend (the file backend publishes its
   analyst snapshot after the write, as it does by default); each store is
   timed --repeat times on fresh copies, 1x and 20x in turns, and the medians
   compared;
2. peak memory of ingesting a BIG_LINES-line day into a lake already holding
   STORED_KEYS keys (and the same on the file backend with --file-memory);
3. lines/s of two ingest processes on two different days at once vs one
   process ingesting the same two days one after the other, on each backend.

History is built from one really ingested day whose rows are copied under new
record_keys and earlier days (appended straight to the Delta table in the
row groups ingest writes, or INSERTed into the DuckDB file), so every stored
row is what ingest stores. Each figure is printed with the load average: the
cores are shared, and a ratio measured under load says little.

    .venv/bin/python bench/scale.py                 # the issue's sizes (takes a while)
    .venv/bin/python bench/scale.py --quick         # 10x smaller, to check it runs
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import deltalake
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prompt_release import config  # noqa: E402
from prompt_release.warehouse import lake as lake_backend  # noqa: E402
from prompt_release.warehouse import publish_snapshot, read_connection, write_transaction  # noqa: E402

FIRST_DAY = dt.date(2026, 1, 1)
# new days land after every history day
NEW_DAYS = [dt.date(2026, 12, 1) + dt.timedelta(days=i) for i in range(8)]


def day_file(folder: Path, day: dt.date, lines: int) -> Path:
    """A landing file of `lines` native trace lines (~330 bytes each) for `day`."""
    target = folder / day.isoformat() / "calls.jsonl"
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w") as out:
        for i in range(lines):
            out.write(
                json.dumps(
                    {
                        "trace_id": f"tr_{day}_{i}",
                        "span_id": f"sp_{day}_{i}",
                        "workflow": "support_router",
                        "prompt_version": "support_router:v1.5.2",
                        "model": "production-default",
                        "timestamp": f"{day}T{i % 24:02d}:{i % 60:02d}:00Z",
                        "latency_ms": 200 + i % 900,
                        "input_tokens": 300 + i % 50,
                        "output_tokens": 40 + i % 30,
                        "route": "billing",
                        "output": f'{{"route": "billing", "confidence": 0.{i % 97:02d}}}',
                    }
                )
                + "\n"
            )
    return target


# The child's own peak, read as it exits (`run` calls the exit handlers before os._exit): ru_maxrss of a child is at least the RSS of
# this (large) process when it forked, since Linux keeps the high-water mark across exec.
_CHILD = (
    "import atexit, sys\n"
    "def peak():\n"
    "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
    "    sys.stderr.write(f'\\nVmHWM_KB {hwm}\\n')\n"
    "atexit.register(peak)\n"
    "sys.argv = ['prompt-release', *sys.argv[1:]]\n"
    "from prompt_release.cli import run\n"
    "run()\n"
)


def ingest(warehouse: str, *paths: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, "ingest", "--json", "--warehouse", warehouse, *map(str, paths)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait(proc: subprocess.Popen) -> tuple[int, float]:
    """(lines stored, peak RSS in MB) of one finished ingest process."""
    out, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"ingest failed ({proc.returncode}): {err.decode()[-2000:]}")
    *before, last = out.decode().strip().splitlines()
    if before:
        print("   (ingest printed: " + " | ".join(before)[:300] + ")", flush=True)
    summary = json.loads(last)
    total = summary.get("total", summary)
    peak_kb = int(err.decode().rsplit("VmHWM_KB ", 1)[1].split()[0])
    return total["stored"], peak_kb / 1024


def timed_ingest(warehouse: str, *paths: Path) -> tuple[float, int, float]:
    start = time.perf_counter()
    stored, peak = wait(ingest(warehouse, *paths))
    return time.perf_counter() - start, stored, peak


def seed_rows(work: Path, lines: int) -> pa.Table:
    """The rows ingest stores for one day of `lines` lines (ingested once into a scratch file)."""
    scratch = work / "seed.duckdb"
    timed_ingest(str(scratch), day_file(work / "seed_landing", FIRST_DAY, lines))
    with read_connection(scratch) as con:
        return con.sql("SELECT * FROM traces").to_arrow_table()


def history(seed: pa.Table, copies: int):
    """`copies` days of history: the seed's rows under new keys, one day earlier each time."""
    for k in range(copies):
        day = FIRST_DAY - dt.timedelta(days=k + 1)
        batch = seed.set_column(
            seed.schema.get_field_index("record_key"),
            "record_key",
            pc.binary_join_element_wise(seed["record_key"], f"-h{k}", ""),
        )
        yield batch.set_column(
            batch.schema.get_field_index("day"), "day", pa.array([day] * batch.num_rows, pa.date32())
        )


def build(backend: str, folder: Path, seed: pa.Table, copies: int) -> str:
    """A fresh store of `backend` ('file' or 'lake') holding `copies` days of history."""
    if backend == "file":
        warehouse = str(folder / "warehouse.duckdb")
        with write_transaction(warehouse, publish=False) as con:
            for batch in history(seed, copies):
                con.register("batch", batch)
                con.execute("INSERT INTO traces BY NAME SELECT * FROM batch")
                con.unregister("batch")
        publish_snapshot(warehouse)
        return warehouse
    warehouse = str(folder / "warehouse.lake")
    lake = config.lake_location(warehouse)
    with write_transaction(warehouse):
        pass  # creates the tables
    spec = lake_backend.template().tables["traces"]

    def append(rows: pa.Table) -> None:
        # in the row groups ingest writes
        deltalake.write_deltalake(
            lake.table_uri("traces"), rows, mode="append", writer_properties=lake_backend.writer_properties()
        )

    pending: list[pa.Table] = []
    for batch in history(seed, copies):
        pending.append(batch.select(spec.schema.names).cast(spec.schema))
        if sum(t.num_rows for t in pending) >= 1_000_000:
            append(pa.concat_tables(pending))
            pending = []
    if pending:
        append(pa.concat_tables(pending))
    return warehouse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--day-lines", type=int, default=100_000)
    parser.add_argument("--history", type=int, default=20, help="days of history in the large store")
    parser.add_argument("--big-lines", type=int, default=1_000_000)
    parser.add_argument("--stored-keys", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="timings of each store in part 1 (median)")
    parser.add_argument("--file-memory", action="store_true", help="also measure memory on the file backend")
    parser.add_argument("--quick", action="store_true", help="every size 10x smaller")
    parser.add_argument("--skip", default="", help="comma list of parts to skip: growth,memory,parallel")
    args = parser.parse_args()
    if args.quick:
        args.day_lines //= 10
        args.big_lines //= 10
        args.stored_keys //= 10
    skip = set(filter(None, args.skip.split(",")))
    results: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        results.append(line)

    def load() -> str:
        # the machine's cores are shared: a ratio means little without the load it was measured under
        one, five, fifteen = os.getloadavg()
        return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"

    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        work = Path(tmp)
        landing = work / "landing"
        seed = seed_rows(work, args.day_lines)
        say(f"seed day: {seed.num_rows:,} rows ingested; {load()}")

        if "growth" not in skip:
            say(
                f"1. one write step: ingest of a {args.day_lines:,}-line day into a store holding 1x vs "
                f"{args.history}x that history"
            )
            new = day_file(landing, NEW_DAYS[0], args.day_lines)
            for backend in ("file", "lake"):
                built = {}
                for copies in (1, args.history):
                    built[copies] = work / f"growth_{backend}_{copies}"
                    built[copies].mkdir()
                    warehouse = build(backend, built[copies], seed, copies)
                # each timing on a fresh copy of the store, 1x and 20x taking turns: on shared cores
                # the load drifts during a run, and the median of the turns is what is compared
                seconds: dict[int, list[float]] = {1: [], args.history: []}
                for turn in range(args.repeat):
                    for copies in (1, args.history):
                        folder = work / f"growth_{backend}_{copies}_{turn}"
                        shutil.copytree(built[copies], folder)
                        took, stored, peak = timed_ingest(str(folder / Path(warehouse).name), new)
                        assert stored == args.day_lines, stored
                        seconds[copies].append(took)
                        shutil.rmtree(folder)
                        say(
                            f"   {backend:<4} history {copies:>2}x ({copies * seed.num_rows:>10,} rows): "
                            f"{took:6.2f} s, peak RSS {peak:7.0f} MB"
                        )
                ratio = statistics.median(seconds[args.history]) / statistics.median(seconds[1])
                say(
                    f"   {backend:<4} ratio {args.history}x / 1x (medians of {args.repeat}): {ratio:.2f}x "
                    f"(acceptance: within 1.3x); {load()}"
                )

        if "memory" not in skip:
            copies = max(1, args.stored_keys // seed.num_rows)
            say(
                f"2. peak memory: ingest of a {args.big_lines:,}-line day into a store holding "
                f"{copies * seed.num_rows:,} keys"
            )
            big = day_file(landing, NEW_DAYS[1], args.big_lines)
            for backend in ("lake", "file") if args.file_memory else ("lake",):
                folder = work / f"memory_{backend}"
                folder.mkdir()
                warehouse = build(backend, folder, seed, copies)
                seconds, stored, peak = timed_ingest(warehouse, big)
                assert stored == args.big_lines, stored
                say(
                    f"   {backend:<4} {seconds:7.2f} s, peak RSS {peak:7.0f} MB (acceptance: at most 1024 MB); {load()}"
                )
            big.unlink()

        if "parallel" not in skip:
            say(
                f"3. ingest workers on {os.cpu_count()} cores: two days of {args.day_lines:,} lines, "
                "one process after the other vs two at once"
            )
            one = [day_file(landing, d, args.day_lines) for d in NEW_DAYS[2:4]]
            two = [day_file(landing, d, args.day_lines) for d in NEW_DAYS[4:6]]
            for backend in ("file", "lake"):
                folder = work / f"parallel_{backend}"
                folder.mkdir()
                warehouse = build(backend, folder, seed, 1)
                start = time.perf_counter()
                for path in one:
                    wait(ingest(warehouse, path))
                serial = 2 * args.day_lines / (time.perf_counter() - start)
                start = time.perf_counter()
                procs = [ingest(warehouse, path) for path in two]
                for proc in procs:
                    wait(proc)
                parallel = 2 * args.day_lines / (time.perf_counter() - start)
                with read_connection(warehouse) as con:
                    count, distinct = con.sql("SELECT count(*), count(DISTINCT record_key) FROM traces").fetchall()[0]
                assert count == distinct == (seed.num_rows + 4 * args.day_lines), (count, distinct)
                say(
                    f"   {backend:<4} one worker {serial:9,.0f} lines/s, two workers {parallel:9,.0f} lines/s: "
                    f"{parallel / serial:.2f}x (acceptance: at least 1.5x); {load()}"
                )

    print("\nsummary\n" + "\n".join(results))


if __name__ == "__main__":
    main()

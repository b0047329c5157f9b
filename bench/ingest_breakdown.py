"""Where native ingest spends its CPU, step by step, next to DuckDB's own read_json.

`bench/ingest.py` gives the end-to-end ratio; this one splits the fast path
into its parts so a change can be judged on the part it touches. Every step
runs `--repeat` times, the steps alternating, in one process, and the minimum
CPU time (user + system, all threads) is kept: on a shared machine the speed
drifts by a third within minutes, and alternating keeps the steps comparable.

Steps, over the first `--lines` lines of the bench file (made by bench/ingest.py):

- reference: DuckDB `read_json` of those lines into a table of a new file;
- read: our reader splitting the file into chunks and handing them to Arrow;
- parse: `json_valid` (one parse, nothing built);
- transform: the fast path's `json_transform` into a struct of JSON texts;
- + keys: the same plus `json_keys`, the second parse that finds unknown keys;
- fast path: the whole fast-path SELECT (checks, row building) into memory;
- write: inserting those finished rows into `traces` of a new file, commit.

    python bench/ingest_breakdown.py [--lines 300000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import DATA, make_native  # noqa: E402
from prompt_release.traces import ingest, native  # noqa: E402
from prompt_release.traces.lines import LineReader  # noqa: E402
from prompt_release.traces.models import FileSummary  # noqa: E402
from prompt_release.warehouse.migrate import migrate  # noqa: E402

BENCH_LINES = 1_000_000


class _Context:  # what ingest._chunk_table needs of a file's context
    summary = FileSummary(source_file="bench", format="native", files=1)

    def reject(self, *args) -> None:
        raise AssertionError(f"the bench file has no bad line: {args[:2]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    DATA.mkdir(parents=True, exist_ok=True)
    source = DATA / f"native_{BENCH_LINES}.jsonl"
    if not source.exists():
        make_native(source, BENCH_LINES)
    work = Path(tempfile.mkdtemp(prefix="ingest_breakdown_"))
    subset = work / "lines.jsonl"
    with open(source, "rb") as src, open(subset, "wb") as out:
        for i, line in enumerate(src):
            if i == args.lines:
                break
            out.write(line)

    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    tables = [ingest._chunk_table(chunk, _Context()) for chunk in LineReader(subset)]
    con.register("_arrow_lines", pa.concat_tables(tables))
    con.execute("CREATE TABLE lines AS SELECT * FROM _arrow_lines")
    con.unregister("_arrow_lines")
    migrate(con)  # an in-memory traces table: the fast path's anti-join reads it
    con.create_function(native.FAST_DEFER, lambda ln: True, ["BIGINT"], "BOOLEAN", side_effects=True)
    unknown = ["route", "schema_valid"]  # the bench file's keys outside the contract
    spec = native._fast_spec(unknown)
    params = {"source_file": str(subset), "day_ts": None, "ingested_at": datetime.now(UTC)}
    fast_select = native.fast_insert_sql("lines", unknown, False, False).replace("INSERT INTO traces\n", "")
    con.execute("CREATE TABLE rows AS " + fast_select, params)
    rows = con.execute("SELECT count(*) FROM rows").fetchall()[0][0]
    assert rows == args.lines, f"the fast path took {rows} of {args.lines} lines"

    def fresh_file(name: str) -> str:
        path = work / name
        for f in work.glob(name + "*"):
            f.unlink()
        return str(path)

    def reference() -> None:
        c = duckdb.connect(fresh_file("reference.duckdb"))
        c.execute(f"CREATE TABLE t AS SELECT * FROM read_json('{subset}', format='newline_delimited')")
        c.close()

    def read() -> None:
        for chunk in ingest._prefetch(LineReader(subset, reuse_buffers=True)):
            ingest._chunk_table(chunk, _Context())
            chunk.release()

    template = fresh_file("template.duckdb")
    with duckdb.connect(template) as schema:
        migrate(schema)

    def write() -> None:
        path = fresh_file("ours.duckdb")
        shutil.copyfile(template, path)  # an empty, migrated warehouse
        con.execute(f"ATTACH '{path}' AS w")
        con.execute("BEGIN")
        con.execute("INSERT INTO w.traces SELECT * FROM memory.rows").fetchall()
        con.execute("COMMIT")
        con.execute("DETACH w")

    def sql(query: str, bind: dict | None = None):
        return lambda: con.execute(query, bind or {}).fetchall()

    steps = {
        "reference: read_json -> file": reference,
        "read: chunks to Arrow": read,
        "parse: json_valid": sql("SELECT count(*) FILTER (json_valid(line)) FROM lines"),
        "transform: json_transform": sql(
            f"SELECT count(j) FROM (SELECT try(json_transform(line, {spec})) AS j FROM lines)"
        ),
        "+ keys: json_keys": sql(
            f"SELECT count(j), count(k) FROM (SELECT try(json_transform(line, {spec})) AS j, "
            "try(json_keys(line)) AS k FROM lines)"
        ),
        "fast path: SELECT into memory": sql("CREATE OR REPLACE TABLE scratch AS " + fast_select, params),
        "write: INSERT into traces, commit": write,
    }
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(args.repeat):
        for name, step in steps.items():
            start = time.process_time()
            step()
            best[name] = min(best[name], time.process_time() - start)

    ref = best["reference: read_json -> file"]
    print(
        f"native ingest, step by step: {args.lines:,} lines, min CPU seconds of {args.repeat} alternating runs "
        f"({os.cpu_count()} cores)"
    )
    for name, seconds in best.items():
        print(f"  {name:36s} {seconds:6.2f} s  {seconds / ref:5.2f} x read_json")
    ours = (
        best["read: chunks to Arrow"]
        + best["fast path: SELECT into memory"]
        + best["write: INSERT into traces, commit"]
    )
    print(
        f"  {'ours (read + fast path + write)':36s} {ours:6.2f} s  {ours / ref:5.2f} x read_json  "
        f"(CPU ratio {ref / ours:.2f}; target for wall time >= 0.6)"
    )


if __name__ == "__main__":
    main()

"""What publishing the analyst snapshot adds to a write transaction on a ~100 MB warehouse.

Builds a warehouse of about 100 MB in a temp folder, then times small write
transactions with and without the snapshot publish (CHECKPOINT, file copy,
open-check, atomic rename) and prints both and their ratio. The copy reads
and writes the whole file, so its cost grows linearly with the warehouse.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prompt_release.warehouse import publish_snapshot, write_transaction  # noqa: E402

ROWS = 750_000
REPEATS = 7


def timed_write(warehouse: Path, publish: bool) -> float:
    start = time.perf_counter()
    with write_transaction(warehouse, publish=publish) as con:
        con.execute("INSERT INTO traces_like SELECT -1, 'x', 1.0, now()")
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        warehouse = Path(tmp) / "warehouse.duckdb"
        with write_transaction(warehouse, publish=False) as con:
            con.execute(
                "CREATE TABLE traces_like AS SELECT range AS id, "
                "md5(range::VARCHAR) || repeat(md5((range * 7)::VARCHAR), 6) AS output, "
                "random() * 1000 AS latency_ms, now() - to_seconds(range) AS ts FROM range(?)",
                [ROWS],
            )
        size_mb = warehouse.stat().st_size / 1e6
        start = time.perf_counter()
        publish_snapshot(warehouse)  # first copy: cold page cache for the target
        first = time.perf_counter() - start
        plain = statistics.median(timed_write(warehouse, False) for _ in range(REPEATS))
        published = statistics.median(timed_write(warehouse, True) for _ in range(REPEATS))
        print(f"warehouse size                  {size_mb:8.1f} MB")
        print(f"first publish (standalone)      {first * 1000:8.1f} ms")
        print(f"write transaction, no publish   {plain * 1000:8.1f} ms (median of {REPEATS})")
        print(f"write transaction + publish     {published * 1000:8.1f} ms (median of {REPEATS})")
        print(f"publish overhead per write      {(published - plain) * 1000:8.1f} ms")
        print(f"ratio with/without publish      {published / plain:8.2f}x")


if __name__ == "__main__":
    main()

"""How often an analyst's ATTACH that races a snapshot publish reads two files at once.

Publishing renames a new snapshot over `warehouse.analyst.duckdb`. With
DuckDB 2.0.1, an ATTACH running while that rename happens can take the header
of one file and the blocks of the other, and a later query fails ("Could not
read enough bytes ... from location", "Metadata block index ... exceeds ...").
`snapshot._attach_snapshot` compares the file's identity before and after the
ATTACH and attaches again when it changed.

This script renames two different databases over one path in turn, as fast
as it can, while the main thread attaches and queries in a loop: first with
a plain ATTACH, then through `_attach_snapshot`. It prints the attaches made,
the failed ones and the guard's retries, measured in one run.

    python bench/snapshot_attach_race.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prompt_release.warehouse import snapshot  # noqa: E402

SIZES = {"small": 50, "big": 3_000_000}  # rows; the big file is ~25 MB, the small one a few blocks


def make_files(folder: Path) -> dict[str, Path]:
    files = {}
    for name, rows in SIZES.items():
        files[name] = folder / f"{name}.duckdb"
        con = duckdb.connect(str(files[name]))
        con.execute(f"CREATE TABLE probe AS SELECT hash(range) AS i FROM range({rows})")
        con.close()
    return files


def race(files: dict[str, Path], path: Path, seconds: float, guarded: bool) -> tuple[int, int, int, list[str]]:
    stop = threading.Event()

    def publisher() -> None:
        tmp = path.with_name(path.name + ".tmp")
        turn = 0
        while not stop.is_set():
            shutil.copyfile(files["big" if turn % 2 else "small"], tmp)
            os.replace(tmp, path)
            turn += 1

    shutil.copyfile(files["small"], path)
    thread = threading.Thread(target=publisher)
    thread.start()
    attaches = failures = retries = 0
    samples: list[str] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            con = duckdb.connect()
            statements: list[str] = []

            class Counting:  # counts the guard's ATTACHes
                def execute(self, sql: str, *args):
                    statements.append(sql.split()[0])
                    return con.execute(sql, *args)

            try:
                if guarded:
                    snapshot._attach_snapshot(Counting(), path)
                else:
                    con.execute(f"ATTACH '{path}' AS {snapshot.CATALOG} (READ_ONLY)")
                count = con.execute(f"SELECT count(*) FROM {snapshot.CATALOG}.probe").fetchone()[0]
                assert count in SIZES.values(), count
            except Exception as exc:  # what an analyst would have seen
                failures += 1
                if len(samples) < 3:
                    samples.append(f"{type(exc).__name__}: {str(exc)[:140]}")
            finally:
                con.close()
            attaches += 1
            retries += max(statements.count("ATTACH") - 1, 0)
    finally:
        stop.set()
        thread.join()
    return attaches, failures, retries, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per variant")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="attach_race_"))
    files = make_files(folder)
    print(f"snapshot attach racing a publish loop, {args.seconds:.0f} s per variant")
    for guarded in (False, True):
        attaches, failures, retries, samples = race(files, folder / "warehouse.analyst.duckdb", args.seconds, guarded)
        label = "guarded (_attach_snapshot)" if guarded else "plain ATTACH"
        print(
            f"  {label:28s} {attaches:6,} attaches  {failures:4} failed ({failures / max(attaches, 1):.2%})  "
            f"{retries:4} attached again"
        )
        for sample in samples:
            print(f"      {sample}")
    shutil.rmtree(folder)


if __name__ == "__main__":
    main()

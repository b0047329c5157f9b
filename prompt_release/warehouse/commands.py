"""`prompt-release sql QUERY`: quick read-only questions to the warehouse from a shell.

Also `prompt-release prompts sync`, the registry's mirror into the warehouse
(under `prompts` for the user; here because the registry never imports the
warehouse), and `prompt-release warehouse migrate`.

Reads the analysts' snapshot when one is published (so it never blocks or is
blocked by a running pipeline), the live file read-only with `--live`. A SQL
error is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import duckdb

from prompt_release import config
from prompt_release.errors import UserError
from prompt_release.registry import Registry
from prompt_release.warehouse import lake
from prompt_release.warehouse.connection import write_transaction
from prompt_release.warehouse.lake_migrate import migrate_lake
from prompt_release.warehouse.locking import open_with_backoff
from prompt_release.warehouse.migrate import SCHEMA_VERSION, current_version
from prompt_release.warehouse.registry_mirror import sync_to_warehouse
from prompt_release.warehouse.result_format import write_csv, write_json, write_table
from prompt_release.warehouse.snapshot import analyst_connection, snapshot_lag_s


def add_commands(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    sql = subparsers.add_parser(
        "sql",
        parents=[common],
        help="run a read-only SQL query on the warehouse",
        description="Run a read-only SQL query on the warehouse. Reads the analyst snapshot "
        "(republished after every pipeline write) when present, so it never waits for or "
        "blocks the pipeline; --live reads the live file instead.",
    )
    sql.add_argument("query", metavar="QUERY", help="SQL text, or - to read it from stdin")
    sql.add_argument(
        "--format", choices=("table", "csv", "json"), default="table", help="output format (default: table)"
    )
    sql.add_argument(
        "--live", action="store_true", help="query the live warehouse file read-only (waits for a running write)"
    )
    sql.add_argument(
        "--max-rows", type=int, default=100, metavar="N", help="rows shown by --format table (0: all; default 100)"
    )
    sql.set_defaults(func=run_sql, opens_warehouse="existing")

    # added to the `prompts` group that registry.commands made (listed before this module in cli.py)
    sync = subparsers.choices["prompts"].subcommands.add_parser(
        "sync",
        parents=[common],
        help="mirror versions and label events into the warehouse",
        description="mirror versions and label events into the warehouse",
    )
    sync.add_argument("--json", action="store_true", help="machine-readable output")
    # sync writes the mirror: like ingest, it may create the warehouse.
    sync.set_defaults(func=cmd_sync)

    group = subparsers.add_parser("warehouse", help="warehouse maintenance: schema migration")
    sub = group.add_subparsers(dest="warehouse_command", metavar="COMMAND", required=True)
    upgrade = sub.add_parser(
        "migrate",
        parents=[common],
        help="bring the warehouse's schema up to this prompt-release's",
        description="Bring the warehouse's schema up to this prompt-release's. A DuckDB file also "
        "migrates whenever a write opens it; a lake migrates only through this command, with its "
        "writers stopped (tables whose schema changes are rewritten).",
    )
    upgrade.add_argument("--json", action="store_true", help="machine-readable output")
    upgrade.set_defaults(func=cmd_migrate, opens_warehouse="existing")


def cmd_migrate(args: argparse.Namespace) -> int:
    location = lake.lake_for(args.warehouse)
    if location is not None:
        report = migrate_lake(location, log=print if not args.json else lambda message: None).model_dump()
    else:
        con = open_with_backoff(config.warehouse_path(args.warehouse))
        try:
            found = current_version(con)
        finally:
            con.close()
        with write_transaction(args.warehouse):  # migrates on open, then republishes the analyst snapshot
            pass
        report = {"uri": args.warehouse, "from_version": found, "to_version": SCHEMA_VERSION}
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    elif report["from_version"] == report["to_version"]:
        print(f"{report['uri']}: schema already at version {report['to_version']}")
    else:
        print(f"{report['uri']}: schema migrated from version {report['from_version']} to {report['to_version']}")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    root = config.registry_root(args.registry)
    if not root.is_dir():
        raise UserError(f"registry root {str(root)!r} is not a folder", field="--registry")
    counts = sync_to_warehouse(Registry(root), config.warehouse_path(args.warehouse))
    if args.json:
        print(json.dumps(counts, indent=2, sort_keys=True))
    else:
        print(f"mirrored {counts['prompt_versions']} prompt versions and {counts['label_events']} new label events")
    return 0


def one_line(exc: duckdb.Error) -> str:
    """DuckDB's multi-line message (hint, LINE n:, caret) as one line."""
    lines = [ln.strip() for ln in str(exc).splitlines()]
    message = " ".join(ln for ln in lines if ln and set(ln) != {"^"})
    # a lake's tables are views over its committed snapshot: DuckDB refuses a write to them so
    if any(text in message for text in ("read-only mode", "is not an table", "Can only delete from base table")):
        message += " (`prompt-release sql` is read-only; the pipeline writes the warehouse)"
    return message


def run_sql(args: argparse.Namespace) -> int:
    query = sys.stdin.read() if args.query == "-" else args.query
    if not query.strip():
        raise UserError("empty query")
    lag = None if args.live else snapshot_lag_s(args.warehouse)
    if lag is not None:
        print(
            f"note: the live warehouse changed {lag:.0f}s after the analyst snapshot "
            "(a write is running); results are as of the last completed write, "
            "--live for the latest",
            file=sys.stderr,
        )
    con = analyst_connection(args.warehouse, live=args.live)
    try:
        try:
            cursor = con.execute(query)
        except duckdb.Error as exc:
            raise UserError(one_line(exc)) from None
        try:
            if args.format == "csv":
                write_csv(cursor, sys.stdout)
            elif args.format == "json":
                write_json(cursor, sys.stdout)
            else:
                write_table(cursor, sys.stdout, args.max_rows)
            sys.stdout.flush()
        except duckdb.Error as exc:  # errors raised while streaming rows
            raise UserError(one_line(exc)) from None
        except BrokenPipeError:
            # `prompt-release sql ... | head`: the reader left; not an error.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        con.close()
    return 0

"""`prompt-release ingest PATH...`: load trace files into the warehouse and print the accounting."""

from __future__ import annotations

import argparse
import sys

from prompt_release.traces.ingest import FORMATS, ingest_paths
from prompt_release.traces.models import Counts, IngestSummary

_COLUMNS = (
    ("lines_read", "lines read"),
    ("blank_lines", "blank lines"),
    ("records", "records"),
    ("stored", "rows stored"),
    ("duplicates", "duplicates skipped"),
    ("rejected", "rows rejected"),
    ("non_call_spans", "non-call spans"),
    ("prompt_version_missing", "prompt_version missing"),
)


def add_commands(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "ingest",
        parents=[common],
        help="ingest trace files (native JSONL, OTLP/JSON) into the warehouse",
        description="Ingest trace files and folders (.jsonl, .json, .jsonl.gz); each file in one transaction.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or folders (searched recursively)")
    parser.add_argument("--format", choices=FORMATS, default="auto", help="input format (default: detect per file)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.set_defaults(func=run_ingest)


def _progress_printer():
    def show(message: str) -> None:
        print(f"\r\033[Kingesting {message}", end="", file=sys.stderr, flush=True)

    return show


def run_ingest(args: argparse.Namespace) -> int:
    show = _progress_printer() if sys.stderr.isatty() or getattr(args, "progress", False) else None
    summary = ingest_paths(args.paths, warehouse=args.warehouse, format=args.format, progress=show)
    if show:
        print("\r\033[K", end="", file=sys.stderr, flush=True)
    if args.json:
        print(summary.model_dump_json())
    else:
        print(render(summary))
    return 0


def render(summary: IngestSummary) -> str:
    rows: list[tuple[str, Counts]] = sorted(summary.by_format.items()) + [("total", summary.total)]
    header = ["format", "files"] + [label for _, label in _COLUMNS]
    table = [header] + [[name, str(c.files)] + [f"{getattr(c, key):,}" for key, _ in _COLUMNS] for name, c in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = [
        "  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths))) for r in table
    ]
    lines.append(f"accounting: {summary.accounting}")
    return "\n".join(lines)

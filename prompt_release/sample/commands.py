"""`prompt-release generate-traces` (the sample production history and its ground truth) and
`prompt-release generate-labels` (a bulk label file for a golden set from that ground truth)."""

from __future__ import annotations

import argparse
import json
import time
from datetime import date
from pathlib import Path

from prompt_release import config
from prompt_release.errors import UserError
from prompt_release.registry import Registry
from prompt_release.sample.generator import GROUND_TRUTH_FILE, generate
from prompt_release.sample.labels import write_label_file


def add_commands(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "generate-traces",
        parents=[common],
        help="write a deterministic sample production history (day folders) with known failures",
        description="Write DAYS day folders OUT/<YYYY-MM-DD>/ of trace files (native JSONL, some gzipped, "
        "OTLP GenAI and OpenInference) for support_router, order_agent and summarizer, plus "
        "OUT/ground_truth.json listing every injected failure. Same arguments, same bytes.",
    )
    parser.add_argument("--days", type=int, default=30, help="number of days (default 30)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (day folders go under it)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="volume multiplier; 1 is about 200-400 calls per workflow per day (default 1)",
    )
    parser.add_argument(
        "--start-date",
        type=_parse_date,
        default=None,
        metavar="YYYY-MM-DD",
        help="first day (default: the first daily partition, PROMPT_RELEASE_START_DATE, 2026-10-01 unless set)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace generated files in existing day folders")
    parser.set_defaults(func=run)

    labels = subparsers.add_parser(
        "generate-labels",
        parents=[common],
        help="a label file for a golden set from the sample world's ground truth (for `golden label --from`)",
    )
    labels.add_argument("dataset", metavar="DATASET", help="e.g. support_router_golden")
    labels.add_argument("--truth", required=True, metavar="FILE", help="the ground_truth.json generate-traces wrote")
    labels.add_argument("--out", required=True, metavar="FILE", help="where to write the JSONL label file")
    labels.set_defaults(func=_generate_labels, opens_warehouse="existing")


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def package_hashes_from_registry(registry: str | None) -> dict[str, str]:
    """version_id -> package_hash from the registry, when one is configured and the registry code exists."""
    if not config.registry_configured(registry):
        return {}
    root = config.registry_root(registry)
    if not Path(root).is_dir():
        raise UserError(f"registry root {root} is not a folder", field="registry")
    return {package.version_id: package.package_hash for package in Registry(root).list_versions()}


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    truth = generate(
        args.out,
        days=args.days,
        seed=args.seed,
        scale=args.scale,
        start_date=args.start_date,
        package_hashes=package_hashes_from_registry(args.registry),
        overwrite=args.overwrite,
    )
    elapsed = time.perf_counter() - started
    by_format: dict[str, int] = {}
    for item in truth["files"]:
        by_format[item["format"]] = by_format.get(item["format"], 0) + 1
    print(
        f"wrote {len(truth['files'])} files over {truth['days']} days under {args.out} "
        f"({', '.join(f'{n} {fmt}' for fmt, n in sorted(by_format.items()))}) in {elapsed:.1f}s"
    )
    for workflow, versions in truth["calls_per_day"].items():
        calls = sum(n for days in versions.values() for n in days.values())
        failures = truth["totals"][workflow]
        failed = ", ".join(f"{name} {n}" for name, n in sorted(failures.items()))
        print(f"  {workflow}: {calls} calls ({', '.join(sorted(versions))}); injected: {failed}")
    print(f"ground truth: {Path(args.out) / GROUND_TRUTH_FILE}")
    return 0


def _generate_labels(args: argparse.Namespace) -> int:
    truth_path = Path(args.truth)
    try:
        truth = json.loads(truth_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"not a ground truth file: {exc}", file=truth_path, field="truth") from exc
    path, lines, pending = write_label_file(
        config.registry_root(args.registry), args.dataset, truth, args.out, warehouse=args.warehouse
    )
    print(f"{path}: {lines} label(s) for the {pending} unlabelled case(s) of {args.dataset}")
    return 0

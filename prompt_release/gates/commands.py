"""`prompt-release gate`: backtest (cached) and decide; exit 0 promote, 1 reject, 3 freeze, 2 usage error."""

from __future__ import annotations

import argparse
import json

from prompt_release import config
from prompt_release.evaluation.commands import (
    add_backtest_arguments,
    check_candidate,
    run_backtest_command,
)


def add_commands(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "gate",
        parents=[common],
        help="decide promote / reject / freeze for a candidate (CI step)",
        description="Backtest the candidate (answers are cached, so a repeated gate costs nothing), evaluate "
        "its gate spec (prompts/<id>/v<semver>.gates.json, else prompts/<id>/gates.json, or --spec) and "
        "print the report. Exit status: 0 promote, 1 reject, 3 freeze (not enough evidence), 2 usage error.",
    )
    add_backtest_arguments(parser)
    parser.add_argument("--spec", metavar="FILE", help="gate spec file (JSON or YAML)")
    parser.add_argument("--run-id", metavar="ID", help="decide an existing backtest run instead of running one")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--full",
        action="store_true",
        help="answer every case; by default the backtest stops as soon as every hard gate is "
        "decided (always-valid intervals; README: Adaptive backtests)",
    )
    parser.set_defaults(func=run, opens_warehouse="existing")


def run(args: argparse.Namespace) -> int:
    # lazy: the gate evaluation pulls in polars; building the CLI parser must not
    from prompt_release.gates.adaptive import AdaptiveGate
    from prompt_release.gates.evaluate import evaluate_run, load_spec_for
    from prompt_release.gates.report import render_markdown

    registry = config.registry_root(args.registry)
    check_candidate(registry, args.candidate)
    spec = load_spec_for(registry, args.candidate, spec_file=args.spec)
    if spec.dataset and not args.dataset:
        args.dataset = spec.dataset
    if spec.baseline_prompt and args.baseline == "production":
        args.baseline = spec.baseline_prompt
    stopping = None if args.full else AdaptiveGate(spec)
    run_id = args.run_id or run_backtest_command(args, quiet=args.json, stopping=stopping).run_id
    report = evaluate_run(run_id, spec, warehouse=args.warehouse)
    if args.json:
        print(json.dumps(report.to_json(), default=str))
    else:
        print(render_markdown(report))
        print(f"\nreport: {report.paths['html']}")
    return report.exit_code

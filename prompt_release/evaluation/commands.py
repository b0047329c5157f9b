"""`prompt-release backtest`: candidate vs baseline on golden cases and replayed history."""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict

from prompt_release.errors import UserError


def add_commands(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "backtest",
        parents=[common],
        help="backtest a candidate prompt against the baseline",
        description="Run a candidate and its baseline (default: the production label) on the newest golden "
        "dataset plus replayed production history, through the model endpoint (OPENAI_BASE_URL, else the "
        "embedded simulator). Completed calls are cached: a stopped run resumes where it was.",
    )
    add_backtest_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the outcome as one JSON object")
    parser.set_defaults(func=run, opens_warehouse="existing")


def add_backtest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--candidate", required=True, metavar="ID", help="candidate version, e.g. support_router:v1.6.0"
    )
    parser.add_argument(
        "--baseline",
        default="production",
        metavar="ID|LABEL",
        help="baseline version id or label (default: production)",
    )
    parser.add_argument(
        "--dataset", metavar="ID", help="golden dataset version <dataset>:v<N> (default: newest; 'none')"
    )
    parser.add_argument("--history-days", type=int, default=7, metavar="N", help="replay the last N days (default 7)")
    parser.add_argument("--history-size", type=int, default=200, metavar="N", help="replayed inputs (default 200)")
    parser.add_argument("--samples", type=int, default=1, metavar="K", help="independent samples per input (default 1)")
    parser.add_argument(
        "--budget",
        metavar="X",
        help="stop before exceeding: a token count (50000) or USD ($0.50, 0.5usd; needs prices)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="calls in flight at once at the endpoint (default: env PROMPT_RELEASE_CONCURRENCY, "
        "else 64); 1 for a server that answers one request at a time",
    )


def parse_budget(text: str | None) -> dict[str, float | int]:
    if not text:
        return {}
    value = text.strip().lower().replace(",", "").replace("_", "")
    usd = re.fullmatch(r"\$(\d+(?:\.\d+)?)|(\d+(?:\.\d+)?)\s*usd", value)
    if usd:
        return {"max_usd": float(usd.group(1) or usd.group(2))}
    tokens = re.fullmatch(r"(\d+)\s*(?:tokens?)?", value)
    if tokens:
        return {"max_tokens": int(tokens.group(1))}
    raise UserError(f"not a budget: {text!r} (a token count like 50000, or USD like $0.50)", field="budget")


def check_candidate(registry, candidate: str) -> None:
    """Fail on an unknown prompt or version before anything starts (the simulator, a backtest),
    naming the flag the user typed."""
    from prompt_release import config
    from prompt_release.registry import Registry, parse_version_id

    root = config.registry_root(registry)
    prompt_id, _ = parse_version_id(candidate, field="--candidate")
    opened = Registry(root)
    known = opened.prompt_ids()
    if prompt_id not in known:
        raise UserError(
            f"unknown prompt {prompt_id!r} in the registry at {str(root)!r} "
            f"(known: {', '.join(known) or 'none'}; --registry to use another)",
            field="--candidate",
        )
    try:
        opened.load_package(candidate)
    except UserError as exc:
        raise UserError(exc.message, field="--candidate") from None


def settings_from_args(args: argparse.Namespace):
    # lazy: the backtest pulls in polars and the SDK; building the CLI parser must not
    from prompt_release.evaluation.backtest import BacktestSettings

    return BacktestSettings(
        candidate=args.candidate,
        baseline=args.baseline,
        dataset=args.dataset,
        history_days=args.history_days,
        history_size=args.history_size,
        samples=args.samples,
        **parse_budget(args.budget),
    )


def progress_bar(label: str):
    """A tqdm progress callback (rate and ETA) on stderr, and a closer."""
    # lazy: tqdm only when a progress bar is shown
    from tqdm import tqdm

    bar = tqdm(total=0, desc=label, unit="call", file=sys.stderr, disable=None, dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    return update, bar.close


def run_backtest_command(args: argparse.Namespace, *, quiet: bool = False, stopping=None):
    # lazy: the backtest pulls in polars and the SDK; building the CLI parser must not
    from prompt_release.evaluation.backtest import run_backtest, write_behaviour_diff
    from prompt_release.llm.endpoint import model_endpoint
    from prompt_release.llm.settings import LLMSettings

    check_candidate(args.registry, args.candidate)
    settings = settings_from_args(args)
    if args.concurrency is not None and args.concurrency < 1:
        raise UserError(f"--concurrency must be at least 1, got {args.concurrency}", field="--concurrency")
    update, close = progress_bar(args.candidate)
    try:
        with model_endpoint(LLMSettings.from_env(max_concurrency=args.concurrency)) as llm_settings:
            outcome = run_backtest(
                settings,
                registry_root=args.registry,
                warehouse=args.warehouse,
                llm_settings=llm_settings,
                progress=update,
                stopping=stopping,
                log=(lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr)),
            )
    finally:
        close()
    write_behaviour_diff(outcome.run_id, warehouse=args.warehouse)
    return outcome


def run(args: argparse.Namespace) -> int:
    outcome = run_backtest_command(args, quiet=args.json)
    if args.json:
        print(json.dumps(asdict(outcome), default=str))
        return 0
    print(
        f"run {outcome.run_id}: {outcome.candidate} vs {outcome.baseline} on {outcome.cases} cases "
        f"({outcome.dataset_version or 'history only'}) -> {outcome.status}"
    )
    print(
        f"endpoint: {outcome.endpoint} serving {outcome.served_models.get('candidate')} (candidate), "
        f"{outcome.served_models.get('baseline')} (baseline); {outcome.max_concurrency} calls in flight at most"
    )
    print(
        f"calls: {outcome.calls_made} made, {outcome.calls_cached} cached, {outcome.calls_replayed} replayed, "
        f"{outcome.calls_not_run} not run (budget)"
    )
    for role, stats in outcome.summary.items():
        shown = ", ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in stats.items() if v is not None
        )
        print(f"  {role}: {shown}")
    print(f"next: prompt-release gate --candidate {outcome.candidate}")
    return 0

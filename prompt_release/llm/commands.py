"""`prompt-release simulator`: run the offline OpenAI-compatible simulator until stopped.

The first stdout line is `listening on http://HOST:PORT/v1`, so scripts and
tests can start it on port 0 and read the address back. See docs/simulator.md.
"""

from __future__ import annotations

import argparse

from pydantic import ValidationError

from prompt_release.errors import UserError


def add_commands(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "simulator",
        parents=[common],
        help="run the offline OpenAI-compatible simulator (a stand-in for a real model)",
        description="Serve POST /v1/chat/completions and GET /v1/models on localhost, answering "
        "by the directive lines in the prompt (docs/simulator.md). Prints "
        "'listening on <base_url>' first. Stop with Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--seed", type=int, default=0, help="server seed (answers and faults)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer")
    parser.add_argument("--latency-per-token-ms", type=float, default=0.0, help="added per completion token")
    parser.add_argument(
        "--noise", type=float, default=0.0, help="chance of a wrong route or a skipped tool call (0..1)"
    )
    parser.add_argument(
        "--tool-calls-as-text",
        choices=("fenced", "bare", "tagged"),
        help="write tool calls in the answer text (as some real models do) instead of tool_calls",
    )
    faults = parser.add_argument_group("fault injection (deterministic per seed)")
    faults.add_argument("--error-rate", type=float, default=0.0, help="share answered 500/502/503")
    faults.add_argument(
        "--rate-limit-every", type=int, default=0, help="every N-th chat request opens a 429 burst (0: off)"
    )
    faults.add_argument("--rate-limit-burst", type=int, default=0, help="requests answered 429 per burst")
    faults.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds on a 429")
    faults.add_argument("--slow-rate", type=float, default=0.0, help="share of answers delayed by --slow-ms")
    faults.add_argument("--slow-ms", type=float, default=0.0)
    faults.add_argument("--drop-rate", type=float, default=0.0, help="share of connections closed unanswered")
    faults.add_argument("--malformed-rate", type=float, default=0.0, help="share answered with invalid JSON")
    parser.set_defaults(func=run_simulator)


def run_simulator(args: argparse.Namespace) -> int:
    # lazy: the simulator's HTTP server stack loads only when one is run
    from prompt_release.llm.simulator import Faults, SimulatorConfig, run_forever

    try:
        config = SimulatorConfig(
            seed=args.seed,
            latency_ms=args.latency_ms,
            latency_per_token_ms=args.latency_per_token_ms,
            noise=args.noise,
            tool_calls_as_text=args.tool_calls_as_text,
            faults=Faults(
                error_rate=args.error_rate,
                rate_limit_every=args.rate_limit_every,
                rate_limit_burst=args.rate_limit_burst,
                retry_after_s=args.retry_after,
                slow_rate=args.slow_rate,
                slow_ms=args.slow_ms,
                drop_rate=args.drop_rate,
                malformed_rate=args.malformed_rate,
            ),
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UserError(first["msg"], field=".".join(map(str, first["loc"]))) from None
    try:
        run_forever(config, args.host, args.port, announce=lambda line: print(line, flush=True))
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return 0

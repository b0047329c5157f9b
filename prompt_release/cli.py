"""`prompt-release ...`: parse arguments, call the core, print, set the exit status.

Each feature module contributes its subcommands through a function
`add_commands(subparsers, common)`, listed in `COMMAND_MODULES`; `common` is a
parent parser carrying `--warehouse` and `--registry`, so every command
accepts both. Command functions take the parsed namespace and return an exit
status. A `UserError` anywhere becomes one line on stderr and exit status 2.

Locations resolve in one order (`prompt_release.config`): the flag, the
PROMPT_RELEASE_* variable, the state file `.prompt_release/config` that
`make demo` writes, the default. A command that reads the warehouse sets
`opens_warehouse="existing"` (`set_defaults`): a path that does not exist is
then an error naming it, instead of a new empty warehouse; only the commands
that create one (`ingest`, `prompts sync`, the demo) accept a missing path.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from prompt_release import __version__, config
from prompt_release.errors import UserError

# Feature modules that add subcommands; imported lazily so `--help` stays fast
# and a production app importing the runtime never pays for the CLI.
COMMAND_MODULES: tuple[str, ...] = (
    "prompt_release.sample.commands",
    "prompt_release.registry.commands",
    "prompt_release.warehouse.commands",
    "prompt_release.golden.commands",
    "prompt_release.llm.commands",
    "prompt_release.traces.commands",
    "prompt_release.evaluation.commands",
    "prompt_release.gates.commands",
)


def common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--warehouse",
        metavar="PATH",
        help="DuckDB warehouse file (env PROMPT_RELEASE_WAREHOUSE; default .prompt_release/warehouse.duckdb)",
    )
    common.add_argument(
        "--registry",
        metavar="PATH",
        help="registry root holding prompts/ (env PROMPT_RELEASE_REGISTRY; default .)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prompt-release",
        description="Ship LLM prompt changes as release artifacts.",
    )
    parser.add_argument("--version", action="version", version=f"prompt-release {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = common_options()
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_commands(subparsers, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        if getattr(args, "opens_warehouse", None) == "existing":
            # Imported here: duckdb is a start-up cost commands without a warehouse never pay.
            from prompt_release.warehouse.connection import existing_warehouse

            args.warehouse = str(existing_warehouse(args.warehouse))
        return int(args.func(args) or 0)
    except (UserError, config.ConfigFileError) as exc:
        print(f"prompt-release: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("prompt-release: interrupted", file=sys.stderr)
        return 130


def run() -> NoReturn:
    """The `prompt-release` command (and `python -m prompt_release`): main(), then leave the
    process without tearing its native thread pools down.

    Arrow's IO threads, which read a lake through delta-rs, can still be alive when the interpreter
    finalizes; their destructor then aborts the process ("terminate called without an active
    exception", exit -6) after the command has done its work (delta-io/delta-rs#2184,
    apache/arrow#34314; here 1 no-op `warehouse migrate` in 20 on a lake on moto S3). Every write
    is committed before main() returns, so: the exit handlers run (temporary folders), the
    streams are flushed, and the process leaves through os._exit with main()'s code.
    """
    try:
        code = main()
    except SystemExit as exc:  # argparse's own exits: --help, a bad flag
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away (`| head`), a closed stream
            pass
    os._exit(code)


if __name__ == "__main__":
    run()

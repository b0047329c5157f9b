"""The deployment shape: a Dagster instance in PostgreSQL, steps on Celery workers.

`python -m prompt_release_dagster.deploy instance --home DIR` writes DIR/dagster.yaml
and DIR/celery.yaml for the PostgreSQL URL in `DAGSTER_PG_URL`. Neither file
holds a connection value: the instance reads every field of `postgres_db` from
`DAGSTER_PG_*` variables in each process that opens it (daemon, webserver, run
workers, Celery workers), so the URL and its password stay in the environment.
`python -m prompt_release_dagster.deploy exec -- CMD...` runs CMD with those
variables taken from `DAGSTER_PG_URL`.

The executor of every job is chosen by the code location's environment
(`PROMPT_RELEASE_EXECUTOR`, see `selected_executor`); the definitions are the
same whichever runs the steps. Pools are claimed by the run's orchestrator
before a step is handed to Celery, so the instance's `warehouse` limit holds
across workers and runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import dagster as dg

from prompt_release.errors import UserError
from prompt_release_dagster.resources import POOL_LIMITS

ENV_PG_URL = "DAGSTER_PG_URL"
# URL part -> the variable `postgres_db` reads it from.
PG_FIELDS = {
    "hostname": "DAGSTER_PG_HOST",
    "port": "DAGSTER_PG_PORT",
    "username": "DAGSTER_PG_USER",
    "password": "DAGSTER_PG_PASSWORD",
    "db_name": "DAGSTER_PG_DB",
}

ENV_EXECUTOR = "PROMPT_RELEASE_EXECUTOR"
ENV_CELERY_BROKER = "PROMPT_RELEASE_CELERY_BROKER"
ENV_CELERY_VISIBILITY_TIMEOUT = "PROMPT_RELEASE_CELERY_VISIBILITY_TIMEOUT_S"
# Celery's own default for Redis: a message a lost worker held is handed to another one after this.
DEFAULT_VISIBILITY_TIMEOUT_S = 3600
EXECUTORS = ("multiprocess", "in_process", "celery")

DEFAULT_MAX_CONCURRENT_RUNS = 4


def instance_yaml(max_concurrent_runs: int = DEFAULT_MAX_CONCURRENT_RUNS, dequeue_interval_s: int = 5) -> str:
    fields = "\n".join(f"      {name}: {{env: {var}}}" for name, var in PG_FIELDS.items())
    return f"""\
# Written by `python -m prompt_release_dagster.deploy instance`. No connection value is stored
# here: each process that opens the instance reads them from its environment.
storage:
  postgres:
    postgres_db:
{fields}
      # The pinned SQLAlchemy opens plain `postgresql://` with psycopg 3; the extra installs psycopg2.
      scheme: postgresql+psycopg2
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: {dequeue_interval_s}
concurrency:
  runs:
    max_concurrent_runs: {max_concurrent_runs}
  pools:
    # A pool without a limit of its own gets 1. Our pools' limits live in the database
    # (`resources.POOL_LIMITS`: warehouse 1, warehouse_day 2, llm 1), set once with
    # `dagster instance concurrency set POOL N`; that command also changes one later.
    default_limit: 1
    # One run more than the free slots allow may start and wait for its slot inside the run (its
    # process already up when the slot frees); with 0 the queue holds every run whose first steps
    # wait for a pool, and runs sharing a pool never even run side by side.
    op_granularity_run_buffer: 1
run_monitoring:
  enabled: true
telemetry:
  enabled: false
nux:
  enabled: false
"""


def celery_config(visibility_timeout_s: int = DEFAULT_VISIBILITY_TIMEOUT_S) -> dict:
    """The Celery executor's config; the workers are started with the same (celery.yaml).

    The broker URL (it may hold a password) is read from PROMPT_RELEASE_CELERY_BROKER by each process.
    """
    return {
        "broker": {"env": ENV_CELERY_BROKER},
        "backend": {"env": ENV_CELERY_BROKER},
        "config_source": {
            # Acknowledge a step's message only once it finished, and give it back to the queue when
            # the process running it dies: a killed worker's step runs again elsewhere, never vanishes.
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            # A whole worker gone (no process left to give the message back): Redis hands it to
            # another worker after this many seconds, so it must exceed the longest step.
            "broker_transport_options": {"visibility_timeout": visibility_timeout_s},
            "result_backend_transport_options": {"visibility_timeout": visibility_timeout_s},
        },
    }


def celery_yaml(visibility_timeout_s: int = DEFAULT_VISIBILITY_TIMEOUT_S) -> str:
    import yaml  # only the writer needs it

    return yaml.safe_dump({"execution": {"config": celery_config(visibility_timeout_s)}}, sort_keys=False)


def selected_executor() -> dg.ExecutorDefinition | None:
    """The executor named by PROMPT_RELEASE_EXECUTOR (default: Dagster's multiprocess executor)."""
    name = os.environ.get(ENV_EXECUTOR, "").strip() or "multiprocess"
    if name not in EXECUTORS:
        raise UserError(f"{ENV_EXECUTOR}={name!r}: expected one of {', '.join(EXECUTORS)}")
    if name == "multiprocess":
        return None
    if name == "in_process":
        return dg.in_process_executor
    if not os.environ.get(ENV_CELERY_BROKER):
        raise UserError(f"{ENV_EXECUTOR}=celery needs {ENV_CELERY_BROKER} (e.g. redis://127.0.0.1:6379/0)")
    timeout = os.environ.get(ENV_CELERY_VISIBILITY_TIMEOUT, "")
    try:
        seconds = int(timeout) if timeout else DEFAULT_VISIBILITY_TIMEOUT_S
    except ValueError:
        raise UserError(f"{ENV_CELERY_VISIBILITY_TIMEOUT}={timeout!r}: expected whole seconds") from None
    # Imported only when chosen: the default code location does not need the `deploy` extra.
    from dagster_celery import celery_executor

    return celery_executor.configured(celery_config(seconds), name="celery")


def pg_environment(url: str) -> dict[str, str]:
    """The DAGSTER_PG_* variables for a PostgreSQL URL (postgresql://user:password@host:port/db)."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        raise UserError(
            f"{ENV_PG_URL}: expected postgresql://user[:password]@host[:port]/database, got scheme {parts.scheme!r}"
        )
    db = parts.path.lstrip("/")
    if not parts.hostname or not parts.username or not db:
        raise UserError(
            f"{ENV_PG_URL}: expected postgresql://user[:password]@host[:port]/database "
            "(host, user and database are required)"
        )
    return {
        PG_FIELDS["hostname"]: parts.hostname,
        PG_FIELDS["port"]: str(parts.port or 5432),
        PG_FIELDS["username"]: unquote(parts.username),
        PG_FIELDS["password"]: unquote(parts.password or ""),
        PG_FIELDS["db_name"]: db,
    }


def write_home(
    home: Path,
    *,
    visibility_timeout_s: int = DEFAULT_VISIBILITY_TIMEOUT_S,
    max_concurrent_runs: int = DEFAULT_MAX_CONCURRENT_RUNS,
    dequeue_interval_s: int = 5,
) -> list[Path]:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(instance_yaml(max_concurrent_runs, dequeue_interval_s))
    (home / "celery.yaml").write_text(celery_yaml(visibility_timeout_s))
    return [home / "dagster.yaml", home / "celery.yaml"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m prompt_release_dagster.deploy", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    instance = commands.add_parser("instance", help=f"write dagster.yaml (and celery.yaml) for ${ENV_PG_URL}")
    instance.add_argument("--home", required=True, help="the Dagster home (DAGSTER_HOME) to write into")
    instance.add_argument("--max-concurrent-runs", type=int, default=DEFAULT_MAX_CONCURRENT_RUNS)
    instance.add_argument(
        "--visibility-timeout",
        type=int,
        default=DEFAULT_VISIBILITY_TIMEOUT_S,
        help="seconds before Redis gives a lost worker's step to another worker",
    )
    run = commands.add_parser("exec", help=f"run a command with DAGSTER_PG_* taken from ${ENV_PG_URL}")
    run.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    try:
        url = os.environ.get(ENV_PG_URL)
        if not url:
            raise UserError(f"{ENV_PG_URL} is not set (postgresql://user[:password]@host[:port]/database)")
        env = pg_environment(url)
        if args.command == "instance":
            for path in write_home(
                Path(args.home),
                visibility_timeout_s=args.visibility_timeout,
                max_concurrent_runs=args.max_concurrent_runs,
            ):
                print(f"wrote {path}")
            print(
                "then give the pools their limits: "
                + "; ".join(f"dagster instance concurrency set {pool} {n}" for pool, n in POOL_LIMITS.items())
            )
            print(
                "every process opening it needs "
                + ", ".join(PG_FIELDS.values())
                + f"; workers {ENV_CELERY_BROKER}"
                + f" (or: python -m prompt_release_dagster.deploy exec -- CMD, with {ENV_PG_URL})"
            )
            return 0
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        if not cmd:
            raise UserError("exec: no command given (exec -- CMD ARGS...)")
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    os.execvpe(cmd[0], cmd, {**os.environ, **env})


if __name__ == "__main__":
    sys.exit(main())

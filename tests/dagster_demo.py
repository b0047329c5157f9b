"""The Dagster demo at small sizes, run once per test session for the end-to-end and browser tests.

`run_demo_process(root)` runs `run_demo` in its own process, as `make demo`
does, into a fresh Dagster home under `root` (a demo killed mid-run can leave
a slot of the `warehouse` pool held in its home; a new home per session never
inherits one). Its own process because Playwright's sync API keeps an event
loop running in the test process, and the backtests' `asyncio.run` cannot run
inside one. The process is bounded by a timeout and its whole process group
is stopped by PID whatever happens, so a stuck demo fails the tests instead
of hanging the suite.

Run as `python -m tests.dagster_demo STATE_DIR RESULT_JSON` (DAGSTER_HOME set):
the demo's `DemoResult`, as JSON, is what the tests read.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from prompt_release.registry import Registry
from prompt_release_dagster.demo import DemoResult, run_demo
from tests.conftest import REPO_ROOT
from tests.ui.harness import stop_process_group, write_dagster_home
from tests.world import SEED_SHIFT

DAYS, SCALE, CANARY_REQUESTS = 5, 0.3, 1000
SEED = 7 + SEED_SHIFT
# Measured at 2.5 min on the shared 2-core machine under load 5-7; four times that is stuck, not slow.
TIMEOUT_S = 600


@dataclass(frozen=True)
class DemoRun:
    home: Path  # the Dagster home the demo's runs and sensor cursors are recorded in
    result: DemoResult
    log: Path


def run_demo_process(
    root: Path, timeout_s: float = TIMEOUT_S, *, warehouse: str | None = None, env: dict[str, str] | None = None
) -> DemoRun:
    """`warehouse`: a lake for the demo instead of its DuckDB file; `env`: more variables (a lake's AWS_*)."""
    extra = env or {}
    home = write_dagster_home(root / "dagster_home")
    state, result_file, log = root / "state", root / "result.json", root / "demo.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMPT_RELEASE_", "OPENAI_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(home),
        PROMPT_RELEASE_CONFIG=str(root / "no-state-file"),
        PYTHONPATH=str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        **extra,
    )
    with log.open("wb") as out:
        # Its own session: the demo's simulator and anything else it starts share its process group.
        # a lake demo runs in `root`: gate report HTML of an S3 lake goes under ./.prompt_release
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.dagster_demo",
                str(state),
                str(result_file),
                *([warehouse] if warehouse else []),
            ],
            cwd=root if warehouse else REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            stop_process_group(proc)
    tail = log.read_text(errors="replace")[-4000:]
    if code != 0:
        outcome = f"timed out after {timeout_s:.0f}s" if code is None else f"exited {code}"
        raise RuntimeError(f"the demo {outcome}; its log ({log}) ends:\n{tail}")
    data = json.loads(result_file.read_text(encoding="utf-8"))
    for key in ("state_dir", "registry", "warehouse"):
        if "://" not in data[key]:  # a lake URI stays text (a Path folds s3:// into s3:/)
            data[key] = Path(data[key])
    return DemoRun(home, DemoResult(**data), log)


def decisions(result: DemoResult) -> dict:
    """What a release engineer reads off a demo: verdicts, where each candidate ended up, every
    label and status move in order, the canary decisions, and the golden versions."""
    registry = Registry(result.registry)
    moves = [
        (e.action, e.label, e.from_version, e.to_version, e.status)
        for prompt_id in registry.prompt_ids()
        for e in registry.history(prompt_id)
    ]
    return {
        "verdicts": {candidate: report["verdict"] for candidate, report in result.reports.items()},
        "now": result.promotions,
        "moves": moves,
        "canary": [(d["candidate_version"], d["action"]) for d in result.canary_decisions],
        "golden": result.golden_versions,
    }


def _main(state: str, result_file: str, warehouse: str | None = None) -> int:
    result = run_demo(
        Path(state),
        instance=dg.DagsterInstance.get(),
        days=DAYS,
        scale=SCALE,
        canary_requests=CANARY_REQUESTS,
        seed=SEED,
        log=lambda message: print(message, flush=True),
        warehouse=warehouse,
    )
    Path(result_file).write_text(json.dumps(dataclasses.asdict(result), default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(_main(*sys.argv[1:]))

"""A production app importing the runtime pays for no warehouse or orchestration libraries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
from prompt_release.runtime import PromptClient, TraceLogger
client = PromptClient(registry=sys.argv[1], ttl_s=30)
prompt = client.get("support_router", routing_key="user-1")
prompt.render(ticket="I lost my password", customer_tier="pro")
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("dagster", "duckdb", "polars"))
print(",".join(heavy) or "clean")
"""


def test_runtime_imports_no_dagster_duckdb_or_polars() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(REPO_ROOT)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "clean"

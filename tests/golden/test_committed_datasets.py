"""The registry in the project root is complete: its datasets/ folder holds sample traces and the
golden dataset versions built from them, and they are exactly what the pipeline makes.

`scripts/sample_datasets.sh` writes them; these tests rebuild them in a temporary copy and compare
bytes, so a hand edit, or a change to the generator, mining or golden building that would change
them, fails here until the script is re-run and the new files are committed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from prompt_release.golden import store
from prompt_release.mining.redaction import pii_in_value
from prompt_release.mining.settings import load_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
DATASETS = REPO_ROOT / "datasets"
SCRIPT = REPO_ROOT / "scripts" / "sample_datasets.sh"


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_every_committed_golden_version_reads_back_with_its_hash_and_holds_no_personal_data():
    names = store.list_datasets(REPO_ROOT)
    assert set(names) == {"support_router_golden", "order_agent_golden", "summarizer_golden"}
    patterns = load_settings(REPO_ROOT).redaction_patterns
    for name in names:
        assert store.verify_unchanged(REPO_ROOT, name) == []
        for version in store.versions(REPO_ROOT, name):
            manifest, cases = store.read_version(REPO_ROOT, name, version)  # checks the sha256
            assert manifest.case_count == len(cases) > 0
            leaks = [
                m.kind
                for c in cases
                for m in pii_in_value(
                    [c.input.model_dump(mode="json"), c.expected.model_dump(mode="json") if c.expected else None],
                    patterns,
                )
            ]
            assert leaks == [], f"{name}:v{version} holds {leaks}"


@pytest.mark.slow
def test_the_committed_datasets_are_what_the_script_rebuilds(tmp_path):
    copy = tmp_path / "project"
    for folder in ("prompts", "schemas", "evals", "scripts"):
        shutil.copytree(REPO_ROOT / folder, copy / folder)
    cli = Path(sys.executable).with_name("prompt-release")
    env = {**os.environ, "PROMPT_RELEASE_CLI": str(cli)}
    result = subprocess.run(
        ["bash", str(copy / "scripts" / SCRIPT.name)], cwd=copy, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rebuilt, committed = _files(copy / "datasets"), _files(DATASETS)
    # A manifest records when it was written; everything else must match byte for byte.
    for files in (rebuilt, committed):
        for name in [n for n in files if n.endswith(".manifest.json")]:
            files[name] = b"\n".join(line for line in files[name].splitlines() if b'"created_at"' not in line)
    assert sorted(rebuilt) == sorted(committed)
    differing = [name for name in committed if rebuilt[name] != committed[name]]
    assert differing == [], f"re-run scripts/sample_datasets.sh and commit datasets/: {differing}"

#!/usr/bin/env bash
# Rebuild the committed sample datasets under datasets/ from the committed registry:
# two days of generated production history (datasets/traces/), then ingest, mine and
# `golden build` into a throwaway warehouse, which writes datasets/golden/.
# tests/golden/test_committed_datasets.py checks the committed files are exactly this.
# Run it after a change to prompts/, the generator, mining or golden building.
set -euo pipefail
cd "$(dirname "$0")/.."
CLI="${PROMPT_RELEASE_CLI:-.venv/bin/prompt-release}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rm -rf datasets/traces datasets/golden
export PROMPT_RELEASE_REGISTRY=. PROMPT_RELEASE_WAREHOUSE="$work/warehouse.duckdb" PROMPT_RELEASE_ANALYST_SNAPSHOT=0
"$CLI" generate-traces --days 2 --scale 0.25 --seed 0 --start-date 2026-10-01 --out datasets/traces
"$CLI" ingest datasets/traces
"$CLI" mine
"$CLI" golden build

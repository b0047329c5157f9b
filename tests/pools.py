"""Which step claims which Dagster pool, read from the code location's jobs (used by several tests)."""

from __future__ import annotations

import dagster as dg


def step_pools(definitions: dg.Definitions) -> dict[str, str]:
    """Each step (op) of the code location's jobs that claims a pool -> that pool, sorted by step."""
    repo = definitions.get_repository_def()
    pools = {
        node.definition.name: node.definition.pool
        for job in repo.get_all_jobs()
        for node in job.graph.nodes
        if getattr(node.definition, "pool", None)
    }
    return dict(sorted(pools.items()))

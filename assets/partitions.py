"""Partitions shared by the asset graph: one daily partition set for traces and everything mined from them."""

from __future__ import annotations

import os

import dagster as dg

START_DATE = os.environ.get("PROMPT_RELEASE_START_DATE", "2026-10-01")

# end_offset=1 includes today's partition, so today's traces can be ingested and mined before midnight.
DAILY = dg.DailyPartitionsDefinition(start_date=START_DATE, end_offset=1)

WORKFLOWS = ("order_agent", "summarizer", "support_router")
WORKFLOW_PARTITIONS = dg.StaticPartitionsDefinition(list(WORKFLOWS))

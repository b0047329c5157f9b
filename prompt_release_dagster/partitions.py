"""Partitions shared by the asset graph.

- `DAILY`: traces and everything computed per day from them (first day: `PROMPT_RELEASE_START_DATE`).
- `PROMPTS`: one partition per served prompt (a prompt with a runtime contract in the
  registry); `prompt_versions` adds them, so no code names a prompt.
- `CANDIDATES`: one partition per candidate version; `candidate_sensor` adds them.
"""

import dagster as dg

from prompt_release import config

# end_offset=1 includes today's partition, so today's traces can be ingested and mined before midnight.
DAILY = dg.DailyPartitionsDefinition(start_date=config.partitions_start_date(), end_offset=1)

PROMPTS = dg.DynamicPartitionsDefinition(name="prompts")

CANDIDATES = dg.DynamicPartitionsDefinition(name="candidates")

"""Recorded production inputs of a prompt, for replaying them against another version.

The staging check and the canary traffic simulation both need what production
really sent: the template variables and the conversation (user, assistant and
tool turns; system messages belong to the prompt package and are dropped),
with the user id and segment the request came with. Distinct inputs are picked
in SQL, spread over the history by a hash of the input itself, so the sample
depends only on which inputs were recorded: not on the span ids they were
logged under (random, per call), nor on which recording of an input is newest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompt_release.registry.ids import check_prompt_id
from prompt_release.warehouse import read_connection


@dataclass(frozen=True)
class RecordedInput:
    variables: dict[str, Any]
    conversation: list[dict[str, Any]]
    user_id: str | None = None
    segment: dict[str, Any] | None = None
    span_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_SQL = """
WITH candidates AS (
    SELECT span_id, record_key, user_id, ts,
           CAST(variables AS VARCHAR) AS variables,
           CAST(input_messages AS VARCHAR) AS input_messages,
           CAST(segment AS VARCHAR) AS segment,
           md5(coalesce(CAST(variables AS VARCHAR), '') || '|' || CAST(input_messages AS VARCHAR)) AS input_key
    FROM traces
    -- Replay renders the template with the recorded variables: inputs recorded
    -- without them (e.g. OTLP spans that carry messages only) cannot be replayed.
    WHERE prompt_id = ? AND input_messages IS NOT NULL AND variables IS NOT NULL
      AND coalesce(status, 'ok') = 'ok'
),
newest AS (
    SELECT *, row_number() OVER (PARTITION BY input_key ORDER BY ts DESC, record_key) AS nth FROM candidates
)
SELECT span_id, user_id, variables, input_messages, segment
FROM newest WHERE nth = 1
ORDER BY hash(input_key), input_key
LIMIT ?
"""


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def recorded_inputs(warehouse: str | Path | None, prompt_id: str, *, limit: int = 50) -> list[RecordedInput]:
    """Up to `limit` distinct recorded inputs of `prompt_id`; empty when there are no traces yet."""
    check_prompt_id(prompt_id)
    with read_connection(warehouse) as con:
        exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'traces'").fetchone()[0]
        if not exists:
            return []
        rows = con.execute(_SQL, [prompt_id, int(limit)]).fetchall()
    found = []
    for span_id, user_id, variables, messages, segment in rows:
        variables = _loads(variables)
        messages = _loads(messages) or []
        conversation = [m for m in messages if isinstance(m, dict) and m.get("role") != "system"]
        segment = _loads(segment)
        found.append(
            RecordedInput(
                variables=variables if isinstance(variables, dict) else {},
                conversation=conversation,
                user_id=user_id,
                segment=segment if isinstance(segment, dict) else None,
                span_id=span_id,
            )
        )
    return found

"""Pydantic shapes of an ingest run's accounting, per file and per format.

The unit of accounting is a *record*: for native JSONL a non-blank line; for
OTLP a span, plus each non-blank line that held no readable export request
(which is rejected as a whole). Every record ends in exactly one bucket, so
per file: records = stored + duplicates + rejected + non_call_spans
(non_call_spans is always 0 for native; a cut gzip stream adds one rejected
record for the unreadable tail). Late-signal events are counted apart too
(`events`, `event_duplicates`, `events_unknown_call`): an event whose call is
not in the warehouse is stored and reported there, never dropped.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, PrivateAttr

ACCOUNTING_RULE = (
    "records = stored + duplicates + rejected + non_call_spans; "
    "a record is a non-blank line (native) or a span (OTLP; a line that holds no readable "
    "export request counts as one rejected record); blank lines are counted apart. "
    "Late-signal events: a native event line is a record (stored when new, else a duplicate); "
    "an OTLP event sits inside a span and is counted apart (an unreadable one is one rejected record); "
    "events = new event rows, event_duplicates = events already stored, "
    "events_unknown_call = new events whose call is not in traces (kept)"
)


class Counts(BaseModel):
    files: int = 0
    lines_read: int = 0
    blank_lines: int = 0
    records: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    non_call_spans: int = 0
    prompt_version_missing: int = 0
    events: int = 0
    event_duplicates: int = 0
    events_unknown_call: int = 0

    def add(self, other: Counts) -> None:
        for name in type(self).model_fields:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def balanced(self) -> bool:
        return self.records == self.stored + self.duplicates + self.rejected + self.non_call_spans


class FileSummary(Counts):
    source_file: str
    format: str
    _ingested_at: datetime | None = PrivateAttr(default=None)  # names the file's ingest_files row


class IngestSummary(BaseModel):
    files: list[FileSummary] = Field(default_factory=list)
    by_format: dict[str, Counts] = Field(default_factory=dict)
    total: Counts = Field(default_factory=Counts)
    accounting: str = ACCOUNTING_RULE

    def record(self, summary: FileSummary) -> None:
        self.files.append(summary)
        counts = Counts(**{name: getattr(summary, name) for name in Counts.model_fields})
        self.by_format.setdefault(summary.format, Counts()).add(counts)
        self.total.add(counts)

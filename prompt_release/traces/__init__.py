"""Trace ingestion: native JSONL, OTLP GenAI semconv and OpenInference -> the `traces` table.

Public API: `ingest_paths(paths, warehouse=None, format="auto")` and
`ingest_day(landing_root, day, warehouse=None)`, both returning an
`IngestSummary` whose per-file accounting always balances.
"""

from prompt_release.traces.ingest import ingest_day, ingest_paths
from prompt_release.traces.models import Counts, FileSummary, IngestSummary

__all__ = ["Counts", "FileSummary", "IngestSummary", "ingest_day", "ingest_paths"]

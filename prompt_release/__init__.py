"""prompt-release: ship LLM prompt changes as release artifacts.

The core library. It never imports dagster; `prompt_release.runtime` (what a
production app imports) additionally never imports duckdb or polars.
"""

__version__ = "0.1.0"

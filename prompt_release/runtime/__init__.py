"""What a production app imports: resolve a prompt label with a cache that fails
closed, route canary traffic, log traces in the format the warehouse ingests, and
run a candidate in shadow on a share of live requests (never served).

Never imports dagster, duckdb or polars (a test checks it in a fresh interpreter).
"""

from prompt_release.runtime.client import PromptClient, RegistryUnavailableError, ResolvedPrompt
from prompt_release.runtime.routing import bucket, in_canary, segment_matches
from prompt_release.runtime.shadow import ShadowRunner
from prompt_release.runtime.tracing import TraceLogger

__all__ = [
    "PromptClient",
    "RegistryUnavailableError",
    "ResolvedPrompt",
    "ShadowRunner",
    "TraceLogger",
    "bucket",
    "in_canary",
    "segment_matches",
]

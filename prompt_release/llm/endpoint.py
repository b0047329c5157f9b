"""The model endpoint a run talks to: the configured one, or the embedded offline simulator.

With `OPENAI_BASE_URL` set, calls go there (OpenAI, Azure, vLLM, Ollama, a
LiteLLM proxy...). Without it, the project's own simulator is started on a
free localhost port for the duration of the run and a notice says so on
stderr: the embedded default is never silent and never used when an endpoint
is configured. The simulator reports a modelled processing time per answer
(a base plus a cost per output token, in OpenAI's `openai-processing-ms`
header), which is what latency gates compare, so it need not sleep.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from prompt_release.llm.settings import LLMSettings

# Real delay added by the embedded simulator: none. Its reported processing
# time models latency; sleeping would only slow the demo down.
SIMULATOR_LATENCY_MS = 0.0
SIMULATOR_LATENCY_PER_TOKEN_MS = 0.0


@contextmanager
def model_endpoint(settings: LLMSettings | None = None, *, quiet: bool = False, seed: int = 0) -> Iterator[LLMSettings]:
    settings = settings or LLMSettings.from_env()
    if settings.base_url:
        yield settings
        return
    # lazy: the simulator's HTTP server stack loads only when no endpoint is configured
    from prompt_release.llm.simulator import start_simulator

    with start_simulator(seed=seed, latency_ms=SIMULATOR_LATENCY_MS,
                         latency_per_token_ms=SIMULATOR_LATENCY_PER_TOKEN_MS) as simulator:
        if not quiet:
            print(f"no OPENAI_BASE_URL set: using the embedded offline simulator at {simulator.base_url}",
                  file=sys.stderr)
        yield settings.model_copy(update={"base_url": simulator.base_url})

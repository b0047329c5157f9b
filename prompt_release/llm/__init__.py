"""The model boundary: an openai-SDK client (cache, limits, retries, budget) and the offline simulator.

`run_calls` is what the backtest uses to make model calls; `start_simulator`
starts the OpenAI-compatible offline stand-in for tests and the demo.
"""

from prompt_release.llm.client import CallRequest, CallResult, run_calls, run_calls_sync
from prompt_release.llm.settings import Budget, LLMSettings, ModelPrice

__all__ = ["Budget", "CallRequest", "CallResult", "LLMSettings", "ModelPrice", "run_calls", "run_calls_sync"]

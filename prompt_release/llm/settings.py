"""Configuration of the model client: endpoint, key, limits, retries, prices, budget.

`LLMSettings.from_env()` reads `OPENAI_BASE_URL`, `OPENAI_API_KEY` and
`PROMPT_RELEASE_CONCURRENCY` through `prompt_release.config`; the key
is a `SecretStr`, so it never shows in a repr, a log line or a stored row.
Prices are per model, USD per million input and output tokens, and are what a
USD budget is counted in.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from prompt_release import config
from prompt_release.config import ENV_API_KEY, ENV_BASE_URL, ENV_CONCURRENCY

# Local OpenAI-compatible servers (the simulator, vLLM, Ollama) ignore the key,
# but the SDK refuses to start without one.
PLACEHOLDER_KEY = "not-set"


class ModelPrice(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    input_per_1m: float = Field(ge=0, description="USD per million input tokens")
    output_per_1m: float = Field(ge=0, description="USD per million output tokens")

    def cost(self, input_tokens: float, output_tokens: float) -> float:
        return (input_tokens * self.input_per_1m + output_tokens * self.output_per_1m) / 1_000_000


class Budget(BaseModel):
    """A per-run ceiling; a call runs only if its worst case still fits under every limit given."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tokens: int | None = Field(None, ge=0, description="input + output tokens")
    max_usd: float | None = Field(None, ge=0, description="USD, priced with LLMSettings.prices")

    @model_validator(mode="after")
    def _one_limit(self) -> Budget:
        if self.max_tokens is None and self.max_usd is None:
            raise ValueError("a budget needs max_tokens or max_usd")
        return self


class LLMSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str | None = Field(None, description=f"OpenAI-compatible endpoint (env {ENV_BASE_URL})")
    api_key: SecretStr | None = Field(None, description=f"env {ENV_API_KEY}; never logged or stored")
    endpoint_name: str | None = Field(
        None,
        description="stable name of an endpoint whose URL changes every run (the embedded simulator); "
        "stands for the URL in the endpoint identity",
    )
    max_concurrency: int = Field(
        config.DEFAULT_LLM_CONCURRENCY,
        ge=1,
        description=f"calls in flight at once at this endpoint (env {ENV_CONCURRENCY}); "
        "a server that answers one request at a time wants 1, or latency measures its queue",
    )
    requests_per_minute: float | None = Field(None, gt=0)
    tokens_per_minute: float | None = Field(None, gt=0, description="counted as input estimate + output cap")
    request_timeout_s: float = Field(60.0, gt=0, description="per attempt")
    max_attempts: int = Field(6, ge=1, description="first try + retries")
    backoff_base_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    max_retry_after_s: float = Field(120.0, gt=0, description="longer Retry-After waits are capped")
    default_max_tokens: int = Field(
        1024, ge=1, description="output cap sent when the package sets none, so a call's worst case is known"
    )
    chars_per_token: float = Field(
        2.0,
        gt=0,
        description="input tokens are estimated as characters / this; 2 over-estimates real tokenizers "
        "(~4 chars/token in English) so budget reservations stay upper bounds",
    )
    prices: dict[str, ModelPrice] = Field(default_factory=dict)
    cache_flush_rows: int = Field(1000, ge=1, description="most cache rows written per warehouse transaction")
    http_pools: int = Field(
        8,
        ge=1,
        description="SDK clients the calls are spread over; httpx scans its whole pool per request, "
        "so several small pools cost less CPU than one of max_concurrency connections",
    )

    @classmethod
    def from_env(cls, **overrides: Any) -> LLMSettings:
        """Overrides, else the environment (`config.llm_base_url` / `config.llm_api_key` /
        `config.llm_max_concurrency`: one resolution order)."""
        values: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
        base_url = config.llm_base_url(values.pop("base_url", None))
        api_key = values.pop("api_key", None)
        api_key = api_key if api_key is not None else config.llm_api_key()
        if base_url:
            values["base_url"] = base_url
        if api_key:
            values["api_key"] = api_key
        values["max_concurrency"] = config.llm_max_concurrency(values.pop("max_concurrency", None))
        return cls.model_validate(values)

    def price_of(self, model: str) -> ModelPrice | None:
        return self.prices.get(model)

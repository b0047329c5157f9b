"""The model endpoint a run talks to: the configured one, or the embedded offline simulator.

With `OPENAI_BASE_URL` set, calls go there (OpenAI, Azure, vLLM, Ollama, a
LiteLLM proxy...). Without it, the project's own simulator is started on a
free localhost port for the duration of the run and a notice says so on
stderr: the embedded default is never silent and never used when an endpoint
is configured. The simulator reports a modelled processing time per answer
(a base plus a cost per output token, in OpenAI's `openai-processing-ms`
header), which is what latency gates compare, so it need not sleep.

`endpoint_identity` names who answers (normalised URL, served model) for the
cache keys and run ids; the simulator is an endpoint like any other there.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from prompt_release.llm.settings import PLACEHOLDER_KEY, LLMSettings

# The embedded simulator listens on a port chosen anew for every run: its URL says nothing about
# its answers, so it is named by this instead (its served model still comes from /v1/models).
EMBEDDED_SIMULATOR = "embedded-simulator"
# Query parameters that carry credentials in some providers' URLs (Azure's api-key, signed URLs).
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
_SECRET_PARAMS = frozenset(
    {"api-key", "api_key", "apikey", "key", "token", "access_token", "sig", "signature", "code", "password", "secret"}
)


@dataclass(frozen=True)
class EndpointIdentity:
    """Who answers: the normalised base URL (no credentials) and the model it reports serving.

    Part of every cache key, backtest run id and gate report id: answers,
    runs and reports from one endpoint are never taken for another's.
    """

    base_url: str
    served_model: str

    @property
    def key(self) -> str:
        return f"{self.base_url} {self.served_model}"


def normalise_base_url(url: str) -> str:
    """Scheme and host lower-cased, default port, credentials and trailing slash dropped."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    query = urlencode(
        sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() not in _SECRET_PARAMS)
    )
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), query, ""))


_SERVED: dict[tuple[str, str], str] = {}


def served_model(settings: LLMSettings, requested: str) -> str:
    """The model the endpoint serves for `requested`, from its `/models` list.

    A listed name is served as asked; a server that lists exactly one model
    (llama.cpp, vLLM, the simulator) serves that one whatever the request
    names; an endpoint without a usable list is taken at the requested name
    (each answer's own `model` is recorded beside it). Asked once per process.
    """
    assert settings.base_url, "resolve the endpoint (model_endpoint) first"
    memo = (settings.base_url, requested)
    found = _SERVED.get(memo)
    if found is not None:
        return found
    key = settings.api_key.get_secret_value() if settings.api_key else PLACEHOLDER_KEY
    served = requested
    try:
        response = httpx.get(
            settings.base_url.rstrip("/") + "/models",
            headers={"Authorization": f"Bearer {key}"},
            timeout=min(10.0, settings.request_timeout_s),
        )
        listed = (
            [m.get("id") for m in response.json().get("data") or () if isinstance(m, dict)]
            if response.status_code == 200
            else []
        )
    except (httpx.HTTPError, ValueError, AttributeError):
        listed = []
    listed = [m for m in listed if isinstance(m, str)]
    if requested not in listed and len(listed) == 1:
        served = listed[0]
    _SERVED[memo] = served
    return served


def endpoint_identity(settings: LLMSettings, requested_model: str) -> EndpointIdentity:
    if not settings.base_url:  # the SDK's own default endpoint: not asked, nothing else is reachable here
        return EndpointIdentity(OPENAI_DEFAULT_BASE_URL, requested_model)
    base = settings.endpoint_name or normalise_base_url(settings.base_url)
    return EndpointIdentity(base, served_model(settings, requested_model))


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

    with start_simulator(
        seed=seed, latency_ms=SIMULATOR_LATENCY_MS, latency_per_token_ms=SIMULATOR_LATENCY_PER_TOKEN_MS
    ) as simulator:
        if not quiet:
            print(
                f"no OPENAI_BASE_URL set: using the embedded offline simulator at {simulator.base_url}", file=sys.stderr
            )
        yield settings.model_copy(update={"base_url": simulator.base_url, "endpoint_name": EMBEDDED_SIMULATOR})

"""Run many chat completion calls through the `openai` SDK: cached, limited, retried, budgeted.

`run_calls` takes a list of `CallRequest`s and returns one `CallResult` per
request, in order. Answers already in the warehouse cache are returned
without a call (one bulk lookup); the rest go to the endpoint through
`openai.AsyncOpenAI` with bounded concurrency (halved on 429/503, regrown
one call at a time), optional requests/tokens per minute limits, and our own
retries (exponential backoff with jitter, honouring Retry-After) on 429, 5xx,
timeouts, broken connections and malformed bodies;
the SDK's own retries are off so a call is never retried twice over. With a
`Budget`, each attempt first reserves its worst case (input estimate + output
cap) and a call that cannot fit is `not_run_budget`: the run stops before it
could exceed the budget, never after. A call whose retries all failed on the
endpoint's side (429, 5xx, timeout, broken connection, malformed body) is
`not_run_infra`: no evidence about the prompt, and not cached, so running the
same run again calls it again. A call is counted only once its answer is
committed to the cache (group commits, see `llm.cache`), so a killed run
resumes where it stopped and pays again at most the answers of the commit
under way. With a `spend_key` (the logical run, e.g. a backtest run id) the
budget is per run across kills and resumes: a budgeted attempt's worst case is
committed to `llm_spend` before it is sent and settled with its answer, and a
resumed run starts from everything the run has paid (an attempt a kill left
unsettled at its worst case, since its answer may have been billed).
"""

from __future__ import annotations

import asyncio
import email.utils
import inspect
import math
import random
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import openai
import orjson

from prompt_release.canonical import canonical_json
from prompt_release.errors import UserError
from prompt_release.llm import cache as llm_cache
from prompt_release.llm.endpoint import EndpointIdentity, endpoint_identity
from prompt_release.llm.settings import PLACEHOLDER_KEY, Budget, LLMSettings

STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUS_NOT_RUN_BUDGET = "not_run_budget"
# retries exhausted on 429/5xx/timeouts/broken connections/malformed bodies: the endpoint
# failed, not the prompt; not cached, so a rerun of the same run calls it again
STATUS_NOT_RUN_INFRA = "not_run_infra"
NOT_RUN = (STATUS_NOT_RUN_BUDGET, STATUS_NOT_RUN_INFRA)

_RETRY_STATUS = frozenset({408, 409, 429})
# Answers that mean "too much at once": the in-flight limit is cut when they come back.
_OVERLOAD_ERRORS = frozenset({"http_429", "http_503"})
_CREATE_ARGS = frozenset(inspect.signature(openai.resources.chat.AsyncCompletions.create).parameters) - {"self"}


@dataclass(slots=True)
class CallRequest:
    """One call: the package's messages, model, parameters, tools and output format.

    `tools` are the package's tool specs `{name, description, parameters}`;
    `sample_index` k makes the k-th independent draw (sent as the seed).
    `tag` is the caller's handle (e.g. the case id), returned on the result.
    """

    model: str
    messages: list[dict]
    parameters: dict = field(default_factory=dict)
    tools: list[dict] = field(default_factory=list)
    response_format: dict | None = None
    package_hash: str | None = None
    sample_index: int = 0
    tag: str | None = None


@dataclass(slots=True)
class CallResult:
    tag: str | None
    cache_key: str
    sample_index: int
    status: str  # ok | error | not_run_budget | not_run_infra
    output: str | None = None
    tool_calls: list[dict] = field(default_factory=list)  # {id, name, arguments: object or raw string}
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: float | None = None  # the server's own figure where it gives one (no queueing here), else client_ms
    cached: bool = False
    attempts: int = 0
    error_type: str | None = None
    error: str | None = None
    served_model: str | None = None  # the answer's own `model`
    server_ms: float | None = None  # processing time the server reported (header or llama.cpp `timings`)
    client_ms: float | None = None  # request to answer as this client saw it (queueing included); None when cached


@dataclass(slots=True)
class _Shape:
    """What a request adds to its messages: the same for every request of one package and sample."""

    rest: bytes  # the canonical JSON of the cache material after its first key, "messages"
    kwargs: dict[str, Any]  # SDK arguments other than model and messages
    extra: dict[str, Any]  # parameters the SDK does not name: sent as extra_body
    tool_chars: int
    output_cap: int


@dataclass(slots=True)
class _Prepared:
    """A request and its cache key. What only a real call needs (SDK arguments, the cache row's
    request text, the budget's input estimate) is derived when asked: a cached run never asks."""

    key: str
    request: CallRequest
    canonical: bytes  # the canonical JSON the key hashes
    shape: _Shape
    chars_per_token: float

    @property
    def request_json(self) -> str:
        return self.canonical.decode()

    @property
    def output_cap(self) -> int:
        return self.shape.output_cap

    @property
    def kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": self.request.model, "messages": self.request.messages, **self.shape.kwargs}
        if self.shape.extra:
            kwargs["extra_body"] = dict(self.shape.extra)
        return kwargs

    @property
    def input_estimate(self) -> int:
        messages = self.request.messages
        chars = self.shape.tool_chars
        for m in messages:
            content = m.get("content")
            chars += len(content) if isinstance(content, str) else len(orjson.dumps(m))
        return math.ceil(chars / self.chars_per_token) + 4 * len(messages) + 8


class _Retryable(Exception):
    def __init__(self, error_type: str, message: str, retry_after: float | None = None, charged: bool = False):
        super().__init__(message)
        self.error_type = error_type
        self.retry_after = retry_after
        # A timeout or a dropped connection may still have been billed; count it at its worst case.
        self.charged = charged


class _Fatal(Exception):
    pass


# --- preparing requests ------------------------------------------------------------


def _tool_payload(tools: list[dict]) -> list[dict]:
    payload = []
    for tool in tools:
        function = {"name": tool["name"], "parameters": tool.get("parameters") or {"type": "object", "properties": {}}}
        if tool.get("description"):
            function["description"] = tool["description"]
        payload.append({"type": "function", "function": function})
    return payload


def _shape(request: CallRequest, settings: LLMSettings, endpoint: EndpointIdentity) -> _Shape:
    params = dict(request.parameters)
    # Every call carries an output cap so its worst-case cost is known.
    if params.get("max_tokens") is None and params.get("max_completion_tokens") is None:
        params["max_tokens"] = settings.default_max_tokens
    base_seed = params.get("seed")
    params["seed"] = (int(base_seed) if base_seed is not None else 0) + request.sample_index
    tools = _tool_payload(request.tools)
    material = {
        "endpoint": endpoint.key,  # answers from one endpoint are never reused for another
        "model": request.model,
        "package_hash": request.package_hash,
        "parameters": params,
        "tools": tools,
        "response_format": request.response_format,
        "sample_index": request.sample_index,
    }
    kwargs: dict[str, Any] = {}
    extra = {}
    for name, value in params.items():
        (kwargs if name in _CREATE_ARGS else extra)[name] = value
    if tools:
        kwargs["tools"] = tools
    if request.response_format is not None:
        kwargs["response_format"] = request.response_format
    return _Shape(
        b"," + canonical_json(material)[1:],
        kwargs,
        extra,
        len(orjson.dumps(tools)) if tools else 0,
        int(params.get("max_completion_tokens") or params["max_tokens"]),
    )


def prepare(
    request: CallRequest,
    settings: LLMSettings,
    shapes: dict[tuple, _Shape] | None = None,
    endpoints: dict[str, EndpointIdentity] | None = None,
) -> _Prepared:
    """Effective parameters, cache key and SDK arguments of one request.

    `shapes` memoises the part that does not depend on the messages across
    the requests of one run (keyed on the identity of the shared objects,
    which the requests keep alive).
    """
    shape_key = (
        id(request.parameters),
        id(request.tools),
        id(request.response_format),
        request.model,
        request.package_hash,
        request.sample_index,
    )
    shape = shapes.get(shape_key) if shapes is not None else None
    if shape is None:
        endpoint = (endpoints or {}).get(request.model) or endpoint_identity(settings, request.model)
        shape = _shape(request, settings, endpoint)
        if shapes is not None:
            shapes[shape_key] = shape
    # The cache material's keys sort "messages" first, so its canonical JSON is
    # the messages' canonical JSON followed by the shared rest: the same bytes
    # (and cache key) as canonical_json of the whole material.
    canonical = b'{"messages":' + canonical_json(request.messages) + shape.rest
    return _Prepared(llm_cache.cache_key(canonical), request, canonical, shape, settings.chars_per_token)


# --- parsing answers ---------------------------------------------------------------


def parse_completion(
    body: bytes | str,
) -> tuple[str | None, list[dict], str | None, int | None, int | None, str | None, float | None]:
    """(output, tool_calls, finish_reason, input_tokens, output_tokens, served_model, server_ms) of a
    completion body; server_ms from llama.cpp's `timings` (prompt + generation), else None.

    Raises ValueError/KeyError/TypeError/IndexError on a body that is not a completion.
    """
    data = orjson.loads(body)
    choice = data["choices"][0]
    message = choice["message"]
    tool_calls = []
    for call in message.get("tool_calls") or ():
        function = call["function"]
        arguments = function.get("arguments")
        try:
            parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
            arguments = parsed if isinstance(parsed, dict) else arguments
        except orjson.JSONDecodeError:
            pass
        tool_calls.append({"id": call.get("id"), "name": function["name"], "arguments": arguments})
    usage = data.get("usage") or {}
    timings = data.get("timings")
    server_ms = None
    if isinstance(timings, dict) and isinstance(timings.get("predicted_ms"), (int, float)):
        server_ms = float(timings["predicted_ms"]) + float(timings.get("prompt_ms") or 0.0)
    return (
        message.get("content"),
        tool_calls,
        choice.get("finish_reason"),
        usage.get("prompt_tokens"),
        usage.get("completion_tokens"),
        data.get("model"),
        server_ms,
    )


def processing_ms(headers: Any) -> float | None:
    """The endpoint's own processing time (`openai-processing-ms`, as OpenAI reports it), if given.

    Latency gates compare prompts, not our client: the server's figure leaves
    out queueing in this process, which varies with load and concurrency.
    """
    value = headers.get("openai-processing-ms") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            parsed = email.utils.parsedate_tz(value)
            if parsed is not None:
                return max(0.0, email.utils.mktime_tz(parsed) - time.time())
    return None


# --- limits and budget -------------------------------------------------------------


class TokenBucket:
    """`rate_per_minute` units per minute, bursting up to ten seconds' worth."""

    def __init__(self, rate_per_minute: float) -> None:
        self.rate = rate_per_minute / 60.0
        self.capacity = max(1.0, self.rate * 10)
        self.level = self.capacity
        self.stamp = time.monotonic()

    async def acquire(self, amount: float) -> None:
        amount = min(amount, self.capacity)
        while True:
            now = time.monotonic()
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.level >= amount:
                self.level -= amount
                return
            await asyncio.sleep((amount - self.level) / self.rate)

    def refund(self, amount: float) -> None:
        self.level = min(self.capacity, self.level + max(0.0, amount))


class BudgetLedger:
    """Spent and reserved tokens/USD of one run; a reservation succeeds only if it fits."""

    def __init__(self, budget: Budget, settings: LLMSettings, spent: tuple[float, float] = (0.0, 0.0)) -> None:
        self.budget = budget
        self.settings = settings
        self.spent_tokens, self.spent_usd = spent  # what earlier runs of the same logical run paid
        self.reserved_tokens = 0.0
        self.reserved_usd = 0.0
        self.in_flight = 0
        self._changed = asyncio.Event()

    def worst_case(self, prepared: _Prepared) -> tuple[float, float]:
        tokens = prepared.input_estimate + prepared.output_cap
        price = self.settings.price_of(prepared.request.model)
        usd = price.cost(prepared.input_estimate, prepared.output_cap) if price else 0.0
        return tokens, usd

    def _fits(self, tokens: float, usd: float) -> bool:
        b = self.budget
        if b.max_tokens is not None and self.spent_tokens + self.reserved_tokens + tokens > b.max_tokens:
            return False
        if b.max_usd is not None and self.spent_usd + self.reserved_usd + usd > b.max_usd + 1e-12:
            return False
        return True

    async def reserve(self, tokens: float, usd: float) -> bool:
        """Reserve, waiting while calls in flight may still free room; False if it can never fit."""
        while not self._fits(tokens, usd):
            if self.in_flight == 0:
                return False
            self._changed.clear()
            await self._changed.wait()
        self.reserved_tokens += tokens
        self.reserved_usd += usd
        self.in_flight += 1
        return True

    def settle(self, reserved: tuple[float, float], actual: tuple[float, float]) -> None:
        self.reserved_tokens -= reserved[0]
        self.reserved_usd -= reserved[1]
        self.spent_tokens += actual[0]
        self.spent_usd += actual[1]
        self.in_flight -= 1
        self._changed.set()


class AdaptiveLimit:
    """Calls in flight at the endpoint: `ceiling` at first, halved when it answers 429 or 503, one
    more after as many successes in a row as the limit (additive increase, multiplicative decrease,
    as TCP does). One overload cuts once: answers to calls started before the last cut do not cut again.
    """

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self.limit = ceiling
        self.lowest = ceiling
        self.in_flight = 0
        self._started = 0
        self._cut_after = 0
        self._successes = 0
        self._freed = asyncio.Event()

    async def acquire(self) -> int:
        while self.in_flight >= self.limit:
            self._freed.clear()
            await self._freed.wait()
        self.in_flight += 1
        self._started += 1
        return self._started

    def release(self, ticket: int, *, ok: bool, overloaded: bool) -> None:
        self.in_flight -= 1
        if overloaded and ticket > self._cut_after:
            self.limit = max(1, self.limit // 2)
            self.lowest = min(self.lowest, self.limit)
            self._cut_after, self._successes = self._started, 0
        elif ok:
            self._successes += 1
            if self._successes >= self.limit and self.limit < self.ceiling:
                self.limit, self._successes = self.limit + 1, 0
        self._freed.set()


# --- the run -------------------------------------------------------------------------


def make_client(settings: LLMSettings) -> openai.AsyncOpenAI:
    """An SDK client for the configured endpoint with the SDK's own retries off."""
    key = settings.api_key.get_secret_value() if settings.api_key else PLACEHOLDER_KEY
    return openai.AsyncOpenAI(
        base_url=settings.base_url, api_key=key, max_retries=0, timeout=settings.request_timeout_s
    )


class _Run:
    def __init__(
        self,
        settings: LLMSettings,
        budget: Budget | None,
        writer: llm_cache.CacheWriter | None,
        progress: Callable[[int, int], None] | None,
        total: int,
        spend_key: str | None = None,
        spent: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        self.settings = settings
        self.ledger = BudgetLedger(budget, settings, spent) if budget is not None else None
        self.writer = writer
        # the logical run spend is recorded for (needs the cache writer: the same commits)
        self.spend_key = spend_key if writer is not None else None
        self.progress = progress
        self.total = total
        self.done = 0
        self.budget_exhausted = False
        self.fatal: BaseException | None = None
        self.rpm = TokenBucket(settings.requests_per_minute) if settings.requests_per_minute else None
        self.limit = AdaptiveLimit(settings.max_concurrency)
        self.tpm = TokenBucket(settings.tokens_per_minute) if settings.tokens_per_minute else None

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.settings.max_retry_after_s)
        exp = min(self.settings.backoff_max_s, self.settings.backoff_base_s * 2 ** (attempt - 1))
        return exp / 2 + random.uniform(0, exp / 2)

    def _cost(self, model: str, input_tokens: int | None, output_tokens: int | None) -> float | None:
        price = self.settings.price_of(model)
        if price is None or input_tokens is None or output_tokens is None:
            return None
        return price.cost(input_tokens, output_tokens)

    async def _attempt(self, client: openai.AsyncOpenAI, prepared: _Prepared) -> tuple[bytes, float | None, float]:
        started = time.perf_counter()
        try:
            raw = await client.chat.completions.with_raw_response.create(**prepared.kwargs)
            body = raw.http_response.content
            reported = processing_ms(raw.headers)
        except openai.APIStatusError as exc:
            status = exc.status_code
            if status in (401, 403):
                raise _Fatal(f"the endpoint refused the API key (HTTP {status}); check {'OPENAI_API_KEY'}") from None
            if status in _RETRY_STATUS or status >= 500:
                raise _Retryable(f"http_{status}", _short(exc), _retry_after(exc.response.headers)) from None
            raise
        except openai.APITimeoutError:
            raise _Retryable("timeout", f"no answer within {self.settings.request_timeout_s}s", charged=True) from None
        except openai.APIConnectionError as exc:
            raise _Retryable("connection", _short(exc.__cause__ or exc), charged=True) from None
        return body, reported, (time.perf_counter() - started) * 1000

    async def call(self, client: openai.AsyncOpenAI, prepared: _Prepared) -> CallResult:
        request = prepared.request
        result = CallResult(request.tag, prepared.key, request.sample_index, STATUS_ERROR)
        ledger = self.ledger
        for attempt in range(1, self.settings.max_attempts + 1):
            if self.budget_exhausted:
                result.status = STATUS_NOT_RUN_BUDGET
                return result
            reserved = (0.0, 0.0)
            attempt_id = uuid.uuid4().hex
            recorded = False  # the reservation is committed: a kill from here on counts it
            if ledger is not None:
                reserved = ledger.worst_case(prepared)
                if not await ledger.reserve(*reserved):
                    self.budget_exhausted = True
                    result.status = STATUS_NOT_RUN_BUDGET
                    return result
                if self.spend_key is not None:
                    try:
                        await asyncio.wrap_future(
                            self.writer.record(
                                llm_cache.SpendRow(attempt_id, self.spend_key, prepared.key, *reserved, False)
                            )
                        )
                    except BaseException:
                        ledger.settle(reserved, (0.0, 0.0))  # never sent
                        raise
                    recorded = True
            tpm_cost = prepared.input_estimate + prepared.output_cap
            if self.rpm is not None:
                await self.rpm.acquire(1)
            if self.tpm is not None:
                await self.tpm.acquire(tpm_cost)
            result.attempts = attempt
            actual = (0.0, 0.0)
            try:
                ticket = await self.limit.acquire()
                try:
                    body, reported_ms, client_ms = await self._attempt(client, prepared)
                except _Retryable as exc:
                    self.limit.release(ticket, ok=False, overloaded=exc.error_type in _OVERLOAD_ERRORS)
                    raise
                except BaseException:
                    self.limit.release(ticket, ok=False, overloaded=False)
                    raise
                self.limit.release(ticket, ok=True, overloaded=False)
                try:
                    output, tool_calls, finish, input_tokens, output_tokens, served, timed_ms = parse_completion(body)
                except (ValueError, KeyError, TypeError, IndexError):
                    raise _Retryable(
                        "malformed_response", "the endpoint answered a body that is not a completion", charged=True
                    ) from None
            except _Retryable as exc:
                if exc.charged:
                    actual = (
                        reserved
                        if ledger is not None
                        else (
                            prepared.input_estimate + prepared.output_cap,
                            self._cost(request.model, prepared.input_estimate, prepared.output_cap) or 0.0,
                        )
                    )
                if ledger is not None:
                    ledger.settle(reserved, actual)
                self._settle(attempt_id, prepared, actual, recorded)
                result.error_type, result.error = exc.error_type, str(exc)
                result.status = STATUS_NOT_RUN_INFRA
                if attempt < self.settings.max_attempts:
                    await asyncio.sleep(self._delay(attempt, exc.retry_after))
                continue
            except openai.APIStatusError as exc:
                if ledger is not None:
                    ledger.settle(reserved, actual)
                self._settle(attempt_id, prepared, actual, recorded)
                result.status = STATUS_ERROR
                result.error_type, result.error = f"http_{exc.status_code}", _short(exc)
                return result
            except BaseException:
                if ledger is not None:
                    ledger.settle(reserved, reserved)
                raise
            in_tok = input_tokens if input_tokens is not None else prepared.input_estimate
            out_tok = output_tokens if output_tokens is not None else prepared.output_cap
            cost = self._cost(request.model, in_tok, out_tok)
            if ledger is not None:
                ledger.settle(reserved, (in_tok + out_tok, cost or 0.0))
            if self.tpm is not None:
                self.tpm.refund(tpm_cost - in_tok - out_tok)
            result.status, result.error_type, result.error = STATUS_OK, None, None
            result.output, result.tool_calls, result.finish_reason = output, tool_calls, finish
            result.input_tokens, result.output_tokens = input_tokens, output_tokens
            server_ms = reported_ms if reported_ms is not None else timed_ms
            latency_ms = server_ms if server_ms is not None else client_ms
            result.cost_usd, result.latency_ms = cost, latency_ms
            result.served_model, result.server_ms, result.client_ms = served, server_ms, client_ms
            if self.writer is not None:
                spend = (
                    llm_cache.SpendRow(attempt_id, self.spend_key, prepared.key, in_tok + out_tok, cost or 0.0, True)
                    if self.spend_key is not None
                    else None
                )
                # Counted (returned) only once the answer is committed: a kill never pays for it again.
                await asyncio.wrap_future(
                    self.writer.add(
                        llm_cache.CacheRow(
                            prepared.key,
                            request.package_hash,
                            request.model,
                            request.sample_index,
                            prepared.request_json,
                            body.decode("utf-8", "replace"),
                            input_tokens,
                            output_tokens,
                            latency_ms,
                        ),
                        spend,
                    )
                )
            return result
        return result

    def _settle(self, attempt_id: str, prepared: _Prepared, actual: tuple[float, float], recorded: bool) -> None:
        """Record a failed attempt's spend. Not waited for: a kill that loses it leaves the reservation
        standing, whose worst case is never less than `actual` (without a budget it only informs)."""
        if self.spend_key is not None and (recorded or actual[0] or actual[1]):
            self.writer.record(llm_cache.SpendRow(attempt_id, self.spend_key, prepared.key, *actual, True))

    def tick(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


def _short(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return text[:300]


def _from_cache(prepared: _Prepared, hit: llm_cache.CachedResponse, settings: LLMSettings) -> CallResult:
    output, tool_calls, finish, input_tokens, output_tokens, served, server_ms = parse_completion(hit.response)
    price = settings.price_of(prepared.request.model)
    cost = (
        price.cost(input_tokens, output_tokens)
        if price and input_tokens is not None and output_tokens is not None
        else None
    )
    request = prepared.request
    return CallResult(
        request.tag,
        prepared.key,
        request.sample_index,
        STATUS_OK,
        output,
        tool_calls,
        finish,
        input_tokens,
        output_tokens,
        cost,
        hit.latency_ms,
        True,
        0,
        None,
        None,
        served,
        server_ms,
    )


@dataclass(slots=True)
class CacheProbe:
    """A run's requests, prepared, and what the cache already answers for them (one lookup).

    `probe_cache` makes one on a connection the caller holds, so a caller
    that will write to the warehouse anyway can look up and write on one
    connection; `run_calls(probe=...)` then skips its own lookup.
    """

    prepared: list[_Prepared]
    first_of: dict[str, int]  # cache key -> index of its first request
    hits: dict[str, llm_cache.CachedResponse]
    spent: tuple[float, float] = (0.0, 0.0)  # (tokens, USD) the probe's spend_key has paid so far


def _prepare_all(requests: list[CallRequest], settings: LLMSettings, budget: Budget | None) -> list[_Prepared]:
    shapes: dict[tuple, _Shape] = {}
    endpoints = {model: endpoint_identity(settings, model) for model in {r.model for r in requests}}
    prepared = [prepare(r, settings, shapes, endpoints) for r in requests]
    if budget is not None and budget.max_usd is not None:
        unpriced = sorted({p.request.model for p in prepared} - set(settings.prices))
        if unpriced:
            raise UserError(
                f"a USD budget needs a price for every model; none for {', '.join(unpriced)}", field="prices"
            )
    return prepared


def _first_of(prepared: list[_Prepared]) -> dict[str, int]:
    first_of: dict[str, int] = {}
    for index, item in enumerate(prepared):
        first_of.setdefault(item.key, index)
    return first_of


def probe_cache(
    requests: list[CallRequest],
    settings: LLMSettings,
    con: Any,
    *,
    budget: Budget | None = None,
    spend_key: str | None = None,
) -> CacheProbe:
    """Prepare `requests` and look their answers up in `llm_cache` (and what run `spend_key` has
    paid in `llm_spend`) on the open connection `con`."""
    prepared = _prepare_all(requests, settings, budget)
    first_of = _first_of(prepared)
    spent = llm_cache.spent_on(con, spend_key) if spend_key is not None else (0.0, 0.0)
    return CacheProbe(prepared, first_of, llm_cache.lookup_on(con, list(first_of)), spent)


def _cached_by_key(probe: CacheProbe, settings: LLMSettings) -> dict[str, CallResult]:
    by_key: dict[str, CallResult] = {}
    prepared, hits = probe.prepared, probe.hits
    for index in probe.first_of.values():
        hit = hits.get(prepared[index].key)
        if hit is not None:
            by_key[prepared[index].key] = _from_cache(prepared[index], hit, settings)
    return by_key


def _in_order(prepared: list[_Prepared], by_key: dict[str, CallResult]) -> list[CallResult]:
    results = []
    for item in prepared:
        result = by_key.get(item.key)
        if result is None:  # never reached: the run stopped (budget) before it
            result = CallResult(item.request.tag, item.key, item.request.sample_index, STATUS_NOT_RUN_BUDGET)
        elif result.tag != item.request.tag:
            result = replace(result, tag=item.request.tag)
        results.append(result)
    return results


def cached_results(
    probe: CacheProbe, settings: LLMSettings, progress: Callable[[int, int], None] | None = None
) -> list[CallResult] | None:
    """Every request's result, in order, when the cache answers them all (what `run_calls` would
    return without calling anything); None when any request still needs a call."""
    if len(probe.hits) < len(probe.first_of):
        return None
    results = _in_order(probe.prepared, _cached_by_key(probe, settings))
    if progress is not None and probe.first_of:
        progress(len(probe.first_of), len(probe.prepared))  # as run_calls counts: duplicates excluded
    return results


async def run_calls(
    requests: list[CallRequest],
    settings: LLMSettings,
    *,
    warehouse: str | Path | None = None,
    budget: Budget | None = None,
    progress: Callable[[int, int], None] | None = None,
    use_cache: bool = True,
    probe: CacheProbe | None = None,
    stats: dict[str, Any] | None = None,
    spend_key: str | None = None,
) -> list[CallResult]:
    """Answer every request (from the cache or the endpoint); one result per request, in order.

    Identical requests are called once. `warehouse=None` uses the configured
    warehouse; `use_cache=False` neither reads nor writes the cache. Raises
    `UserError` when the endpoint refuses the key or a USD budget has no
    price for a model; results completed before that are already cached.
    `probe`: the same requests already prepared and looked up (`probe_cache`, with the same
    `spend_key`). `stats`, when given, receives `lowest_concurrency`: the in-flight limit after
    429/503 cuts. `spend_key` names the logical run `budget` is for: what it paid in earlier
    runs (kills included) counts, and what it pays now is recorded (needs `use_cache`).
    """
    total = len(requests)
    spent = (0.0, 0.0)
    if probe is not None and use_cache:
        prepared, first_of, spent = probe.prepared, probe.first_of, probe.spent
        by_key = _cached_by_key(probe, settings)
    else:
        prepared = _prepare_all(requests, settings, budget)
        first_of = _first_of(prepared)
        hits = {}
        if use_cache and spend_key is not None:
            hits, spent = llm_cache.lookup_with_spend(warehouse, list(first_of), spend_key)
        elif use_cache:
            hits = llm_cache.lookup(warehouse, list(first_of))
        by_key = _cached_by_key(CacheProbe(prepared, first_of, hits), settings)
    unique = list(first_of.values())
    to_call = deque(i for i in unique if prepared[i].key not in by_key)
    writer = llm_cache.CacheWriter(warehouse, flush_rows=settings.cache_flush_rows) if use_cache and to_call else None
    run = _Run(settings, budget, writer, progress, total, spend_key, spent)
    run.done = total - len(to_call) - (len(prepared) - len(unique))  # cached + duplicates count as done
    if progress is not None and run.done:
        progress(run.done, total)
    try:
        if to_call:
            workers = min(settings.max_concurrency, len(to_call))
            clients = [make_client(settings) for _ in range(min(settings.http_pools, workers))]

            async def worker(client: openai.AsyncOpenAI) -> None:
                while to_call and run.fatal is None:
                    index = to_call.popleft()
                    try:
                        by_key[prepared[index].key] = await run.call(client, prepared[index])
                    except _Fatal as exc:
                        run.fatal = exc
                        return
                    run.tick()

            try:
                await asyncio.gather(*(worker(clients[w % len(clients)]) for w in range(workers)))
            finally:
                for client in clients:
                    await client.close()
    finally:
        if writer is not None:
            writer.close()
    if stats is not None:
        stats["lowest_concurrency"] = run.limit.lowest
    if run.fatal is not None:
        raise UserError(str(run.fatal))
    return _in_order(prepared, by_key)


def run_calls_sync(requests: list[CallRequest], settings: LLMSettings, **options: Any) -> list[CallResult]:
    """`run_calls` for synchronous callers (CLI, Dagster assets, notebooks).

    Inside a thread that already runs an event loop (Jupyter, an async app,
    Playwright's sync API) `asyncio.run` is refused, so the calls then run on
    a worker thread with a loop of its own.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run_calls(requests, settings, **options))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prompt-release-calls") as pool:
        return pool.submit(asyncio.run, run_calls(requests, settings, **options)).result()

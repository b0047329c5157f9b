"""The offline simulator: an OpenAI-compatible chat completions server on localhost.

It is a stand-in for a real model endpoint in the demo, the tests and the
benchmarks, never a special case in production code: clients reach it through
the `openai` SDK exactly as they reach OpenAI. It answers by following the
directive lines written in the prompt (`prompt_release.llm.rules`), reports
word-count usage, can inject faults (5xx, 429 bursts with Retry-After, slow
answers, dropped connections, malformed bodies) and is deterministic for a
seed: the answer depends on (server seed, request `seed`, messages) and a
fault on (server seed, request body, how often that body was seen). The HTTP
layer is a small asyncio protocol over `httptools` (uvloop when available)
because the benchmark drives thousands of requests per second through it on
one core. Documented in docs/simulator.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httptools
import orjson
from pydantic import BaseModel, ConfigDict, Field

import prompt_release
from prompt_release.llm import rules

SIMULATOR_MODEL = "simulator-1"
_MALFORMED_BODY = b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"index": 0, "mess'
_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    429: b"Too Many Requests",
    500: b"Internal Server Error",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
}
_MAX_LOGGED = 200_000


class Faults(BaseModel):
    """Faults to inject, each decided deterministically per (seed, request body, attempt)."""

    model_config = ConfigDict(extra="forbid")

    error_rate: float = Field(0.0, ge=0, le=1, description="share of requests answered 500/502/503")
    rate_limit_every: int = Field(0, ge=0, description="every N-th chat request opens a 429 burst (0: off)")
    rate_limit_burst: int = Field(0, ge=0, description="requests answered 429 in each burst")
    retry_after_s: float = Field(1.0, ge=0, description="Retry-After sent with a 429 (also as retry-after-ms)")
    slow_rate: float = Field(0.0, ge=0, le=1, description="share of requests delayed by slow_ms")
    slow_ms: float = Field(0.0, ge=0)
    drop_rate: float = Field(0.0, ge=0, le=1, description="share of requests whose connection is closed unanswered")
    malformed_rate: float = Field(0.0, ge=0, le=1, description="share answered 200 with an invalid JSON body")


class SimulatorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    latency_ms: float = Field(0.0, ge=0, description="added to every answer")
    latency_per_token_ms: float = Field(0.0, ge=0, description="added per completion token")
    noise: float = Field(0.0, ge=0, le=1, description="chance of a wrong route or a skipped tool")
    tool_calls_as_text: Literal["fenced", "bare", "tagged"] | None = Field(
        None,
        description="write the tool calls it decides in the answer text, as some real models do, "
        "instead of tool_calls: a ```json block, bare JSON, or <tool_call> tags",
    )
    # What the simulator reports as the model's processing time in the
    # `openai-processing-ms` header (as OpenAI's API does), whether or not it
    # sleeps: a deterministic model of a small hosted model's speed, with
    # seeded +-15% jitter, plus any delay it really added.
    processing_ms: float = Field(300.0, ge=0, description="reported base processing time")
    processing_per_token_ms: float = Field(8.0, ge=0, description="reported processing time per completion token")
    faults: Faults = Field(default_factory=Faults)


def served_model_id(config: SimulatorConfig) -> str:
    """What /v1/models lists: the simulator plus every setting that changes its answers, so a
    differently configured simulator is another endpoint identity (and never shares cached answers)."""
    changed = {
        name: getattr(config, name)
        for name in ("seed", "noise", "tool_calls_as_text")
        if getattr(config, name) != SimulatorConfig.model_fields[name].default
    }
    return SIMULATOR_MODEL + ("" if not changed else " (" + ", ".join(f"{k}={v}" for k, v in changed.items()) + ")")


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from the parts."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(slots=True)
class _Request:
    method: bytes
    path: str
    body: bytes
    keep_alive: bool


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 keep-alive connection; requests are answered in order."""

    __slots__ = ("app", "transport", "parser", "_url", "_body", "_busy", "_queue")

    def __init__(self, app: Simulator) -> None:
        self.app = app
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._body: list[bytes] = []
        self._busy = False
        self._queue: deque[_Request] = deque()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.send(400, orjson.dumps({"error": {"message": "bad HTTP request"}}), keep_alive=False)

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._body = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        path = self._url.split(b"?", 1)[0].decode("latin-1")
        request = _Request(self.parser.get_method(), path, b"".join(self._body), self.parser.should_keep_alive())
        if self._busy:
            self._queue.append(request)
        else:
            self._dispatch(request)

    def _dispatch(self, request: _Request) -> None:
        pending = self.app.handle(request, self)
        if pending is not None:
            self._busy = True
            asyncio.get_running_loop().create_task(self._finish(pending))

    async def _finish(self, pending: Awaitable[None]) -> None:
        try:
            await pending
        finally:
            self._busy = False
            while self._queue and not self._busy:
                self._dispatch(self._queue.popleft())

    # writing
    def send(
        self,
        status: int,
        body: bytes,
        *,
        keep_alive: bool = True,
        content_type: bytes = b"application/json",
        headers: bytes = b"",
    ) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s%s\r\n%s"
            % (
                status,
                _REASONS.get(status, b"Status"),
                content_type,
                len(body),
                headers,
                b"" if keep_alive else b"connection: close\r\n",
                body,
            )
        )
        if not keep_alive:
            transport.close()

    def start_stream(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
            )

    def stream_chunk(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"%x\r\n%s\r\n" % (len(data), data) if data else b"0\r\n\r\n")

    def drop(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Simulator:
    """Request handling and state (counters, fault attempts, request log) for one server."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.chat_requests = 0
        self.answered = 0
        # usage of every answer produced, sent or not: what a provider bills (a client killed
        # mid-call still pays for it), so tests can check spend from the endpoint's side
        self.billed_tokens = 0
        self.faults_injected: Counter[str] = Counter()
        self._attempts: Counter[bytes] = Counter()
        self.log: list[dict] = []

    # --- dispatch --------------------------------------------------------------

    def handle(self, request: _Request, conn: _Connection) -> Awaitable[None] | None:
        self.requests += 1
        path = request.path.rstrip("/")
        if path.startswith("/v1/"):
            path = path[3:]
        if path == "/chat/completions":
            if request.method != b"POST":
                return conn.send(405, _error("use POST"), keep_alive=request.keep_alive)
            return self._chat(request, conn)
        if path == "/models" and request.method == b"GET":
            body = {
                "object": "list",
                "data": [
                    {
                        "id": served_model_id(self.config),
                        "object": "model",
                        "created": 0,
                        "owned_by": "prompt-release-simulator",
                    }
                ],
            }
            return conn.send(200, orjson.dumps(body), keep_alive=request.keep_alive)
        if path == "/sim/stats" and request.method == b"GET":
            return conn.send(200, orjson.dumps(self.stats()), keep_alive=request.keep_alive)
        if path == "/sim/requests" and request.method == b"GET":
            return conn.send(200, orjson.dumps({"requests": self.log}), keep_alive=request.keep_alive)
        if path == "/sim/reset" and request.method == b"POST":
            self.reset()
            return conn.send(200, b"{}", keep_alive=request.keep_alive)
        if path == "/sim/config" and request.method == b"POST":
            try:
                update = orjson.loads(request.body or b"{}")
                merged = self.config.model_dump()
                faults = {**merged["faults"], **update.pop("faults", {})}
                self.config = SimulatorConfig.model_validate({**merged, **update, "faults": faults})
            except Exception as exc:  # noqa: BLE001 - report any bad update to the caller
                return conn.send(400, _error(str(exc)), keep_alive=request.keep_alive)
            return conn.send(200, self.config.model_dump_json().encode(), keep_alive=request.keep_alive)
        return conn.send(404, _error(f"no route for {request.path}"), keep_alive=request.keep_alive)

    def stats(self) -> dict:
        return {
            "requests": self.requests,
            "chat_requests": self.chat_requests,
            "answered": self.answered,
            "billed_tokens": self.billed_tokens,
            "faults": dict(self.faults_injected),
        }

    # --- chat completions --------------------------------------------------------

    def _chat(self, request: _Request, conn: _Connection) -> Awaitable[None] | None:
        config = self.config
        faults = config.faults
        self.chat_requests += 1
        number = self.chat_requests
        try:
            data = orjson.loads(request.body)
            messages = data["messages"]
            if not isinstance(messages, list) or not messages or not isinstance(data.get("model"), str):
                raise ValueError
        except Exception:  # noqa: BLE001 - any undecodable body is the caller's error
            return conn.send(
                400,
                _error("body must be JSON with 'model' and a non-empty 'messages' list"),
                keep_alive=request.keep_alive,
            )
        request_seed = data.get("seed") or 0
        if len(self.log) < _MAX_LOGGED:
            last_user = next((rules.message_text(m) for m in reversed(messages) if m.get("role") == "user"), None)
            self.log.append({"seed": request_seed, "last_user": last_user})

        # Faults: decided by (server seed, body, attempt of that body) so a
        # retried request eventually gets through the same way every run.
        if (
            faults.rate_limit_every
            and faults.rate_limit_burst
            and ((number - 1) % faults.rate_limit_every < faults.rate_limit_burst)
        ):
            self._note_fault("rate_limit")
            wait = faults.retry_after_s
            headers = b"retry-after: %d\r\nretry-after-ms: %d\r\n" % (math.ceil(wait), round(wait * 1000))
            return conn.send(
                429,
                _error("rate limit exceeded (simulated)", "rate_limit_exceeded"),
                keep_alive=request.keep_alive,
                headers=headers,
            )
        slow_s = 0.0
        if faults.error_rate or faults.drop_rate or faults.malformed_rate or faults.slow_rate:
            fingerprint = hashlib.blake2b(request.body, digest_size=8).digest()
            attempt = self._attempts[fingerprint]
            self._attempts[fingerprint] = attempt + 1
            key = (config.seed, fingerprint.hex(), attempt)
            if faults.drop_rate and _unit(*key, "drop") < faults.drop_rate:
                self._note_fault("drop")
                return conn.drop()
            if faults.error_rate and _unit(*key, "error") < faults.error_rate:
                status = (500, 502, 503)[int(_unit(*key, "status") * 3)]
                self._note_fault(f"http_{status}")
                return conn.send(
                    status, _error("simulated server error", "server_error"), keep_alive=request.keep_alive
                )
            if faults.malformed_rate and _unit(*key, "malformed") < faults.malformed_rate:
                self._note_fault("malformed")
                return conn.send(200, _MALFORMED_BODY, keep_alive=request.keep_alive)
            if faults.slow_rate and _unit(*key, "slow") < faults.slow_rate:
                self._note_fault("slow")
                slow_s = faults.slow_ms / 1000

        answer_seed = int.from_bytes(
            hashlib.blake2b(
                b"%d|%d|%s" % (config.seed, int(request_seed), orjson.dumps(messages, option=orjson.OPT_SORT_KEYS)),
                digest_size=8,
            ).digest(),
            "big",
        )
        offered, tools_json = _offered_tools(data.get("tools"))
        decision = rules.decide(
            messages, tools=offered, response_format=data.get("response_format"), seed=answer_seed, noise=config.noise
        )
        content, finish = decision.content, decision.finish_reason
        tool_calls = decision.tool_calls
        if tool_calls and config.tool_calls_as_text:
            content, tool_calls, finish = _calls_as_text(tool_calls, config.tool_calls_as_text), [], "stop"
        cap = data.get("max_completion_tokens") or data.get("max_tokens")
        if content is not None and isinstance(cap, int) and cap > 0:
            words = content.split()
            if len(words) > cap:
                content, finish = " ".join(words[:cap]), "length"
        completion_tokens = (
            rules.count_tokens(content)
            if content is not None
            else sum(1 + rules.count_tokens(c["arguments"].replace(",", ", ")) for c in tool_calls)
        )
        usage = {"prompt_tokens": rules.prompt_tokens(messages, tools_json), "completion_tokens": completion_tokens}
        usage["total_tokens"] = usage["prompt_tokens"] + completion_tokens
        completion_id = "chatcmpl-%016x" % answer_seed
        model = data["model"]
        self.answered += 1
        self.billed_tokens += usage["total_tokens"]
        delay = slow_s + (config.latency_ms + config.latency_per_token_ms * completion_tokens) / 1000
        if data.get("stream"):
            include_usage = bool((data.get("stream_options") or {}).get("include_usage"))
            return self._stream(
                conn,
                completion_id,
                model,
                content,
                tool_calls,
                finish,
                usage if include_usage else None,
                delay,
                config.latency_per_token_ms / 1000,
            )
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if tool_calls:
            message["tool_calls"] = [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for c in tool_calls
            ]
        body = orjson.dumps(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                "usage": usage,
                "system_fingerprint": "fp_simulator",
            }
        )
        jitter = 0.85 + 0.3 * _unit("processing", answer_seed)
        reported = (config.processing_ms + config.processing_per_token_ms * completion_tokens) * jitter + delay * 1000
        headers = b"openai-processing-ms: %d\r\n" % round(reported)
        if delay > 0:
            return self._send_later(conn, delay, body, request.keep_alive, headers)
        return conn.send(200, body, keep_alive=request.keep_alive, headers=headers)

    def _note_fault(self, kind: str) -> None:
        self.faults_injected[kind] += 1

    async def _send_later(
        self, conn: _Connection, delay: float, body: bytes, keep_alive: bool, headers: bytes = b""
    ) -> None:
        await asyncio.sleep(delay)
        conn.send(200, body, keep_alive=keep_alive, headers=headers)

    async def _stream(
        self,
        conn: _Connection,
        completion_id: str,
        model: str,
        content: str | None,
        tool_calls: list[dict],
        finish: str,
        usage: dict | None,
        delay: float,
        per_token_s: float,
    ) -> None:
        head = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_simulator",
        }

        def event(choices: list, **extra: Any) -> bytes:
            return b"data: " + orjson.dumps({**head, "choices": choices, **extra}) + b"\n\n"

        first_wait = max(0.0, delay - per_token_s * max(1, len((content or "").split())))
        if first_wait:
            await asyncio.sleep(first_wait)
        conn.start_stream()
        conn.stream_chunk(event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]))
        if content is not None:
            words = content.split(" ")
            for i, word in enumerate(words):
                piece = word if i == 0 else " " + word
                conn.stream_chunk(event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}]))
                if per_token_s:
                    await asyncio.sleep(per_token_s)
        for index, call in enumerate(tool_calls):
            conn.stream_chunk(
                event(
                    [
                        {
                            "index": 0,
                            "delta": {
                                "tool_calls": [
                                    {
                                        "index": index,
                                        "id": call["id"],
                                        "type": "function",
                                        "function": {"name": call["name"], "arguments": ""},
                                    }
                                ]
                            },
                            "finish_reason": None,
                        }
                    ]
                )
            )
            conn.stream_chunk(
                event(
                    [
                        {
                            "index": 0,
                            "delta": {"tool_calls": [{"index": index, "function": {"arguments": call["arguments"]}}]},
                            "finish_reason": None,
                        }
                    ]
                )
            )
        conn.stream_chunk(event([{"index": 0, "delta": {}, "finish_reason": finish}]))
        if usage is not None:
            conn.stream_chunk(event([], usage=usage))
        conn.stream_chunk(b"data: [DONE]\n\n")
        conn.stream_chunk(b"")


def _calls_as_text(tool_calls: list[dict], form: str) -> str:
    """Tool calls the way models that skip `tool_calls` write them (see contracts.text_forms)."""
    calls = [orjson.dumps({"name": c["name"], "arguments": orjson.loads(c["arguments"])}).decode() for c in tool_calls]
    if form == "tagged":
        return "\n".join(f"<tool_call>\n{call}\n</tool_call>" for call in calls)
    if form == "fenced":
        return "\n".join(f"```json\n{call}\n```" for call in calls)
    return "\n".join(calls)


def _error(message: str, code: str = "invalid_request_error") -> bytes:
    return orjson.dumps({"error": {"message": message, "type": code, "code": code, "param": None}})


def _offered_tools(tools: object) -> tuple[dict[str, dict | None], str | None]:
    if not isinstance(tools, list) or not tools:
        return {}, None
    offered: dict[str, dict | None] = {}
    for tool in tools:
        fn = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            offered[fn["name"]] = fn.get("parameters") if isinstance(fn.get("parameters"), dict) else None
    return offered, orjson.dumps(tools).decode()


# --- running it ------------------------------------------------------------------


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        # optional dependency: the stdlib loop when it is absent
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is absent on Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def serve(simulator: Simulator, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    """Start listening; the bound port is `server.sockets[0].getsockname()[1]`."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _Connection(simulator), host, port, backlog=1024)


def base_url_of(server: asyncio.Server, host: str) -> str:
    port = server.sockets[0].getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://{shown}:{port}/v1"


def run_forever(
    config: SimulatorConfig, host: str = "127.0.0.1", port: int = 0, announce: Callable[[str], None] = print
) -> None:
    """Serve until SIGINT/SIGTERM; announce `listening on <base_url>` once bound."""
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    simulator = Simulator(config)
    server = loop.run_until_complete(serve(simulator, host, port))
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, loop.stop)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            pass
    announce(f"listening on {base_url_of(server, host)}")
    try:
        loop.run_forever()
    finally:
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()


class SimulatorHandle:
    """A running simulator (thread or subprocess): `.base_url`, `.stop()`, control helpers."""

    def __init__(self, base_url: str, stopper: Callable[[], None]) -> None:
        self.base_url = base_url
        self._stopper = stopper

    def _control(self, method: str, path: str, body: dict | None = None) -> dict:
        # lazy: only the controlling process talks to a running simulator
        import httpx

        root = self.base_url.removesuffix("/v1")
        response = httpx.request(method, root + path, json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict:
        """{'requests', 'chat_requests', 'answered', 'billed_tokens', 'faults': {kind: count}}."""
        return self._control("GET", "/sim/stats")

    def requests(self) -> list[dict]:
        """Every chat request received, in arrival order: {'seed', 'last_user'}."""
        return self._control("GET", "/sim/requests")["requests"]

    def configure(self, **update: Any) -> dict:
        """Change settings while running, e.g. configure(faults={'error_rate': 0.2})."""
        return self._control("POST", "/sim/config", update)

    def reset(self) -> None:
        self._control("POST", "/sim/reset")

    def stop(self) -> None:
        self._stopper()

    def __enter__(self) -> SimulatorHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def config_flags(config: SimulatorConfig) -> list[str]:
    """The `prompt-release simulator` flags that reproduce `config`."""
    f = config.faults
    return [
        "--seed",
        str(config.seed),
        "--latency-ms",
        str(config.latency_ms),
        "--latency-per-token-ms",
        str(config.latency_per_token_ms),
        "--noise",
        str(config.noise),
        "--error-rate",
        str(f.error_rate),
        "--rate-limit-every",
        str(f.rate_limit_every),
        "--rate-limit-burst",
        str(f.rate_limit_burst),
        "--retry-after",
        str(f.retry_after_s),
        "--slow-rate",
        str(f.slow_rate),
        "--slow-ms",
        str(f.slow_ms),
        "--drop-rate",
        str(f.drop_rate),
        "--malformed-rate",
        str(f.malformed_rate),
        *(["--tool-calls-as-text", config.tool_calls_as_text] if config.tool_calls_as_text else []),
    ]


def start_simulator(
    config: SimulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    subprocess_mode: bool = False,
    **settings: Any,
) -> SimulatorHandle:
    """Start a simulator in a background thread (default) or its own process.

    Keyword settings are SimulatorConfig fields (seed=..., faults={...}).
    A subprocess runs `python -m prompt_release simulator` from this checkout,
    so it has its own core and GIL, as the benchmark needs.
    """
    config = config or SimulatorConfig.model_validate(settings)
    if subprocess_mode:
        return _start_subprocess(config, host, port)
    started = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        loop = new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            server = loop.run_until_complete(serve(Simulator(config), host, port))
        except BaseException as exc:  # noqa: BLE001 - hand the failure to the starting thread
            box["error"] = exc
            started.set()
            return
        box["loop"], box["url"] = loop, base_url_of(server, host)
        started.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            loop.run_until_complete(server.wait_closed())
            loop.close()

    thread = threading.Thread(target=run, name="prompt-release-simulator", daemon=True)
    thread.start()
    started.wait(30)
    if "error" in box:
        raise box["error"]

    def stop() -> None:
        loop = box["loop"]
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    return SimulatorHandle(box["url"], stop)


def _start_subprocess(config: SimulatorConfig, host: str, port: int) -> SimulatorHandle:
    root = str(Path(prompt_release.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prompt_release",
            "simulator",
            "--host",
            host,
            "--port",
            str(port),
            *config_flags(config),
        ],
        stdout=subprocess.PIPE,
        env=env,
        text=True,  # stderr is inherited: errors stay visible
    )
    line = process.stdout.readline() if process.stdout else ""
    if not line.startswith("listening on "):
        process.kill()
        process.wait(10)
        raise RuntimeError(f"simulator did not start (first line: {line!r})")

    def stop() -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if process.stdout:
            process.stdout.close()

    return SimulatorHandle(line.split("listening on ", 1)[1].strip(), stop)

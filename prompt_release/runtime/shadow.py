"""Shadow mode: a candidate answers a sampled share of live requests, off the served path, never served.

The app opts in: it builds a `ShadowRunner` with its own model call and, after
serving a request, hands it the request (`submit`). The runner decides by a
stable hash of the routing key (else at random) whether this request is in the
shadow share; if so it puts the request on a bounded queue and returns at once.
Background threads resolve the prompt's `shadow` label (moved like any other
label, so which version runs in shadow changes without a deploy), render it on
the same variables and conversation, call the model through the app's call,
and log the answer as a trace marked `"shadow": {"of": <served version>,
"served_span_id": <the served call's span>}`. Ingest keeps that key (in
`attributes`); served-traffic metrics leave such traces out, and the shadow
comparison pairs each with the served call it shadows.

What the served path pays: a hash and a non-blocking `put`. Nothing the
shadow does can block or fail it: a full queue drops the request (counted in
`stats`), and a shadow call that raises is logged as a shadow error. A shadow
call that hangs holds its worker: further requests queue, then drop; the
served path never waits for it. This module imports no warehouse or
orchestration library (the runtime's rule).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from prompt_release.runtime.client import PromptClient, ResolvedPrompt
from prompt_release.runtime.routing import bucket
from prompt_release.runtime.tracing import TraceLogger

log = logging.getLogger(__name__)

SHADOW = "shadow"

ShadowCall = Callable[[ResolvedPrompt, list[dict[str, Any]]], Mapping[str, Any]]
"""The app's model call: (prompt, messages) -> {output, tool_calls, latency_ms, usage, finish_reason,
status, error}, the fields `TraceLogger.log` takes. May raise: the shadow trace records the error."""

_LOGGED = ("output", "tool_calls", "latency_ms", "usage", "finish_reason", "status", "error", "cost_usd")


@dataclass(frozen=True)
class _Request:
    served: ResolvedPrompt
    served_span_id: str
    variables: Mapping[str, Any]
    conversation: list[dict[str, Any]] | None
    segment: Mapping[str, Any] | None
    routing_key: str | None


class ShadowRunner:
    """Run the `shadow` label of each prompt on a sampled share of served requests, asynchronously."""

    def __init__(
        self,
        client: PromptClient,
        logger: TraceLogger,
        call: ShadowCall,
        *,
        share: float = 0.1,
        label: str = SHADOW,
        workers: int = 2,
        max_queue: int = 256,
    ) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError("share is a fraction of requests, in [0, 1]")
        if workers < 1 or max_queue < 1:
            raise ValueError("a shadow runner needs at least one worker and room for one request")
        self.client, self.logger, self.call = client, logger, call
        self.share, self.label, self.workers = share, label, workers
        self._queue: queue.Queue[_Request | None] = queue.Queue(maxsize=max_queue)
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._closed = False
        self.stats = {"submitted": 0, "queued": 0, "dropped": 0, "logged": 0, "errors": 0, "skipped": 0}

    # -- the served path ---------------------------------------------------------------
    def sampled(self, prompt_id: str, routing_key: str | None) -> bool:
        if self.share <= 0.0:
            return False
        if routing_key is None:
            return random.random() < self.share
        # Salted apart from canary routing, so the shadow share is not the canary's users.
        return bucket(f"{prompt_id}\x1fshadow", str(routing_key)) < self.share * 100.0

    def submit(
        self,
        served: ResolvedPrompt,
        *,
        served_span_id: str,
        variables: Mapping[str, Any],
        conversation: list[dict[str, Any]] | None = None,
        segment: Mapping[str, Any] | None = None,
        routing_key: str | None = None,
    ) -> bool:
        """Queue this served request for the shadow if it is in the share; True if queued. Never blocks."""
        self._count("submitted")
        if self._closed or not self.sampled(served.prompt_id, routing_key):
            return False
        if not self._threads:
            self._start()
        try:
            self._queue.put_nowait(_Request(served, served_span_id, variables, conversation, segment, routing_key))
        except queue.Full:
            self._count("dropped")
            return False
        self._count("queued")
        return True

    # -- the background --------------------------------------------------------------
    def _count(self, name: str) -> None:
        with self._stats_lock:
            self.stats[name] += 1

    def _start(self) -> None:
        with self._start_lock:
            if self._threads:
                return
            for i in range(self.workers):
                thread = threading.Thread(target=self._work, name=f"prompt-shadow-{i}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        while True:
            request = self._queue.get()
            try:
                if request is None:
                    return
                self._run(request)
            except Exception:  # a shadow problem is logged, never raised into the app
                self._count("errors")
                log.exception("shadow run failed")
            finally:
                self._queue.task_done()

    def _run(self, request: _Request) -> None:
        served = request.served
        shadow = self.client.get(served.prompt_id, self.label)
        if shadow.version_id == served.version_id:
            self._count("skipped")  # nothing to compare: the shadow label points at what was served
            return
        messages = shadow.messages(request.variables, request.conversation)
        started = time.perf_counter()
        fields: dict[str, Any]
        try:
            answer = self.call(shadow, messages)
            fields = {k: answer[k] for k in _LOGGED if answer.get(k) is not None}
        except Exception as exc:
            self._count("errors")
            fields = {"status": "error", "error": type(exc).__name__}
        fields.setdefault("latency_ms", (time.perf_counter() - started) * 1000.0)
        self.logger.log(
            shadow,
            messages=messages,
            variables=request.variables,
            segment=request.segment,
            user_id=request.routing_key,
            shadow={"of": served.version_id, "served_span_id": request.served_span_id},
            **fields,
        )
        self._count("logged")

    def close(self, timeout: float | None = 10.0) -> dict[str, int]:
        """Stop taking requests, let the workers finish what is queued (up to `timeout` s); the stats."""
        self._closed = True
        deadline = None if timeout is None else time.monotonic() + timeout
        for _ in self._threads:
            try:
                self._queue.put(None, timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
            except queue.Full:
                break  # a hung shadow call holds the queue: the daemon workers end with the process
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return dict(self.stats)

    def __enter__(self) -> ShadowRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""`TraceLogger`: write one native JSONL line per LLM call, the ingest format.

Each line carries the resolved prompt version id and package hash with the
model, input (messages and variables), output, tool calls, usage, latency,
status and the request's segment/session/user, so what the app logs is
exactly what `prompt-release ingest` loads into the `traces` table. A shadow
run (`runtime.shadow`) is logged with a `shadow` key, which ingest keeps in
`attributes`. Writing to
a landing folder puts lines under `<folder>/<YYYY-MM-DD>/`, the day partitions
the pipeline reads. Each line is one `write()` on an O_APPEND descriptor, so
several processes can log into the same file without interleaving lines.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prompt_release.runtime.client import ResolvedPrompt


def _now() -> datetime:
    return datetime.now(UTC)


def _rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TraceLogger:
    """Log LLM calls as native JSONL, to one file or into day folders of a landing folder."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        landing: str | os.PathLike[str] | None = None,
        workflow: str | None = None,
    ) -> None:
        if (path is None) == (landing is None):
            raise ValueError("give exactly one of path= (a .jsonl file) or landing= (a landing folder)")
        self.path = Path(path) if path is not None else None
        self.landing = Path(landing) if landing is not None else None
        self.workflow = workflow
        self._lock = threading.Lock()
        self._fds: dict[Path, int] = {}
        self._written: set[Path] = set()
        self._stem = f"traces-{socket.gethostname()}-{os.getpid()}"

    def _target(self, ts: datetime) -> Path:
        if self.path is not None:
            return self.path
        return self.landing / ts.astimezone(UTC).strftime("%Y-%m-%d") / f"{self._stem}.jsonl"

    def _write(self, target: Path, line: bytes) -> None:
        with self._lock:
            fd = self._fds.get(target)
            if fd is None:
                target.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                self._fds[target] = fd
                self._written.add(target)
            os.write(fd, line)

    @property
    def files(self) -> list[Path]:
        """Every file this logger has written a line to, also after `close()`. Into a landing folder,
        calls are filed by their own timestamp's UTC day: traffic that runs past midnight spans two
        day folders, and whoever ingests what it logged must ingest both."""
        with self._lock:
            return sorted(self._written)

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()

    def __enter__(self) -> TraceLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(
        self,
        prompt: ResolvedPrompt,
        *,
        messages: list[dict[str, Any]],
        variables: Mapping[str, Any] | None = None,
        output: Any = None,
        tool_calls: list[dict[str, Any]] | None = None,
        latency_ms: float | None = None,
        usage: Mapping[str, int] | None = None,
        status: str = "ok",
        error: str | None = None,
        finish_reason: str | None = None,
        cost_usd: float | None = None,
        segment: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        user_id: str | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
        parent_span_id: str | None = None,
        timestamp: datetime | None = None,
        workflow: str | None = None,
        model: str | None = None,
        retries: int | None = None,
        fallback: bool | None = None,
        feedback: str | float | None = None,
        attributes: Mapping[str, Any] | None = None,
        shadow: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Build the native record for one call (what `log` writes).

        `shadow`: this call was a shadow run, never served (`{"of": served version, "served_span_id": ...}`,
        see `runtime.shadow`); served-traffic metrics leave it out.
        """
        if status not in ("ok", "error"):
            raise ValueError("status must be 'ok' or 'error'")
        record: dict[str, Any] = {
            "trace_id": trace_id or "tr_" + secrets.token_hex(12),
            "span_id": span_id or "sp_" + secrets.token_hex(8),
            "workflow": workflow or self.workflow or prompt.prompt_id,
            "prompt_version": prompt.version_id,
            "package_hash": prompt.package_hash,
            "model": model or prompt.model,
            "timestamp": _rfc3339(timestamp or _now()),
            "input": {"messages": list(messages), "variables": dict(variables or {})},
            "output": output,
            "tool_calls": [{"name": c["name"], "arguments": c.get("arguments")} for c in (tool_calls or [])],
            "status": status,
        }
        optional = {
            "parent_span_id": parent_span_id,
            "latency_ms": None if latency_ms is None else round(float(latency_ms), 3),
            "usage": dict(usage) if usage else None,
            "cost_usd": cost_usd,
            "error": error,
            "finish_reason": finish_reason,
            "segment": dict(segment) if segment else None,
            "session_id": session_id,
            "user_id": user_id,
            "retries": retries,
            "fallback": fallback,
            "feedback": feedback,
            "label": prompt.label,
            "shadow": dict(shadow) if shadow else None,
        }
        record.update({k: v for k, v in optional.items() if v is not None})
        for key, value in (attributes or {}).items():
            record.setdefault(key, value)  # extra keys land in the `attributes` column
        return record

    def log(self, prompt: ResolvedPrompt, **fields: Any) -> dict[str, Any]:
        """Write one call; returns the record written."""
        record = self.record(prompt, **fields)
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
        ts = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
        self._write(self._target(ts), line.encode("utf-8"))
        return record

    @contextmanager
    def span(
        self,
        prompt: ResolvedPrompt,
        *,
        messages: list[dict[str, Any]],
        variables: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> Iterator[dict[str, Any]]:
        """Time a call: `with logger.span(p, messages=m) as call: call["output"] = ...`.

        Set `output`, `tool_calls`, `usage`, ... on the yielded dict; an exception is
        logged as status error with its type, then re-raised.
        """
        call: dict[str, Any] = dict(fields)
        started = time.perf_counter()
        timestamp = _now()
        try:
            yield call
        except BaseException as exc:
            call["status"] = "error"
            call["error"] = type(exc).__name__
            call.setdefault("attributes", {})
            call["attributes"] = {**call["attributes"], "error_message": str(exc)[:2000]}
            raise
        finally:
            call.setdefault("latency_ms", (time.perf_counter() - started) * 1000.0)
            call.setdefault("timestamp", timestamp)
            self.log(prompt, messages=messages, variables=variables, **call)

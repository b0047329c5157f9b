"""`PromptClient`: resolve `prompt_id@label` to a package, fast, and fail closed.

Labels are read from the registry at most once per TTL per prompt; a stale
entry is served while one background thread refreshes it (stale-while-refresh).
When the registry cannot be read, or a label now points at something that does
not load or does not match its recorded hash, the client keeps serving the
last version it knew good for that label (from memory, else from the on-disk
cache) and never substitutes another version such as a draft or candidate.
With nothing known at all it raises, unless a bundled fallback package was
given. Templates are compiled once per package hash, so a cached `get()` plus
`render()` costs a few microseconds.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompt_release.contracts.post_processing import apply
from prompt_release.errors import UserError
from prompt_release.registry import render as rendering
from prompt_release.registry.api import Registry
from prompt_release.registry.ids import check_label, check_prompt_id
from prompt_release.registry.package import PromptPackage
from prompt_release.registry.packages import load_package
from prompt_release.registry.postprocess import parse_output
from prompt_release.registry.store import RegistryStore, atomic_write
from prompt_release.runtime.routing import in_canary

log = logging.getLogger(__name__)

PRODUCTION = "production"
CANARY = "canary"
_UNSERVABLE = ("draft", "rejected", "retired")


class RegistryUnavailableError(UserError):
    """The registry cannot be read and no last known good version exists."""


class ResolvedPrompt:
    """One package as served for one label: identity, model config, tools, schema, render()."""

    __slots__ = (
        "prompt_id",
        "label",
        "version_id",
        "version",
        "package_hash",
        "model",
        "parameters",
        "tools",
        "tool_policy",
        "output_format",
        "output_schema",
        "package",
        "source",
        "percent",
        "segments",
        "_template",
    )

    def __init__(
        self,
        package: PromptPackage,
        label: str,
        source: str,
        percent: float | None = None,
        segments: dict[str, list[str]] | None = None,
    ) -> None:
        self.prompt_id = package.prompt_id
        self.label = label
        self.version_id = package.version_id
        self.version = package.version
        self.package_hash = package.package_hash
        self.model = package.model
        self.parameters = package.parameters
        self.tools = package.openai_tools()
        self.tool_policy = {k: v.model_dump(mode="json") for k, v in package.tool_policy.items()}
        self.output_format = package.output_format
        self.output_schema = package.output_schema
        self.package = package
        self.source = source  # registry | memory | disk_cache | fallback
        self.percent = percent
        self.segments = segments
        # Compiled once per package hash and shared by every client in the process.
        self._template = rendering.compile_template(
            package.system_prompt_source(), key=package.package_hash, file=package.template_path
        )

    def render(self, **variables: Any) -> list[dict[str, str]]:
        """The system message for these variables; a missing one raises naming it."""
        return [{"role": "system", "content": rendering.render_text(self._template, variables, where=self.version_id)}]

    def postprocess(self, raw_output: str) -> tuple[Any, str | None]:
        """Apply the package's post-processing, then parse per its output format:
        (value, None) on success, (value or None, problem) when the contract is broken."""
        return parse_output(self.output_format, self.output_schema, apply(self.package.post_processing, raw_output))

    def messages(
        self, variables: Mapping[str, Any], conversation: list[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """System message plus the conversation (user/assistant/tool turns)."""
        rendered = self.render(**variables)
        if conversation:
            rendered.extend(m for m in conversation if m.get("role") != "system")
        return rendered

    def __repr__(self) -> str:
        return f"ResolvedPrompt({self.version_id} for {self.label!r}, {self.package_hash[:19]}, from {self.source})"


@dataclass
class _State:
    """What one prompt's labels resolve to, and when to look again."""

    labels: dict[str, ResolvedPrompt]
    expires_at: float
    refreshing: bool = False
    last_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class PromptClient:
    def __init__(
        self,
        registry: Registry | str | os.PathLike[str] | RegistryStore | None = None,
        ttl_s: float = 30.0,
        cache_dir: str | os.PathLike[str] | None = None,
        fallback: Any = None,
        *,
        stale_while_refresh: bool = True,
    ) -> None:
        self.store: RegistryStore = (registry if isinstance(registry, Registry) else Registry(registry)).store
        self.ttl_s = float(ttl_s)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.stale_while_refresh = stale_while_refresh
        self._fallback = _fallback_packages(fallback)
        self._states: dict[str, _State] = {}
        self._load_lock = threading.Lock()

    # -- the hot path ------------------------------------------------------------
    def get(
        self,
        prompt_id: str,
        label: str = PRODUCTION,
        routing_key: str | None = None,
        segment: Mapping[str, Any] | None = None,
    ) -> ResolvedPrompt:
        state = self._states.get(prompt_id)
        if state is None:
            state = self._first_load(prompt_id)
        elif time.monotonic() >= state.expires_at:
            if self.stale_while_refresh:
                self._refresh_in_background(prompt_id, state)
            else:
                self._refresh(prompt_id, state)
            state = self._states[prompt_id]
        labels = state.labels
        if label == PRODUCTION and routing_key is not None:
            canary = labels.get(CANARY)
            if canary is not None and in_canary(
                prompt_id, routing_key, canary.percent or 0.0, canary.segments, segment
            ):
                return canary
        resolved = labels.get(label)
        if resolved is None:
            raise UserError(
                f"{prompt_id} has no label {label!r}"
                + (f" (last registry error: {state.last_error})" if state.last_error else ""),
                field="label",
            )
        return resolved

    # -- loading -----------------------------------------------------------------
    def _first_load(self, prompt_id: str) -> _State:
        check_prompt_id(prompt_id)
        with self._load_lock:
            state = self._states.get(prompt_id)
            if state is not None:
                return state
            try:
                labels, errors = self._read(prompt_id, {})
            except Exception as exc:  # the registry as a whole cannot be read
                labels, errors = {}, [f"{type(exc).__name__}: {exc}"]
                labels = self._from_disk(prompt_id)
                if not labels:
                    package = self._fallback.get(prompt_id)
                    if package is None:
                        raise RegistryUnavailableError(
                            f"cannot read prompt {prompt_id!r} from the registry at {self.store.root} "
                            f"({errors[0]}) and no last known good version is cached; "
                            "pass PromptClient(fallback=...) a bundled package to start without the registry"
                        ) from exc
                    labels = {PRODUCTION: ResolvedPrompt(package, PRODUCTION, "fallback")}
                log.warning("prompt registry unreadable for %s, serving cached labels: %s", prompt_id, errors[0])
            else:
                if PRODUCTION not in labels:
                    # The label file exists but production did not resolve: fall back
                    # to what we knew, never to another version.
                    for name, resolved in self._from_disk(prompt_id).items():
                        labels.setdefault(name, resolved)
            state = _State(labels, time.monotonic() + self.ttl_s, last_error="; ".join(errors) or None)
            self._states[prompt_id] = state
            return state

    def _refresh_in_background(self, prompt_id: str, state: _State) -> None:
        with state.lock:
            if state.refreshing:
                return
            state.refreshing = True
        threading.Thread(
            target=self._refresh, args=(prompt_id, state), daemon=True, name=f"prompt-refresh-{prompt_id}"
        ).start()

    def _refresh(self, prompt_id: str, state: _State) -> None:
        try:
            try:
                labels, errors = self._read(prompt_id, state.labels)
            except Exception as exc:
                # Keep everything we had; look again after another TTL.
                log.warning("prompt registry unreadable for %s, keeping last known good: %s", prompt_id, exc)
                labels, errors = dict(state.labels), [f"{type(exc).__name__}: {exc}"]
            self._states[prompt_id] = _State(
                labels, time.monotonic() + self.ttl_s, last_error="; ".join(errors) or None
            )
        finally:
            state.refreshing = False

    def refresh(self, prompt_id: str) -> None:
        """Re-read now (e.g. right after a deploy); same fail-closed rules."""
        state = self._states.get(prompt_id)
        if state is None:
            self._first_load(prompt_id)
        else:
            self._refresh(prompt_id, state)

    def _read(self, prompt_id: str, known: dict[str, ResolvedPrompt]) -> tuple[dict[str, ResolvedPrompt], list[str]]:
        """Resolve every label from the registry. A label whose target fails keeps its
        last known good entry; an unreadable label file raises."""
        labels_rel = f"prompts/{prompt_id}/labels.json"
        if not self.store.exists(labels_rel):
            # A missing label file means a missing or unmounted registry, not "no labels".
            raise FileNotFoundError(f"{labels_rel} not found under {self.store.root}")
        entries = self.store.read_labels(prompt_id)
        resolved: dict[str, ResolvedPrompt] = {}
        errors: list[str] = []
        for label, entry in entries.items():
            try:
                check_label(label)
                previous = known.get(label)
                if (
                    previous is not None
                    and previous.version_id == entry["version_id"]
                    and previous.package_hash == entry["package_hash"]
                    and previous.percent == entry.get("percent")
                    and previous.segments == entry.get("segments")
                ):
                    resolved[label] = previous
                    continue
                package = load_package(self.store, entry["version_id"])
                if package.package_hash != entry["package_hash"]:
                    raise UserError(
                        f"{package.version_id} does not match the hash recorded for label {label!r} "
                        f"({package.package_hash} != {entry['package_hash']}): edited in place"
                    )
                if package.status in _UNSERVABLE:
                    raise UserError(f"{package.version_id} is {package.status}")
                item = ResolvedPrompt(package, label, "registry", entry.get("percent"), entry.get("segments"))
                resolved[label] = item
                self._save_to_disk(item)
            except Exception as exc:
                errors.append(f"label {label!r}: {exc}")
                log.warning("prompt %s label %s not refreshed, keeping last known good: %s", prompt_id, label, exc)
                if label in known:
                    resolved[label] = known[label]
        # Production is never removed, only moved: if it vanished, keep what we had.
        if PRODUCTION not in resolved and PRODUCTION in known:
            resolved[PRODUCTION] = known[PRODUCTION]
            errors.append("label 'production' missing from the registry; kept last known good")
        return resolved, errors

    # -- on-disk cache -------------------------------------------------------------
    def _disk_path(self, prompt_id: str, label: str) -> Path | None:
        return self.cache_dir / prompt_id / f"{label}.json" if self.cache_dir else None

    def _save_to_disk(self, item: ResolvedPrompt) -> None:
        path = self._disk_path(item.prompt_id, item.label)
        if path is None:
            return
        try:
            payload = {
                "label": item.label,
                "percent": item.percent,
                "segments": item.segments,
                **item.package.to_bundle(),
            }
            atomic_write(path, json.dumps(payload, sort_keys=True))
        except OSError as exc:  # a full disk must not take serving down
            log.warning("could not write prompt cache %s: %s", path, exc)

    def _from_disk(self, prompt_id: str) -> dict[str, ResolvedPrompt]:
        if self.cache_dir is None:
            return {}
        found: dict[str, ResolvedPrompt] = {}
        for path in sorted((self.cache_dir / prompt_id).glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                package = PromptPackage.from_bundle(data)
                label = check_label(data["label"])
                if package.prompt_id != prompt_id or package.status in _UNSERVABLE:
                    continue
                found[label] = ResolvedPrompt(package, label, "disk_cache", data.get("percent"), data.get("segments"))
            except Exception as exc:
                log.warning("ignoring unreadable prompt cache file %s: %s", path, exc)
        return found


def _fallback_packages(fallback: Any) -> dict[str, PromptPackage]:
    """Accept a PromptPackage, a bundle dict, a path to a bundle JSON, or a list/mapping of them."""
    if fallback is None:
        return {}
    items = (
        fallback.values()
        if isinstance(fallback, Mapping) and "package" not in fallback
        else (fallback if isinstance(fallback, (list, tuple)) else [fallback])
    )
    packages: dict[str, PromptPackage] = {}
    for item in items:
        if isinstance(item, PromptPackage):
            package = item
        elif isinstance(item, Mapping):
            package = PromptPackage.from_bundle(dict(item))
        else:
            package = PromptPackage.from_bundle(json.loads(Path(item).read_text(encoding="utf-8")))
        packages[package.prompt_id] = package
    return packages

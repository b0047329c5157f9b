"""The prompt package: a manifest plus the files it names, resolved and content-hashed.

`PromptPackage` is the immutable runtime artifact: everything that shapes
behaviour (template text, model, parameters, tools, tool policy, output format
and schema content, retrieval/memory policy, safety instructions,
post-processing) is hashed as canonical JSON into `package_hash`. Metadata
that does not change behaviour (owner, reasons, links, status) is carried but
not hashed. A package can be written to and rebuilt from a self-contained
JSON bundle, which is what the runtime caches on disk and ships as fallback.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from prompt_release.canonical import canonical_json
from prompt_release.errors import UserError
from prompt_release.registry import render as rendering
from prompt_release.registry.ids import version_id as make_version_id
from prompt_release.registry.manifest import (
    Links,
    Manifest,
    PostProcessingStep,
    ReleasePolicy,
    Status,
    ToolRule,
    ToolSpec,
)
from prompt_release.registry.store import RegistryStore, manifest_path

# The behaviour-shaping fields, in the order `verify` reports them.
HASHED_FIELDS: tuple[str, ...] = (
    "template",
    "model",
    "parameters",
    "tools",
    "tool_policy",
    "output_format",
    "output_schema",
    "retrieval",
    "memory",
    "safety_instructions",
    "post_processing",
)

# What else a package records about itself: compared by `prompts diff`, not hashed.
DESCRIPTIVE_FIELDS: tuple[str, ...] = (
    "schema_path",
    "required_variables",
    "variables",
    "release_policy",
    "status",
    "owner",
    "reviewer",
    "rollback_to",
    "golden_set",
    "change_reason",
    "expected_behaviour_change",
    "links",
)


def content_hash(value: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(value)).hexdigest()


class PromptPackage(BaseModel):
    """One registered (or about to be registered) prompt version, fully resolved."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt_id: str
    version: str
    version_id: str
    package_hash: str
    field_hashes: dict[str, str]
    status: Status
    manifest_status: Status
    registered: bool = False
    owner: str
    model: str
    parameters: dict[str, Any]
    tools: list[ToolSpec]
    tool_policy: dict[str, ToolRule]
    output_format: Literal["json", "text"]
    output_schema: dict[str, Any] | None
    schema_path: str | None
    template_path: str
    template_text: str
    variables: dict[str, Any]
    required_variables: tuple[str, ...]
    retrieval: dict[str, Any] | None
    memory: dict[str, Any] | None
    safety_instructions: list[str]
    post_processing: list[PostProcessingStep]
    release_policy: ReleasePolicy
    golden_set: str | None
    rollback_to: str | None
    change_reason: str
    reviewer: str | None
    links: Links
    expected_behaviour_change: str | None
    gate: dict[str, Any] | None
    metadata: dict[str, Any]
    manifest_path: str
    # Not hashed: how outputs are judged is evaluation config, not behaviour.
    rubric: str | None = None

    # -- behaviour -----------------------------------------------------------
    def content(self) -> dict[str, Any]:
        return package_content(self)

    def system_prompt_source(self) -> str:
        """The template with safety instructions appended: what is rendered as the system message."""
        return system_source(self.template_text, self.safety_instructions)

    def render_system(self, variables: dict[str, Any] | None = None) -> str:
        template = rendering.compile_template(
            self.system_prompt_source(), key=self.package_hash, file=self.template_path
        )
        return rendering.render_text(template, dict(variables or {}), where=self.version_id)

    def render(
        self, variables: dict[str, Any] | None = None, *, messages: list[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """[system message from the template] + the conversation `messages`, if given."""
        rendered = [{"role": "system", "content": self.render_system(variables)}]
        if messages:
            rendered.extend(m for m in messages if m.get("role") != "system")
        return rendered

    def unused_variables(self, variables: dict[str, Any]) -> list[str]:
        return rendering.unused_variables(self.system_prompt_source(), variables)

    def tool(self, name: str) -> ToolSpec | None:
        return next((t for t in self.tools if t.name == name), None)

    def response_format(self) -> dict[str, Any] | None:
        """The chat-completions `response_format` this package asks for: its schema, else any JSON object."""
        if self.output_format != "json":
            return None
        if self.output_schema:
            return {
                "type": "json_schema",
                "json_schema": {"name": f"{self.prompt_id}_output", "schema": self.output_schema},
            }
        return {"type": "json_object"}

    def openai_tools(self) -> list[dict[str, Any]]:
        """Tool definitions in the chat-completions `tools=` shape."""
        return [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
            }
            for t in self.tools
        ]

    # -- bundles (runtime disk cache, bundled fallback) ------------------------
    def to_bundle(self) -> dict[str, Any]:
        return {"format": "prompt-release.package/1", "package": self.model_dump(mode="json")}

    @classmethod
    def from_bundle(cls, data: dict[str, Any]) -> PromptPackage:
        package = cls.model_validate(data["package"])
        recomputed = content_hash(package_content(package))
        if recomputed != package.package_hash:
            raise UserError(
                f"bundled package {package.version_id} does not match its hash "
                f"({recomputed} != {package.package_hash}); refusing to serve it"
            )
        return package


def system_source(template_text: str, safety_instructions: list[str]) -> str:
    # Safety instructions lead the system message: the template (which usually
    # ends with the request itself) follows them.
    if not safety_instructions:
        return template_text
    return "\n".join(safety_instructions) + "\n\n" + template_text


def package_content(package: PromptPackage | dict[str, Any]) -> dict[str, Any]:
    get = package.get if isinstance(package, dict) else lambda k: getattr(package, k)
    dump = lambda items: [i.model_dump(mode="json") if hasattr(i, "model_dump") else i for i in items]  # noqa: E731
    content = {
        "template": get("template_text"),
        "model": get("model"),
        "parameters": get("parameters"),
        "tools": dump(get("tools")),
        "tool_policy": {
            k: v.model_dump(mode="json") if hasattr(v, "model_dump") else v for k, v in get("tool_policy").items()
        },
        "output_format": get("output_format"),
        "output_schema": get("output_schema"),
        "retrieval": get("retrieval"),
        "memory": get("memory"),
        "safety_instructions": get("safety_instructions"),
        "post_processing": dump(get("post_processing")),
    }
    assert tuple(content) == HASHED_FIELDS, "package_content and HASHED_FIELDS name the same fields, in order"
    return content


def build_package(
    store: RegistryStore,
    manifest: Manifest,
    *,
    manifest_file: str,
    status: Status | None = None,
    registered: bool = False,
) -> PromptPackage:
    """Resolve the files a manifest names (inside the registry root) and hash the result."""
    template_path = str(
        store.path(manifest.template, field="template", file=manifest_file).relative_to(store.path("."))
    )
    template_text = store.read_text(template_path)
    schema = None
    schema_path = None
    if manifest.schema_:
        schema_path = str(store.path(manifest.schema_, field="schema", file=manifest_file).relative_to(store.path(".")))
        try:
            schema = json.loads(store.read_text(schema_path))
        except json.JSONDecodeError as exc:
            raise UserError(f"schema is not valid JSON: {exc.msg}", file=schema_path, line=exc.lineno) from None
        # lazy: jsonschema costs start-up time the runtime (an app's import) must not pay
        from jsonschema.validators import validator_for

        try:
            validator_for(schema).check_schema(schema)
        except Exception as exc:
            raise UserError(f"not a valid JSON Schema: {getattr(exc, 'message', exc)}", file=schema_path) from None
    if manifest.rubric:
        # Like the golden set: evaluation config, but it may not point outside the root.
        store.path(manifest.rubric, field="rubric", file=manifest_file)
    if manifest.golden_set:
        # The golden set may not exist yet (it is built later), but it may not point outside the root.
        store.path(manifest.golden_set, field="golden_set", file=manifest_file)
    fields: dict[str, Any] = {
        "prompt_id": manifest.id,
        "version": manifest.version,
        "version_id": make_version_id(manifest.id, manifest.version),
        "status": status or manifest.status,
        "manifest_status": manifest.status,
        "registered": registered,
        "owner": manifest.owner,
        "model": manifest.model,
        "parameters": manifest.parameters,
        "tools": list(manifest.tools),
        "tool_policy": dict(manifest.tool_policy),
        "output_format": manifest.effective_output_format,
        "output_schema": schema,
        "schema_path": schema_path,
        "template_path": template_path,
        "template_text": template_text,
        "variables": manifest.variables,
        "required_variables": rendering.required_variables(system_source(template_text, manifest.safety_instructions)),
        "retrieval": manifest.retrieval,
        "memory": manifest.memory,
        "safety_instructions": list(manifest.safety_instructions),
        "post_processing": list(manifest.post_processing),
        "release_policy": manifest.release_policy,
        "golden_set": manifest.golden_set,
        "rollback_to": manifest.rollback_to,
        "change_reason": manifest.change_reason,
        "reviewer": manifest.reviewer,
        "links": manifest.links,
        "expected_behaviour_change": manifest.expected_behaviour_change,
        "gate": manifest.gate,
        "metadata": manifest.metadata,
        "manifest_path": manifest_file,
        "rubric": manifest.rubric,
    }
    content = package_content(fields)
    fields["package_hash"] = content_hash(content)
    fields["field_hashes"] = {name: content_hash(content[name]) for name in HASHED_FIELDS}
    return PromptPackage(**fields)


def default_manifest_path(prompt_id: str, version: str) -> str:
    return manifest_path(prompt_id, version)

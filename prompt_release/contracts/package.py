"""The contract of the prompt package an output was produced under.

Mining needs, per trace, the contract of the package that produced it
(output format and schema, tools, tool policy). The registry's `PromptPackage`
satisfies `PackageContract`; `Registry.contracts()` lists every version in a
registry. `StaticContract` is a plain stand-in for callers that build
contracts by hand (tests, benchmarks, analysts replaying a package file).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prompt_release.contracts.checks import PackageContract

__all__ = ["PackageContract", "StaticContract", "ToolSpecLike", "index_contracts"]


@dataclass(frozen=True)
class ToolSpecLike:
    name: str
    parameters: dict
    risk: str = "low"
    description: str = ""


@dataclass(frozen=True)
class StaticContract:
    """A hand-built package contract (same attribute names as the registry's PromptPackage)."""

    version_id: str
    package_hash: str
    output_format: str = "text"
    output_schema: dict | None = None
    tools: tuple[Any, ...] = ()
    tool_policy: Any = field(default=None)
    post_processing: tuple[Any, ...] = ()  # rules {kind, value}, as a manifest's post_processing

    @property
    def prompt_id(self) -> str:
        return self.version_id.split(":", 1)[0]


def index_contracts(
    contracts: Mapping[str, PackageContract] | list[PackageContract] | None,
) -> dict[str, PackageContract]:
    """Index contracts by version id and by package hash (a trace may carry either)."""
    out: dict[str, PackageContract] = {}
    items = contracts.values() if isinstance(contracts, Mapping) else (contracts or [])
    for contract in items:
        out[contract.version_id] = contract
        if contract.package_hash:
            out[contract.package_hash] = contract
    return out

"""The runtime contract of a prompt: what the production service that serves it
supplies and exposes, in `prompts/<id>/runtime.yaml`.

A prompt package is only releasable if the service can run it: every template
placeholder must be a variable the service supplies, every tool the package may
call must be one the service exposes, the package's output format must be what
the service's parser reads, and parsed answers must satisfy the schema the
downstream consumer validates (`downstream_schema`, optional). The file belongs
to the service owners, not to a prompt version, so it is not part of any
package hash; the staging check compares each candidate against it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from prompt_release.errors import UserError
from prompt_release.registry.ids import check_prompt_id
from prompt_release.registry.safe_yaml import load_model


class RuntimeContract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    supplies_variables: list[str] = Field(default_factory=list)
    exposes_tools: list[str] = Field(default_factory=list)
    parser: Literal["json", "text"] = "text"
    downstream_schema: str | None = None


def contract_path(registry_root: str | Path, prompt_id: str) -> Path:
    return Path(registry_root) / "prompts" / check_prompt_id(prompt_id) / "runtime.yaml"


def load_runtime_contract(registry_root: str | Path, prompt_id: str) -> RuntimeContract:
    path = contract_path(registry_root, prompt_id)
    if not path.is_file():
        raise UserError(
            f"no runtime contract for {prompt_id}: write {path} (supplies_variables, exposes_tools, parser)",
            file=path,
        )
    return load_model(
        path.read_text(encoding="utf-8"), RuntimeContract, file=path, kind="a runtime contract", empty_ok=True
    )


def downstream_schema(registry_root: str | Path, contract: RuntimeContract) -> dict[str, Any] | None:
    if not contract.downstream_schema:
        return None
    root = Path(registry_root).resolve()
    path = (root / contract.downstream_schema).resolve()
    if root not in path.parents:
        raise UserError("downstream_schema must be a path inside the registry root", field="downstream_schema")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read downstream schema: {exc}", file=path, field="downstream_schema") from None

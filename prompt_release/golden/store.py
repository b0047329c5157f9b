"""Golden dataset files: versions written once, label files, incident files.

Layout under `<registry root>/datasets/`: `golden/<dataset>/v<N>.jsonl` (one
case per line, canonical JSON, sorted by case id) and `v<N>.manifest.json`
(written last: a version exists once its manifest does); `labels/<dataset>.jsonl`
(reviewers' expectations by case id); `proposals/<dataset>.jsonl` (expectations a
model proposed, and their rejections: never applied to a version); `incidents/<workflow>.jsonl` (spans
promoted to regression cases, appended). A version file is never rewritten:
writing identical bytes again is a no-op, different bytes are refused, and
reading checks the cases file against the sha256 in its manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from prompt_release.errors import UserError
from prompt_release.golden.model import Expected, GoldenCase, Manifest, case_line, parse_case_line

_VERSION_FILE = re.compile(r"^v([1-9][0-9]*)\.manifest\.json$")


def datasets_dir(root: str | Path) -> Path:
    return Path(root) / "datasets"


def dataset_dir(root: str | Path, dataset: str) -> Path:
    return datasets_dir(root) / "golden" / dataset


def cases_path(root: str | Path, dataset: str, version: int) -> Path:
    return dataset_dir(root, dataset) / f"v{version}.jsonl"


def manifest_path(root: str | Path, dataset: str, version: int) -> Path:
    return dataset_dir(root, dataset) / f"v{version}.manifest.json"


def labels_path(root: str | Path, dataset: str) -> Path:
    return datasets_dir(root) / "labels" / f"{dataset}.jsonl"


def proposals_path(root: str | Path, dataset: str) -> Path:
    return datasets_dir(root) / "proposals" / f"{dataset}.jsonl"


def incidents_path(root: str | Path, workflow: str) -> Path:
    return datasets_dir(root) / "incidents" / f"{workflow}.jsonl"


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_once(path: Path, data: bytes) -> bool:
    """Create `path` with `data`; True if written, False if identical bytes were already there.

    Refuses (UserError) to replace a file with different content. The write is
    atomic: a temp file in the same folder, then a hard link that fails if the
    name already exists, so a concurrent writer cannot be overwritten either.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        if path.read_bytes() == data:
            return False
        raise UserError("refusing to rewrite an existing golden dataset file with different content", file=path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            if path.read_bytes() != data:
                raise UserError("refusing to rewrite an existing golden dataset file", file=path) from None
            return False
    finally:
        os.unlink(tmp)
    return True


def list_datasets(root: str | Path) -> list[str]:
    base = datasets_dir(root) / "golden"
    return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.exists() else []


def versions(root: str | Path, dataset: str) -> list[int]:
    folder = dataset_dir(root, dataset)
    if not folder.exists():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _VERSION_FILE.match(p.name)))


def read_manifest(root: str | Path, dataset: str, version: int) -> Manifest:
    path = manifest_path(root, dataset, version)
    if not path.exists():
        raise UserError(f"no golden dataset version {dataset}:v{version}", file=path)
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise UserError(f"not a golden manifest: {exc.errors()[0]['msg']}", file=path) from exc


def read_version(root: str | Path, dataset: str, version: int) -> tuple[Manifest, list[GoldenCase]]:
    """A version's manifest and cases, after checking the cases file is unchanged."""
    manifest = read_manifest(root, dataset, version)
    path = cases_path(root, dataset, version)
    if not path.exists():
        raise UserError("golden cases file is missing", file=path)
    data = path.read_bytes()
    if sha256_bytes(data) != manifest.cases_sha256:
        raise UserError(
            "golden cases file was edited after it was written (sha256 differs from its manifest)", file=path
        )
    return manifest, list(_parse_cases(data, manifest.cases_sha256, str(path)))


@lru_cache(maxsize=32)
def _parse_cases(data: bytes, sha256: str, path: str) -> tuple[GoldenCase, ...]:
    # Version files are written once and checked against their manifest's
    # sha256 before parsing, so the parse of the same content can be reused
    # within a process (several candidates of a workflow, gate after backtest).
    lines = data.decode("utf-8").splitlines()
    return tuple(parse_case_line(line, path, i) for i, line in enumerate(lines, 1) if line.strip())


def verify_unchanged(root: str | Path, dataset: str) -> list[str]:
    """Problems with existing version files (edited, missing); empty when all are intact."""
    problems = []
    for version in versions(root, dataset):
        try:
            read_version(root, dataset, version)
        except UserError as exc:
            problems.append(str(exc))
    return problems


def write_version(root: str | Path, manifest: Manifest, cases_bytes: bytes) -> None:
    write_once(cases_path(root, manifest.dataset, manifest.version), cases_bytes)
    write_once(
        manifest_path(root, manifest.dataset, manifest.version),
        (json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True) + "\n").encode(),
    )


def cases_bytes(cases: list[GoldenCase]) -> bytes:
    return "".join(case_line(c) + "\n" for c in sorted(cases, key=lambda c: c.case_id)).encode("utf-8")


def jsonl_records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if not path.exists():
        return []
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise UserError(f"not JSON: {exc}", file=path, line=number) from exc
        if not isinstance(record, dict):
            raise UserError("expected a JSON object", file=path, line=number)
        out.append((number, record))
    return out


def read_labels(root: str | Path, dataset: str) -> dict[str, Expected]:
    """`{case_id: Expected}` from the label file; a later line for the same case wins."""
    path = labels_path(root, dataset)
    labels: dict[str, Expected] = {}
    for number, record in jsonl_records(path):
        case_id = record.get("case_id")
        expected = record.get("expected")
        if not isinstance(case_id, str) or not isinstance(expected, dict):
            raise UserError(
                'a label line is {"case_id": ..., "expected": {"kind": ..., "value": ...}}', file=path, line=number
            )
        try:
            labels[case_id] = Expected.model_validate({**expected, "source": "label_file"})
        except ValidationError as exc:
            raise UserError(exc.errors()[0]["msg"], file=path, line=number, field="expected") from exc
    return labels


def read_incidents(root: str | Path, workflow: str) -> list[tuple[int, dict[str, Any]]]:
    return jsonl_records(incidents_path(root, workflow))


def append_incident(root: str | Path, workflow: str, record: dict[str, Any]) -> Path:
    path = incidents_path(root, workflow)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {**record, "recorded_at": datetime.now(UTC).isoformat(timespec="seconds")}
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
    return path

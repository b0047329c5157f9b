"""Where registry content lives, behind a small interface.

`RegistryStore` is everything the registry reads and writes: manifests and the
files they name, the lock file, each prompt's labels and its append-only
audit trail. `FilesystemStore` keeps them as git-friendly files under the
registry root (atomic writes via a temporary file and `os.replace`, one JSON
object per audit line); an object store or HTTP registry can implement the
same protocol later without changing callers.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from prompt_release.errors import UserError
from prompt_release.registry.ids import check_prompt_id, parse_semver

LOCK_FILE = "prompts/registry.lock.json"


class RegistryStore(Protocol):
    root: Path

    def read_text(self, rel_path: str) -> str: ...
    def exists(self, rel_path: str) -> bool: ...
    def write_text(self, rel_path: str, text: str) -> None: ...
    def prompt_ids(self) -> list[str]: ...
    def manifest_versions(self, prompt_id: str) -> list[str]: ...
    def read_lock(self) -> dict[str, Any]: ...
    def write_lock(self, lock: dict[str, Any]) -> None: ...
    def read_labels(self, prompt_id: str) -> dict[str, Any]: ...
    def write_labels(self, prompt_id: str, labels: dict[str, Any]) -> None: ...
    def read_events(self, prompt_id: str) -> list[dict[str, Any]]: ...
    def append_event(self, prompt_id: str, event: dict[str, Any]) -> None: ...
    def exclusive(self) -> contextlib.AbstractContextManager[None]: ...


def manifest_path(prompt_id: str, version: str) -> str:
    return f"prompts/{prompt_id}/v{version}.yaml"


def dump_json(data: Any) -> str:
    """Stable, diff-friendly JSON for files kept in git."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


class FilesystemStore:
    """The registry as files under `root` (normally the project checkout)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self._resolved_root = self.root.resolve()

    def __repr__(self) -> str:
        return f"FilesystemStore({str(self.root)!r})"

    # -- paths ---------------------------------------------------------------
    def path(self, rel_path: str, *, field: str | None = None, file: str | None = None) -> Path:
        """Resolve a registry-relative path; refuse one that escapes the root."""
        pure = PurePosixPath(str(rel_path).replace("\\", "/"))
        resolved = (self._resolved_root / pure).resolve()
        if pure.is_absolute() or not resolved.is_relative_to(self._resolved_root):
            raise UserError(
                f"path {str(rel_path)!r} escapes the registry root {str(self._resolved_root)!r}; "
                "manifest paths must stay inside it (e.g. prompts/..., schemas/...)",
                field=field,
                file=file,
            )
        return resolved

    def read_text(self, rel_path: str) -> str:
        path = self.path(rel_path)
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError(f"file not found: {rel_path} (under registry {self.root})", file=path) from None
        except UnicodeDecodeError as exc:
            raise UserError(f"not UTF-8 text: {exc.reason}", file=path) from None

    def exists(self, rel_path: str) -> bool:
        return self.path(rel_path).is_file()

    def write_text(self, rel_path: str, text: str) -> None:
        atomic_write(self.path(rel_path), text)

    # -- listing -------------------------------------------------------------
    def prompt_ids(self) -> list[str]:
        base = self.root / "prompts"
        if not base.is_dir():
            return []
        ids = []
        for child in sorted(base.iterdir()):
            if child.is_dir() and not child.name.startswith("."):
                try:
                    ids.append(check_prompt_id(child.name))
                except UserError:
                    continue  # not a prompt folder; never guess
        return ids

    def manifest_versions(self, prompt_id: str) -> list[str]:
        folder = self.root / "prompts" / check_prompt_id(prompt_id)
        versions = []
        for path in folder.glob("v*.yaml"):
            try:
                versions.append(str(parse_semver(path.stem[1:])))
            except UserError:
                continue
        return sorted(versions, key=parse_semver)

    # -- lock file -----------------------------------------------------------
    def read_lock(self) -> dict[str, Any]:
        path = self.path(LOCK_FILE)
        if not path.exists():
            return {"format": 1, "packages": {}}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise UserError(f"lock file is not valid JSON: {exc.msg}", file=path, line=exc.lineno) from None

    def write_lock(self, lock: dict[str, Any]) -> None:
        atomic_write(self.path(LOCK_FILE), dump_json(lock))

    # -- labels and audit trail ---------------------------------------------
    def _prompt_file(self, prompt_id: str, name: str) -> Path:
        return self.path(f"prompts/{check_prompt_id(prompt_id)}/{name}")

    def read_labels(self, prompt_id: str) -> dict[str, Any]:
        path = self._prompt_file(prompt_id, "labels.json")
        if not path.exists():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise UserError(f"labels file is not valid JSON: {exc.msg}", file=path, line=exc.lineno) from None
        return checked_labels(data, path)

    def write_labels(self, prompt_id: str, labels: dict[str, Any]) -> None:
        path = self._prompt_file(prompt_id, "labels.json")
        atomic_write(path, dump_json({"prompt_id": prompt_id, "labels": labels}))

    def read_events(self, prompt_id: str) -> list[dict[str, Any]]:
        path = self._prompt_file(prompt_id, "label_events.jsonl")
        if not path.exists():
            return []
        events = []
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise UserError(f"audit line is not valid JSON: {exc.msg}", file=path, line=number) from None
        return events

    def append_event(self, prompt_id: str, event: dict[str, Any]) -> None:
        path = self._prompt_file(prompt_id, "label_events.jsonl")
        path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(event, sort_keys=True, ensure_ascii=False) + "\n"
        # One write of one line in append mode, then fsync: the trail only grows.
        with path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Serialize writers across processes (flock on the prompts/ folder itself,
        so no lock file litters the repository)."""
        folder = self.root / "prompts"
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


_LABEL_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "version_id": ((str,), "a string"),
    "package_hash": ((str,), "a string"),
    "percent": ((int, float, type(None)), "a number or null"),
    "segments": ((dict, type(None)), "an object or null"),
    "moved_at": ((str, type(None)), "a string"),
    "event_id": ((str, type(None)), "a string"),
}


def checked_labels(data: Any, path: Path) -> dict[str, Any]:
    """The `labels` mapping of a parsed labels.json, or one UserError naming the file and
    the field of the wrong shape (a hand edit, a bad merge): never a crash later on."""
    shape = '{"prompt_id": ..., "labels": {"<label>": {"version_id": ..., "package_hash": ...}}}'
    if not isinstance(data, dict):
        raise UserError(f"labels file must be a JSON object {shape}, not {_json_kind(data)}", file=path)
    for key in data:
        if key not in ("prompt_id", "labels"):
            raise UserError(f"unknown field (a label outside 'labels'?); expected {shape}", file=path, field=str(key))
    labels = data.get("labels", {})
    if not isinstance(labels, dict):
        raise UserError(
            f"'labels' must be an object of label -> entry, not {_json_kind(labels)}", file=path, field="labels"
        )
    for label, entry in labels.items():
        if not isinstance(entry, dict):
            raise UserError(
                f"each label must be an object with version_id and package_hash, not {_json_kind(entry)}",
                file=path,
                field=f"labels.{label}",
            )
        for name, (kinds, wording) in _LABEL_FIELDS.items():
            required = name in ("version_id", "package_hash")
            if name not in entry:
                if required:
                    raise UserError("required field is missing", file=path, field=f"labels.{label}.{name}")
                continue
            if not isinstance(entry[name], kinds) or isinstance(entry[name], bool):
                raise UserError(
                    f"must be {wording}, not {_json_kind(entry[name])}", file=path, field=f"labels.{label}.{name}"
                )
    return labels


def _json_kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and `os.replace`: readers see
    the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise

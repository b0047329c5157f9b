"""Mirror the registry into the warehouse: `prompt_versions` and `label_events`.

`prompt_versions` is replaced for the prompts the registry holds (the files
are the truth); `label_events` only grows, each event inserted once by its id.
One write transaction, so analysts never see half a sync.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

from prompt_release.registry.api import Registry
from prompt_release.registry.ids import parse_semver
from prompt_release.registry.packages import list_versions
from prompt_release.registry.registration import verify
from prompt_release.registry.store import RegistryStore
from prompt_release.warehouse.connection import write_transaction
from prompt_release.warehouse.lake import Scope

_EVENT_COLUMNS = (
    "event_id",
    "prompt_id",
    "ts",
    "action",
    "label",
    "from_version",
    "to_version",
    "package_hash",
    "percent",
    "segments",
    "status",
    "reviewer",
    "actor",
    "reason",
    "gate_report_id",
    "forced",
)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def version_rows(store: RegistryStore) -> list[tuple]:
    packages = list_versions(store)
    checks = {r.version_id: r.ok for r in verify(store)}
    lock = store.read_lock().get("packages", {})
    now = datetime.now(UTC)
    labels: dict[str, list[str]] = {}
    for prompt_id in {p.prompt_id for p in packages}:
        for label, entry in store.read_labels(prompt_id).items():
            labels.setdefault(entry["version_id"], []).append(label)
    rows = []
    for p in packages:
        semver = parse_semver(p.version)
        rows.append(
            (
                p.version_id,
                p.prompt_id,
                p.version,
                semver.major,
                semver.minor,
                semver.patch,
                p.package_hash,
                p.status,
                p.registered,
                checks.get(p.version_id),
                sorted(labels.get(p.version_id, [])),
                p.owner,
                p.reviewer,
                p.model,
                _json(p.parameters),
                p.output_format,
                p.schema_path,
                _json([t.model_dump(mode="json") for t in p.tools]),
                _json({k: v.model_dump(mode="json") for k, v in p.tool_policy.items()}),
                list(p.required_variables),
                _json(p.release_policy.model_dump(mode="json")),
                p.rollback_to,
                p.golden_set,
                p.change_reason,
                p.expected_behaviour_change,
                p.template_text,
                lock.get(p.version_id, {}).get("registered_at"),
                now,
            )
        )
    return rows


def event_rows(store: RegistryStore) -> list[tuple]:
    rows = []
    for prompt_id in store.prompt_ids():
        for event in store.read_events(prompt_id):
            rows.append(
                tuple(
                    _json(event.get(c)) if c == "segments" else bool(event.get(c)) if c == "forced" else event.get(c)
                    for c in _EVENT_COLUMNS
                )
            )
    return rows


def sync_to_warehouse(registry: Registry, warehouse: str | os.PathLike[str] | None = None) -> dict[str, int]:
    """Mirror `registry` into `warehouse`; return row counts."""
    store = registry.store
    versions = version_rows(store)
    events = event_rows(store)
    with write_transaction(warehouse, scope=Scope.of(("prompt_versions", "label_events"))) as con:
        prompt_ids = sorted({row[1] for row in versions})
        if prompt_ids:
            con.execute("DELETE FROM prompt_versions WHERE list_contains(?, prompt_id)", [prompt_ids])
            con.executemany(f"INSERT INTO prompt_versions VALUES ({', '.join('?' * 28)})", versions)
        before = con.execute("SELECT count(*) FROM label_events").fetchone()[0]
        if events:
            con.executemany(
                f"INSERT INTO label_events ({', '.join(_EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(_EVENT_COLUMNS))}) "
                "ON CONFLICT (event_id) DO NOTHING",
                events,
            )
            # Events mirrored before label_events had `forced` read false: say which were forced.
            forced = [row[0] for row in events if row[-1]]
            if forced:
                # a delete and an insert, not an UPDATE: a lake commits the rows a transaction inserted
                # and deleted, and an UPDATE keeps its row's id, so it would never reach the lake
                con.execute(
                    "CREATE OR REPLACE TEMP TABLE pr_forced AS SELECT * REPLACE (true AS forced) FROM label_events "
                    "WHERE list_contains(?, event_id) AND NOT forced",
                    [forced],
                )
                con.execute("DELETE FROM label_events WHERE event_id IN (SELECT event_id FROM pr_forced)")
                con.execute("INSERT INTO label_events SELECT * FROM pr_forced")
                con.execute("DROP TABLE pr_forced")
        after = con.execute("SELECT count(*) FROM label_events").fetchone()[0]
    return {"prompt_versions": len(versions), "label_events": after - before, "label_events_total": after}

"""What the release sensors act on, decided here so that tests reach it without Dagster.

Three questions, each answered from the registry and the warehouse:
which candidates still wait for a release decision (`open_candidates`), which
gate reports are new and what to do with each (`gate_report_actions`), and which
canary decisions to carry out or which live canaries to look at again
(`canary_actions`). Sensors keep a `WatchCursor` between ticks: the newest
timestamp acted on plus the ids seen at exactly that timestamp, so a row
written in the same microsecond as the last one acted on is neither lost nor
repeated.

A sensor without a cursor (switched on for the first time, or its cursor
cleared) starts at now: gate reports and canary decisions written before are
history, already applied or deliberately not, and are never applied again.
To act on older rows, give the sensor a cursor (the UI's "Set cursor", e.g.
`{"ts": null, "seen": []}` for everything), as the demo does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from prompt_release.registry import CANARY, LabelEntry, Registry
from prompt_release.release.promotion import awaiting_approval
from prompt_release.warehouse import read_connection, warehouse_exists

OPEN_STATUSES = ("candidate", "approved")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class WatchCursor(BaseModel):
    """Newest timestamp acted on, and the ids already seen at exactly that timestamp."""

    ts: datetime | None = None
    seen: list[str] = []

    @classmethod
    def parse(cls, raw: str | None) -> WatchCursor | None:
        """A sensor's stored cursor; None (start at now) when empty or unreadable (an older format)."""
        if not raw:
            return None
        try:
            return cls.model_validate_json(raw)
        except ValidationError:
            return None

    @classmethod
    def beginning(cls) -> WatchCursor:
        """An explicit start before every row: act on everything already written."""
        return cls()

    def unseen(self, rows: list[tuple], ts_index: int) -> list[tuple]:
        """Rows (id first) not acted on yet: newer than the cursor, or at its timestamp and unseen."""
        since = self.ts or _EPOCH
        seen = set(self.seen)
        return [r for r in rows if r[ts_index] > since or (r[ts_index] == since and r[0] not in seen)]

    def advanced(self, rows: list[tuple], ts_index: int) -> WatchCursor:
        if not rows:
            return self
        last = max(r[ts_index] for r in rows)
        same = {r[0] for r in rows if r[ts_index] == last}
        if self.ts == last:
            same |= set(self.seen)
        return WatchCursor(ts=last, seen=sorted(same))

    def dump(self) -> str:
        return self.model_dump_json()


def open_candidates(registry: Registry) -> dict[str, str]:
    """version id -> package hash of every version a release decision is still open for."""
    return {p.version_id: p.package_hash for p in registry.list_versions() if p.status in OPEN_STATUSES}


def _table_exists(con, name: str) -> bool:
    return bool(
        con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchone()[0]
    )


@dataclass(frozen=True)
class ReleaseAction:
    """One thing a sensor should start: a promotion of a gate report, a canary decision, a canary look."""

    kind: Literal["apply_gate_report", "roll_forward", "abort", "look_at_canary"]
    key: str  # idempotency key: the same key never starts twice
    candidate: str
    report_id: str | None = None
    verdict: str | None = None
    prompt_id: str | None = None
    decision_id: str | None = None
    resumed_after_approval: bool = False


@dataclass
class WatchResult:
    actions: list[ReleaseAction] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # one line per thing that waits, with why
    cursor: WatchCursor = field(default_factory=WatchCursor)


def gate_report_actions(warehouse: str | Path, registry: Registry, cursor: WatchCursor | None) -> WatchResult:
    """New gate reports to apply (promote or reject; a freeze waits, with its reason), and promotions
    held in staging whose required approval has since arrived. No cursor: start at now."""
    start_now = cursor is None
    cursor = cursor or WatchCursor.beginning()
    result = WatchResult(cursor=cursor)
    rows: list[tuple] = []
    if warehouse_exists(warehouse):
        with read_connection(warehouse) as con:
            if _table_exists(con, "gate_reports"):
                rows = con.execute(
                    "SELECT report_id, verdict, candidate_version, reason, created_at FROM gate_reports "
                    "WHERE created_at >= ? ORDER BY created_at, report_id",
                    [cursor.ts or _EPOCH],
                ).fetchall()
    rows = cursor.unseen(rows, 4)
    for report_id, verdict, candidate, reason, _ in [] if start_now else rows:
        if verdict == "freeze":
            result.waiting.append(f"{candidate} frozen by gate report {report_id}: {reason}")
            continue
        result.actions.append(
            ReleaseAction("apply_gate_report", report_id, candidate, report_id=report_id, verdict=verdict)
        )
    for prompt_id in registry.prompt_ids():
        waiting = awaiting_approval(registry, prompt_id)
        if waiting is None:
            continue
        if waiting.approved:
            result.actions.append(
                ReleaseAction(
                    "apply_gate_report",
                    f"{waiting.report_id}:approved",
                    waiting.candidate,
                    report_id=waiting.report_id,
                    resumed_after_approval=True,
                )
            )
        else:
            result.waiting.append(
                f"{waiting.candidate} is in staging awaiting approval by "
                f"{waiting.reviewer!r} (gate report {waiting.report_id})"
            )
    result.cursor = cursor.advanced(rows, 4)
    return result


def canary_actions(warehouse: str | Path, registry: Registry, cursor: WatchCursor | None) -> WatchResult:
    """Each live canary's newest unseen decision to carry out (a freeze waits), and a new look at
    every live canary whose prompt had traces ingested since its last look. No cursor: decisions
    already written are history (start at now); live canaries are still looked at."""
    start_now = cursor is None
    cursor = cursor or WatchCursor.beginning()
    result = WatchResult(cursor=cursor)
    if not warehouse_exists(warehouse):
        return result
    live: dict[str, LabelEntry] = {}
    for prompt_id in registry.prompt_ids():
        entry = registry.labels(prompt_id).get(CANARY)
        if entry is not None:
            live[prompt_id] = entry
    with read_connection(warehouse) as con:
        rows = (
            con.execute(
                "SELECT decision_id, prompt_id, candidate_version, action, reason, decided_at FROM canary_decisions "
                "WHERE decided_at >= ? ORDER BY decided_at, decision_id",
                [cursor.ts or _EPOCH],
            ).fetchall()
            if _table_exists(con, "canary_decisions")
            else []
        )
        ingested = (
            dict(
                con.execute(
                    "SELECT prompt_id, max(ingested_at) FROM traces WHERE prompt_id IN (SELECT unnest(?)) GROUP BY 1",
                    [sorted(live)],
                ).fetchall()
            )
            if live and _table_exists(con, "traces")
            else {}
        )
    rows = cursor.unseen(rows, 5)
    newest = {} if start_now else {row[1]: row for row in rows}  # rows are in decision order: each prompt's newest wins
    acted: set[str] = set()
    for decision_id, prompt_id, candidate, action, reason, _ in newest.values():
        if prompt_id not in live or live[prompt_id].version_id != candidate:
            continue  # that canary already ended
        if action == "freeze":
            result.waiting.append(f"{prompt_id}: {candidate} canary frozen ({decision_id}): {reason}")
            continue
        result.actions.append(
            ReleaseAction(action, decision_id, candidate, prompt_id=prompt_id, decision_id=decision_id)
        )
        acted.add(candidate)
    for prompt_id, entry in sorted(live.items()):
        last_ingest = ingested.get(prompt_id)
        if entry.version_id in acted or last_ingest is None:
            continue
        result.actions.append(
            ReleaseAction(
                "look_at_canary",
                f"canary_analysis:{prompt_id}:{entry.event_id}:{last_ingest.isoformat()}",
                entry.version_id,
                prompt_id=prompt_id,
            )
        )
    result.cursor = cursor.advanced(rows, 5)
    return result

"""Which landing files arrived (or grew) since the last look: the cursor of the ingest-on-arrival sensor.

The nightly schedule ingests whole days; between nights, files are ingested
as they land, so the canary sees its traffic within minutes. A look lists the
trace files of the newest day folders (today and yesterday, UTC: older days
are the nightly catch-up's), and returns those whose (modification time,
size) is past the cursor, oldest first, at most `max_files` of them (a small
batch), leaving out files modified in the last `settle_s` seconds (a writer
may still be appending). The cursor is the newest modification time handed
out plus the files that carry exactly that time, so a file is handed out again
only when it changed; handing it out twice is harmless anyway, since ingest
deduplicates every row and event.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prompt_release.traces.ingest import SUFFIXES

DEFAULT_MAX_FILES = 50
DEFAULT_SETTLE_S = 1.0


@dataclass(frozen=True)
class ArrivalCursor:
    mtime_ns: int = 0
    at_mtime: tuple[tuple[str, int], ...] = ()  # (path, size) of files whose mtime is mtime_ns

    @classmethod
    def parse(cls, text: str | None) -> ArrivalCursor:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(int(data["mtime_ns"]), tuple((str(p), int(s)) for p, s in data["at_mtime"]))

    def dump(self) -> str:
        return json.dumps({"mtime_ns": self.mtime_ns, "at_mtime": [list(x) for x in self.at_mtime]})


def _candidates(landing: Path, now: datetime) -> list[tuple[int, str, int]]:
    found = []
    for day in (now.date(), (now - timedelta(days=1)).date()):
        folder = landing / day.isoformat()
        if not folder.is_dir():
            continue
        for path in folder.rglob("*"):
            if not path.name.endswith(SUFFIXES):
                continue
            try:
                stat = path.stat()
            except OSError:  # removed meanwhile
                continue
            found.append((stat.st_mtime_ns, str(path.resolve()), stat.st_size))
    return sorted(found)


def new_files(
    landing: str | os.PathLike,
    cursor: ArrivalCursor,
    *,
    now: datetime | None = None,
    max_files: int = DEFAULT_MAX_FILES,
    settle_s: float = DEFAULT_SETTLE_S,
) -> tuple[list[str], ArrivalCursor]:
    """(files to ingest now, the cursor after them); see the module doc."""
    now = now or datetime.now(UTC)
    settled_before = int((now.timestamp() - settle_s) * 1e9)
    seen = set(cursor.at_mtime)
    picked: list[tuple[int, str, int]] = []
    for mtime, path, size in _candidates(Path(landing), now):
        if mtime >= settled_before or mtime < cursor.mtime_ns:
            continue
        if mtime == cursor.mtime_ns and (path, size) in seen:
            continue
        picked.append((mtime, path, size))
        if len(picked) >= max_files:
            break
    if not picked:
        return [], cursor
    newest = picked[-1][0]
    carried = [(p, s) for p, s in cursor.at_mtime] if newest == cursor.mtime_ns else []
    at_newest = tuple(sorted({*carried, *((p, s) for m, p, s in picked if m == newest)}))
    return [p for _, p, _ in picked], ArrivalCursor(newest, at_newest)

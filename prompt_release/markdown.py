"""Markdown tables for Dagster metadata and reports: one renderer, so every table escapes alike."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def _cell(value: Any, width: int) -> str:
    if value is None:
        return "-"
    text = f"{value:.3f}" if isinstance(value, float) else str(value)
    text = text.replace("\n", " ").replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def md_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, max_cell: int = 80, align_right: Sequence[int] = ()
) -> str:
    """A GitHub-flavoured table: None shows as '-', floats with 3 decimals, pipes escaped,
    newlines folded, cells cut at `max_cell` characters; `align_right` lists numeric columns."""
    rule = ["---:" if i in align_right else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(rule) + "|"]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row has {len(row)} cells for {len(headers)} headers: {row!r}")
        lines.append("| " + " | ".join(_cell(v, max_cell) for v in row) + " |")
    return "\n".join(lines)

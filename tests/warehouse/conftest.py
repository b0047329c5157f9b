"""Fixtures shared by the warehouse tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

import pytest

from prompt_release.warehouse import lake as lake_backend


@pytest.fixture
def staged_rows(monkeypatch) -> dict[str, list[int]]:
    """Rows of each table each transaction staged, as the lake loaded them."""
    seen: dict[str, list[int]] = {}
    real = lake_backend._load

    def spy(con, snapshot, spec, partitions):
        staged = real(con, snapshot, spec, partitions)
        seen.setdefault(spec.name, []).append(staged.baseline.num_rows)
        return staged

    monkeypatch.setattr(lake_backend, "_load", spy)
    return seen


def all_at_once(run: Callable, args: Iterable) -> tuple[list, list[BaseException]]:
    """Call `run(arg)` for every arg, each in its own thread, all started together: (results, errors)."""
    results: list = []
    errors: list[BaseException] = []

    def one(arg) -> None:
        try:
            results.append(run(arg))
        except BaseException as exc:  # reported by the caller, with the others
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(arg,)) for arg in args]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return results, errors

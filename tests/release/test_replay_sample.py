"""The same traffic gives the same replay sample and the same log order, whatever ids and threads did."""

from __future__ import annotations

import json
from pathlib import Path

from prompt_release.release.replay import recorded_inputs
from prompt_release.sample.traffic import simulate_traffic
from prompt_release.traces import ingest_paths
from prompt_release.warehouse import read_connection


def _history(folder: Path, ids: str) -> Path:
    """Twelve distinct tickets, each recorded twice, under span ids named by `ids`."""
    lines = []
    for copy in range(2):
        for i in range(12):
            ticket = f"ticket {i}: my invoice is wrong"
            lines.append(
                json.dumps(
                    {
                        "span_id": f"{ids}_{copy}_{i}",
                        "trace_id": f"{ids}_t{copy}_{i}",
                        "workflow": "support_router",
                        "prompt_version": "support_router:v1.5.2",
                        "model": "m",
                        "timestamp": f"2026-11-27T10:00:{copy:02d}Z",
                        "input": {"messages": [{"role": "user", "content": ticket}], "variables": {"ticket": ticket}},
                        "output": '{"route": "billing"}',
                    }
                )
            )
    day = folder / "2026-11-27"
    day.mkdir(parents=True)
    (day / "calls.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_the_replay_sample_is_the_same_inputs_whatever_span_ids_they_were_logged_under(tmp_path) -> None:
    samples = []
    for ids in ("aaaa", "zzzz"):
        warehouse = tmp_path / f"{ids}.duckdb"
        ingest_paths([_history(tmp_path / ids, ids)], warehouse=warehouse)
        samples.append([i.variables["ticket"] for i in recorded_inputs(warehouse, "support_router", limit=5)])
    assert len(samples[0]) == 5 and len(set(samples[0])) == 5
    assert samples[0] == samples[1]


def test_simulated_calls_are_logged_at_their_arrival_in_request_order(
    registry_root, recorded, landing, simulator
) -> None:
    summary = simulate_traffic(
        registry_root,
        "support_router",
        landing=landing,
        base_url=simulator.base_url,
        requests=120,
        warehouse=recorded,
        seed=5,
    )
    ingest_paths([landing / summary.day], warehouse=recorded)
    with read_connection(recorded) as con:
        users = [
            u for (u,) in con.execute("SELECT user_id FROM traces WHERE user_id LIKE 'sim_5_%' ORDER BY ts").fetchall()
        ]
        stamps = con.execute("SELECT count(DISTINCT ts) FROM traces WHERE user_id LIKE 'sim_5_%'").fetchone()[0]
    # sixteen threads finish the calls in any order; the log keeps the order the requests came in
    assert users == [f"sim_5_{i:06d}" for i in range(120)]
    assert stamps == 120

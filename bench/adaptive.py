"""Adaptive vs full gate: calls paid and wrong decisions, simulated and on the demo's candidates.

Part 1 simulates backtests of known effect (a clear reject, a 3-point
regression, an equal candidate, a clear promote) through the real decision
code: the full gate (`decide_paired` on every case) and the adaptive gate
(`gates.adaptive.look` after every batch of the runner's batch size, on to the
spec's labelled minimum of 200, the full gate if the set is exhausted). It prints, per scenario, the share of trials
promoted / rejected / frozen and the mean share of the set each paid for.
Part 2 (`--demo`) runs `prompt-release gate` for each sample candidate on a
fresh world with an empty answer cache, adaptively and then `--full` on
another fresh world, and prints the calls each made and the verdicts.
Candidates that share a baseline (support_router v1.6.0 and v1.7.0 both run
against v1.5.2) share its cached answers, so what one pays depends on what ran
before it in the same world: read the totals as well as the rows.

Run: `python bench/adaptive.py [--trials N] [--seed S] [--demo]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prompt_release.evaluation.backtest import ADAPTIVE_BATCH_CASES  # noqa: E402
from prompt_release.gates.adaptive import look  # noqa: E402
from prompt_release.gates.decision import decide_paired  # noqa: E402
from prompt_release.gates.spec import gate_spec_from_dict  # noqa: E402

N_CASES = 400
# support_router's contract and accuracy gates (prompts/support_router/gates.json), latency left out:
# it has no sequential method and would make every promote wait for the whole set.
SPEC = gate_spec_from_dict({"gates": {"json_valid_rate": ">= 97%", "handoff_accuracy": ">= baseline - 2%"}})
BASELINE_ACCURACY, CHURN = 0.85, 0.03

SCENARIOS = {
    # name: (candidate json_valid rate, accuracy change in points, correct verdicts)
    "clear reject (prose, 20% JSON)": (0.20, 0.0, {"reject"}),
    "3-pt accuracy regression": (1.0, -0.03, {"reject", "freeze"}),
    "equal candidate": (1.0, 0.0, {"promote", "freeze"}),
    "clear promote (+5 pt)": (1.0, 0.05, {"promote", "freeze"}),
}


def simulate(rng: np.random.Generator, json_rate: float, change: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    base_acc = rng.random(N_CASES) < BASELINE_ACCURACY
    # Paired like real candidates: it fixes CHURN of the cases and breaks CHURN - change of them.
    u = rng.random(N_CASES)
    fixes = ~base_acc & (u < CHURN / (1 - BASELINE_ACCURACY))
    breaks = base_acc & (rng.random(N_CASES) < max(0.0, CHURN - change) / BASELINE_ACCURACY)
    cand_acc = (base_acc | fixes) & ~breaks
    cand_json = rng.random(N_CASES) < json_rate
    return {
        "json_valid_rate": (cand_json.astype(float), np.ones(N_CASES)),
        "handoff_accuracy": (cand_acc.astype(float), base_acc.astype(float)),
    }


def adaptive_verdict(paired: dict, ids: list[str]) -> tuple[str, int]:
    """Every simulated case is labelled, so a known verdict stops once handoff_accuracy has read
    the spec's `min_labelled_n`; the runner then answers the missing cases in one batch (`next_batch`)."""
    end = 0
    while end < N_CASES:
        end = min(end + ADAPTIVE_BATCH_CASES, N_CASES)
        cand = pl.DataFrame({"case_id": ids[:end], **{m: c[:end] for m, (c, _) in paired.items()}})
        base = pl.DataFrame({"case_id": ids[:end], **{m: b[:end] for m, (_, b) in paired.items()}})
        current = look(SPEC, cand, base, ids, total_cases=N_CASES, labelled_cases=N_CASES)
        if current.stop and current.verdict_so_far:
            return current.verdict_so_far, end
        if current.verdict_so_far and current.labelled_short:
            end = max(end, max(need for _, _, need in current.labelled_short) - ADAPTIVE_BATCH_CASES)
    return decide_paired(SPEC, paired).verdict, N_CASES


def part_simulated(trials: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ids = [f"c{i:04d}" for i in range(N_CASES)]
    print(f"Simulated backtests: {N_CASES} cases, {trials} trials per scenario, batches of {ADAPTIVE_BATCH_CASES}")
    print(f"{'scenario':<32} {'gate':<9} {'promote':>8} {'reject':>7} {'freeze':>7} {'wrong':>6} {'set paid':>9}")
    for name, (json_rate, change, correct) in SCENARIOS.items():
        counts = {
            "full": {"promote": 0, "reject": 0, "freeze": 0},
            "adaptive": {"promote": 0, "reject": 0, "freeze": 0},
        }
        paid = 0
        for _ in range(trials):
            paired = simulate(rng, json_rate, change)
            counts["full"][decide_paired(SPEC, paired).verdict] += 1
            verdict, used = adaptive_verdict(paired, ids)
            counts["adaptive"][verdict] += 1
            paid += used
        for gate, c in counts.items():
            wrong = sum(v for k, v in c.items() if k not in correct)
            share = paid / trials / N_CASES if gate == "adaptive" else 1.0
            print(
                f"{name:<32} {gate:<9} {c['promote'] / trials:>8.1%} {c['reject'] / trials:>7.1%} "
                f"{c['freeze'] / trials:>7.1%} {wrong / trials:>6.1%} {share:>9.0%}"
            )
    print("wrong = a verdict outside the scenario's correct set (3-pt regression promoted; equal or better rejected)")


def part_demo() -> None:
    from prompt_release.llm.simulator import start_simulator
    from tests.world import build_world

    candidates = ("support_router:v1.7.0", "order_agent:v2.1.0", "support_router:v1.6.0", "summarizer:v1.1.0")
    print("\nThe sample candidates, each on a fresh world with an empty answer cache:")
    print(f"{'candidate':<24} {'adaptive calls':>14} {'full calls':>11}  verdicts (adaptive / full), stop reason")
    totals = {"adaptive": 0, "full": 0}
    with tempfile.TemporaryDirectory() as tmp, start_simulator(port=0) as sim:
        worlds = {mode: build_world(Path(tmp) / mode) for mode in ("adaptive", "full")}
        for candidate in candidates:
            reports = {}
            for mode, world in worlds.items():
                env = {
                    **os.environ,
                    "PROMPT_RELEASE_REGISTRY": str(world.registry),
                    "PROMPT_RELEASE_WAREHOUSE": str(world.warehouse),
                    "OPENAI_BASE_URL": sim.base_url,
                    "PYTHONPATH": str(ROOT),
                }
                args = [sys.executable, "-m", "prompt_release", "gate", "--candidate", candidate, "--json"]
                done = subprocess.run(
                    args + (["--full"] if mode == "full" else []),
                    env=env,
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    timeout=1800,
                )
                reports[mode] = json.loads(done.stdout)
            a, f = reports["adaptive"], reports["full"]
            totals["adaptive"] += a["evidence"]["calls_made"]
            totals["full"] += f["evidence"]["calls_made"]
            print(
                f"{candidate:<24} {a['evidence']['calls_made']:>14} {f['evidence']['calls_made']:>11}  "
                f"{a['verdict']} / {f['verdict']}, {a['evidence']['stop_reason'] or 'ran the whole set'}"
            )
    print(
        f"{'all four':<24} {totals['adaptive']:>14} {totals['full']:>11}  "
        f"adaptive / full = {totals['adaptive'] / totals['full']:.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--demo", action="store_true", help="also run the sample candidates through the CLI")
    args = parser.parse_args()
    part_simulated(args.trials, args.seed)
    if args.demo:
        part_demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())

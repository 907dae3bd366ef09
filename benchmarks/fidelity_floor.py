"""How close each arm of ``scheduler_real.py`` keeps its recorded bests, over many runs.

Reads the ``--json`` output of several ``scheduler_real.py`` runs and prints, for each arm,
how many jobs recorded a best within the goal of its re-measure alone, in how many runs every
job did, and the worst deviation; then how far the reference moved against itself (the same
bests re-measured twice). The sequential arm runs one stage at a time, so nothing shares the
machine with its profiles: what it misses by is the host's, a floor under every other arm.

    python benchmarks/fidelity_floor.py benchmarks/results/scheduler_real/run*.json [--json]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

GOAL = 0.03  # recorded best within 3 % of the same schedule re-measured alone
ARMS = {  # the key in scheduler_real's per-job JSON: what the arm is
    "feed_device": "feed-device (the default; would-be bests timed quietly)",
    "sequential": "sequential (nothing beside any profile)",
    "interleaved": "interleaved",
    "feed_device_inline": "feed-device --retime inline",
    "lending": "interleaved --lend any",
}


def arm_floor(runs: Sequence[Mapping[str, Any]], arm: str, goal: float = GOAL) -> dict:
    """For one arm over ``runs`` (scheduler_real JSON documents): jobs within ``goal``,
    jobs in all, runs with every job within it, and the largest deviation."""
    deviations = [[job[f"{arm}_deviation"] for job in run["jobs"]] for run in runs]
    return {
        "jobs_within": sum(d <= goal for run in deviations for d in run),
        "jobs": sum(len(run) for run in deviations),
        "runs_all_within": sum(all(d <= goal for d in run) for run in deviations),
        "runs": len(deviations),
        "worst": max(max(run) for run in deviations),
    }


def floor(runs: Sequence[Mapping[str, Any]], goal: float = GOAL) -> dict:
    """Every arm's ``arm_floor`` and the reference's movement against itself (per run)."""
    if not runs:
        raise ValueError("no scheduler_real runs to read")
    return {
        "goal": goal,
        "arms": {arm: arm_floor(runs, arm, goal) for arm in ARMS},
        "reference_against_itself": [run["alone_repeat_max_deviation"] for run in runs],
    }


def load_runs(paths: Sequence[Path]) -> list[dict]:
    """The JSON documents of ``scheduler_real.py --json`` runs; a clear error for others."""
    runs = []
    for path in paths:
        try:
            run = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SystemExit(f"{path}: not a scheduler_real.py --json result ({exc})") from exc
        if not isinstance(run, dict) or "jobs" not in run:
            raise SystemExit(f"{path}: not a scheduler_real.py --json result (no 'jobs')")
        runs.append(run)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="scheduler_real.py --json outputs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = floor(load_runs(args.runs))
    if args.json:
        print(json.dumps(result))
        return
    print(f"recorded best within {result['goal']:.0%} of its re-measure alone:")
    for arm, figures in result["arms"].items():
        print(
            f"  {ARMS[arm]:<58} jobs {figures['jobs_within']:>2} of {figures['jobs']}, "
            f"every job in {figures['runs_all_within']} of {figures['runs']} runs, "
            f"worst {figures['worst']:.1%}"
        )
    reference = result["reference_against_itself"]
    print(f"  the reference against itself (worst job): {min(reference):.1%}-{max(reference):.1%}")


if __name__ == "__main__":
    main()

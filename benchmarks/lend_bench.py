"""One model job with and without the idle device lent to client stages, side by side.

For each model, ``tuneloom tune zoo:NAME --trials-per-task N --no-library`` runs with
``--lend off`` (client work on the client core only, the device core kept for profiles) and
with ``--lend any`` (``tune``'s default: the device core takes a select, build or update
whenever no profile waits), each in a fresh process with its own store, the two orders
alternating over ``--rounds``. It prints each run's tuning wall time, the cores' busy time,
the time per stage kind and resource (from the run's store), the model's end-to-end estimate
(each task's best kernel times its calls), and the wall-time ratio lent / off.

    python benchmarks/lend_bench.py [--models resnet] [--trials-per-task 16] [--rounds 1]
        [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collectors.exporters.chrome_trace import stages_of  # noqa: E402
from collectors.stores import open_store  # noqa: E402
from tuneloom.commands.bench import tuneloom_json  # noqa: E402

MODES = ("off", "any")


def tune(model: str, mode: str, trials: int, store: Path) -> dict[str, Any]:
    """One tuning run and what its store says about where the time went."""
    out = tuneloom_json(
        "tune", f"zoo:{model}", "--trials-per-task", str(trials), "--no-library",
        "--lend", mode, "--db", str(store), "--json", cwd=ROOT,
    )  # fmt: skip
    job = out["jobs"][0]
    per_stage: dict[str, float] = defaultdict(float)
    opened = open_store(str(store), read_only=True)
    try:
        for stage in stages_of(opened):
            pool = "device" if stage.resource.startswith("device:") else "client"
            per_stage[f"{stage.stage} on {pool}"] += stage.end - stage.start
    finally:
        opened.close()
    estimate = sum((t.get("best_latency_s") or 0.0) * t.get("weight", 1.0) for t in job["tasks"])
    return {
        "lend": mode,
        "wall_s": out["wall_s"],
        "trials": sum(t["trials"] for t in job["tasks"]),
        "busy_s": {name: r["busy_s"] for name, r in out["resources"].items()},
        "stage_s": dict(sorted(per_stage.items())),
        "estimate_ms": estimate * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet")
    parser.add_argument("--trials-per-task", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    report: dict[str, Any] = {"machine": platform.processor() or platform.machine(), "models": {}}
    with tempfile.TemporaryDirectory(prefix="lend-bench-") as tmp:
        for model in args.models.split(","):
            runs: list[dict[str, Any]] = []
            for round_index in range(args.rounds):
                order = MODES if round_index % 2 == 0 else MODES[::-1]
                for mode in order:
                    store = Path(tmp) / f"{model}-{mode}-{round_index}.db"
                    runs.append(tune(model, mode, args.trials_per_task, store))
            walls = {
                m: statistics.median(r["wall_s"] for r in runs if r["lend"] == m) for m in MODES
            }
            report["models"][model] = {
                "runs": runs,
                "wall_s": walls,
                "lent_over_off": walls["any"] / walls["off"],
            }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for model, result in report["models"].items():
        print(f"{model}: lent / off wall time {result['lent_over_off']:.3f}")
        for run in result["runs"]:
            stages = ", ".join(f"{k} {v:.1f} s" for k, v in run["stage_s"].items())
            print(
                f"  --lend {run['lend']}: {run['wall_s']:.1f} s, {run['trials']} trials, "
                f"estimate {run['estimate_ms']:.3f} ms; {stages}"
            )


if __name__ == "__main__":
    main()

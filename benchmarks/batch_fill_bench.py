"""What spare candidates for a filtered search save and cost: selects, wall and bests.

A task whose search stalled starts a wider one, which must not propose what the first one
measured: the driver drops those, so a batch comes back short (14 or 15 of 16) and the
remainder costs a select of its own at the end, on one client core 30-45 s for the grown
population whatever it proposes. Asked for a quarter of the batch more
(``SearchConfig.spare_share=0.25``, ``settings.search_batch``), such a search refills the
batch instead; by default (``spare_share=0``) it is not.

Runs each case as one job through the engine (``tune``'s defaults: ``feed-device``, the idle
device lent, real TVM on llvm), with the spare and without, the order alternating with the
seed, and prints per case whether and where the search grew, the selects and their batches,
the seconds spent selecting, the wall time and the best recorded latency, with the ratios
spare / none. Whether a search stalls depends on measured times, so the two runs of one
seed can differ in that alone.

    python benchmarks/batch_fill_bench.py [--seeds 0,1] [--case NAME ...] [--json]

Takes about 5 minutes per case and seed on two cores. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Case:
    """One job: its workloads and trials per task."""

    workloads: tuple[str, ...]
    trials_per_task: int
    what: str


CASES = {
    "conv-64": Case(("conv2d:1x16x32x32,16x3x3,pad=1",), 64, "a convolution, 4 batches"),
    "matmul-64": Case(("matmul:192",), 64, "a matmul, 4 batches"),
}
BATCH = 16
TIMING = {"number": 3, "repeat": 3, "min_repeat_ms": 100}


def run_job(case: Case, spare_share: float, seed: int, work: Path) -> dict[str, Any]:
    """One job of ``case`` in a fresh engine; its wall time, selects and bests."""
    from collectors.jobs import JobSpec
    from collectors.sqlite_store import SQLiteStore
    from tuner.engine import Engine, EngineSettings
    from tuner.metaschedule.run import EvalConfig
    from tuner.metaschedule.settings import SearchConfig

    work.mkdir(parents=True)
    store = work / "runs.db"
    settings = EngineSettings(
        runs_dir=work / "runs",
        measure=EvalConfig(**TIMING),
        search=SearchConfig(spare_share=spare_share),
        lend_idle_devices=True,
        lend_wait_s=math.inf,
    )
    spec = JobSpec(
        workloads=case.workloads, trials_per_task=case.trials_per_task, batch=BATCH, seed=seed
    )
    with Engine(settings, store=str(store)) as engine:
        job = engine.submit(spec)
        report = engine.run()
    done = report.job(job)
    stored = SQLiteStore(str(store))
    events = stored.read(kinds=["task"])
    grown = [
        int(line.rsplit("from trial ", 1)[1].split(":")[0])
        for e in events
        for line in (e.event.detail or "").splitlines()
        if line.startswith("search=population") and "from trial " in line
    ]
    stages = stored.stage_intervals()
    selects = stages[(stages["stage"] == "select") & (stages["status"] == "ok")]
    return {
        "wall_s": report.wall_s,
        "selects": len(selects),
        "select_s": float((selects["end"] - selects["start"]).sum()),
        "batches": [int(n) for n in selects["candidates"]],
        "trials": sum(t.trials for t in done.tasks),
        "grown_at": grown[0] if grown else None,
        "best_us": {t.name: t.best_latency_s * 1e6 for t in done.tasks if t.best_latency_s},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds (default 0,1)")
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="(default: all)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="batch-fill-") as tmp:
        for name in args.case or list(CASES):
            case = CASES[name]
            for seed in seeds:
                arms = {}
                order = [("spare", 0.25), ("none", 0.0)]
                for label, share in order if seed % 2 == 0 else order[::-1]:  # alternating
                    arms[label] = run_job(case, share, seed, Path(tmp) / f"{name}-{seed}-{label}")
                spare, none = arms["spare"], arms["none"]
                results.append({
                    "case": name,
                    "workloads": list(case.workloads),
                    "trials_per_task": case.trials_per_task,
                    "seed": seed,
                    "spare": spare,
                    "none": none,
                    "wall_ratio": spare["wall_s"] / none["wall_s"],
                    "select_time_ratio": spare["select_s"] / none["select_s"],
                    "best_ratio": {
                        task: best / none["best_us"][task]
                        for task, best in spare["best_us"].items()
                        if task in none["best_us"]
                    },
                })  # fmt: skip
    if args.json:
        print(json.dumps({"batch": BATCH, "timing": TIMING, "runs": results}, indent=2))
        return
    for r in results:
        print(f"{r['case']} (seed {r['seed']}: {CASES[r['case']].what})")
        for label in ("spare", "none"):
            arm = r[label]
            bests = ", ".join(f"{v:.1f}" for v in arm["best_us"].values())
            grew = "never" if arm["grown_at"] is None else f"at trial {arm['grown_at']}"
            print(
                f"  {label:5s}: grew {grew}, {arm['selects']} selects {arm['batches']}, "
                f"{arm['select_s']:.1f} s selecting, {arm['trials']} trials, "
                f"wall {arm['wall_s']:.1f} s, best {bests} us"
            )
        bests = ", ".join(f"{v:.3f}" for v in r["best_ratio"].values())
        print(
            f"  spare / none: wall {r['wall_ratio']:.3f}, "
            f"select time {r['select_time_ratio']:.3f}, best {bests}"
        )


if __name__ == "__main__":
    main()

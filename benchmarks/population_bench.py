"""The evolutionary search's population on one client core: tuning time against model speed.

MetaSchedule's default population (512 candidates evolved for 4 generations per select) is
sized for many cores; on one client core every select pays for all of it. For each population
and seed this runs ``tuneloom tune zoo:M --population P --seed S`` in a fresh process, either
with the same trials (``--trials T``: compare wall time) or the same wall time
(``--time-budget``: compare how fast a model each gets in it), then times every compiled model
in fresh processes, alternating between the runs' models in rounds so they see the same
machine, and the TFLite interpreter beside them once (``tuneloom evaluate``). ``grow`` in
``--populations`` runs ``tune`` without ``--population``: the default, sized to the client
cores and grown to MetaSchedule's 512 for a task whose search stalls.

    python benchmarks/population_bench.py --model cnn --populations 512,128,grow --seeds 0,1 \
        [--trials 256 | --time-budget 240s] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tuneloom.commands.bench import tuneloom_json  # noqa: E402

DEVICE_CORE = 1  # where `tune` profiles on a 2-core machine; the models are timed there too


def tuneloom(*argv: str) -> dict[str, Any]:
    """Run the CLI in a fresh process from the repository; its JSON document."""
    return tuneloom_json(*argv, cwd=ROOT)


GROW = "grow"  # the default population: sized to the client cores, grown once a task stalls


def tune(args: argparse.Namespace, population: str, seed: int, work: Path) -> dict[str, Any]:
    from collectors.stores import open_store

    store = work / f"p{population}-s{seed}.db"
    budget = ["--trials", str(args.trials)] if args.trials else []
    budget += ["--time-budget", args.time_budget] if args.time_budget else []
    tuned = tuneloom(
        "tune", f"zoo:{args.model}", *budget,
        *([] if population == GROW else ["--population", population]),
        "--seed", str(seed), "--batch", str(args.batch), "--db", str(store), "--no-library",
        "--json",
    )  # fmt: skip
    job = tuned["jobs"][0]
    opened = open_store(str(store), read_only=True)
    try:
        stages = opened.stage_intervals()
    finally:
        opened.close()
    selects = stages[(stages["stage"] == "select") & (stages["status"] == "ok")]
    return {
        "population": population,
        "seed": seed,
        "tuning_s": tuned["wall_s"],
        "trials": sum(t["trials"] for t in job["tasks"]),
        "select_median_s": float((selects["end"] - selects["start"]).median()),
        "selects": len(selects),
        "compiled": job["compiled"],
    }


def time_models(rows: list[dict[str, Any]], model: Any, rounds: int) -> None:
    """Each row's compiled model timed ``rounds`` times, alternating; the median goes in."""
    from tuner.models.evaluate import time_saved_models_alternately

    medians = time_saved_models_alternately(
        {str(i): row["compiled"] for i, row in enumerate(rows)},
        model,
        rounds=rounds,
        threads=1,
        cores=[DEVICE_CORE],
        repeat=10,
    )
    for i, row in enumerate(rows):
        row["tvm_tuned_ms"] = medians[str(i)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--populations", default="512,128")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--trials", type=int, help="the same total trials for every run")
    parser.add_argument("--time-budget", help="the same wall time for every run, e.g. 240s")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds per model")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if bool(args.trials) == bool(args.time_budget):
        parser.error("give exactly one of --trials and --time-budget")
    from tuner.models.loaders import load_model

    populations = [p.strip() for p in args.populations.split(",")]
    for p in populations:
        if p != GROW and not (p.isdigit() and int(p) > 0):
            parser.error(f"--populations: {p!r} is neither a positive integer nor {GROW!r}")
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory(prefix="population-bench-") as scratch:
        work = Path(scratch)
        rows = [tune(args, p, s, work) for s in seeds for p in populations]
        model = load_model(f"zoo:{args.model}")
        time_models(rows, model, args.rounds)
        framework = tuneloom(
            "evaluate", f"zoo:{args.model}", "--baseline", "tflite", "--repeat", "10", "--json"
        )["baselines"]["tflite"]
    for row in rows:
        del row["compiled"]
        row["speedup_over_tflite"] = framework / row["tvm_tuned_ms"]
    summary = {}
    for p in populations:
        mine = [r for r in rows if r["population"] == p]
        summary[p] = {
            "tuning_s": statistics.mean(r["tuning_s"] for r in mine),
            "trials": statistics.mean(r["trials"] for r in mine),
            "select_median_s": statistics.mean(r["select_median_s"] for r in mine),
            "tvm_tuned_ms": statistics.mean(r["tvm_tuned_ms"] for r in mine),
        }
    document = {
        "model": args.model,
        "budget": {"trials": args.trials} if args.trials else {"time_budget": args.time_budget},
        "machine": platform.processor() or platform.machine(),
        "tflite_ms": framework,
        "runs": rows,
        "by_population": summary,
    }
    if args.json:
        print(json.dumps(document, indent=2))
        return 0
    print(f"zoo:{args.model}, {document['budget']}, TFLite {framework:.4f} ms")
    print(f"{'population':>10} {'seed':>4} {'tuning s':>9} {'trials':>6} {'select s':>9} "
          f"{'tuned ms':>9} {'vs TFLite':>9}")  # fmt: skip
    for r in rows:
        print(
            f"{r['population']:>10} {r['seed']:>4} {r['tuning_s']:9.1f} {r['trials']:>6} "
            f"{r['select_median_s']:9.2f} {r['tvm_tuned_ms']:9.4f} "
            f"{r['speedup_over_tflite']:8.2f}x"
        )
    base = summary[populations[0]]
    for p in populations[1:]:
        mean = summary[p]
        print(
            f"population {p} / {populations[0]}: tuning time "
            f"{mean['tuning_s'] / base['tuning_s']:.2f}, select "
            f"{mean['select_median_s'] / base['select_median_s']:.2f}, tuned latency "
            f"{mean['tvm_tuned_ms'] / base['tvm_tuned_ms']:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

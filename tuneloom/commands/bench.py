"""`tuneloom bench sweep`: tune and evaluate every combination of listed settings, one CSV
row per run."""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tuneloom.cli import UserError, emit_result
from tuner.policies import DEFAULT_POLICY

DESCRIPTION = """\
Run the cartesian product of the settings a grid file lists and write one CSV row per run.
The grid is TOML or JSON; every key holds one value or a list of values:

    model = ["zoo:cnn", "zoo:mlp"]     # zoo names or model files (required)
    trials = [8, 16]                   # trials per task (required)
    policy = ["interleaved", "sequential"]   # default: tune's (feed-device)
    batch = [8, 16]                    # candidates per tuning iteration
    build_workers = [1, 2]             # build processes per client resource
    population = 64                    # evolutionary search population (default: tune's)
    repeat = 10                        # timing repeats of the final evaluation

Each run tunes the model with `tuneloom tune` in a fresh process (its own store and
databases under --out), then times the tuned model with `tuneloom evaluate` in another.
Columns: the settings, tuning_s (wall time of the tuning), select_mean_s, build_mean_s,
profile_mean_s, update_mean_s (mean stage times from the run's store), trials, tvm_untuned_ms,
tvm_tuned_ms, baseline_ms (the fastest framework), max_abs_error, status and error.
"""

SWEPT = ("model", "trials", "policy", "batch", "build_workers", "population")
EVALUATE_KEYS = ("repeat", "baseline")
DEFAULTS: dict[str, Any] = {
    "policy": DEFAULT_POLICY,
    "batch": 16,
    "build_workers": None,
    "population": None,  # tune's default
    "repeat": 10,
    "baseline": None,
}
STAGES = ("select", "build", "profile", "update")
COLUMNS = (
    "run", *SWEPT, "tuning_s", *(f"{s}_mean_s" for s in STAGES), "trials_measured",
    "tvm_untuned_ms", "tvm_tuned_ms", "baseline_ms", "max_abs_error", "status", "error",
)  # fmt: skip


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="Run benchmark sweeps.")
    bench = parser.add_subparsers(dest="bench_command", metavar="BENCH", required=True)
    sweep = bench.add_parser(
        "sweep",
        help="Tune and evaluate every combination of a grid of settings.",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sweep.add_argument("--grid", required=True, metavar="FILE", help="grid file (TOML or JSON)")
    sweep.add_argument("--out", required=True, metavar="DIR", help="folder for the runs")
    sweep.add_argument("--csv", metavar="FILE", help="the results table (default: DIR/sweep.csv)")
    sweep.add_argument("--json", action="store_true", help="print one JSON object")
    sweep.set_defaults(func=run_sweep)


def run_sweep(args: argparse.Namespace) -> int:
    grid = read_grid(Path(args.grid))
    runs = expand_grid(grid)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    table = Path(args.csv) if args.csv else out / "sweep.csv"
    rows = []
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for index, settings in enumerate(runs):
            row = run_one(index, settings, out / f"run-{index:03d}")
            writer.writerow({k: _cell(row.get(k)) for k in COLUMNS})
            handle.flush()
            rows.append(row)
            if not args.json:
                print(_summary(row), file=sys.stderr, flush=True)
    result = {"csv": str(table), "runs": rows}
    emit_result(args, result, f"{len(rows)} run(s) written to {table}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def read_grid(path: Path) -> dict[str, list[Any]]:
    """The grid file as key -> list of values, checked."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"--grid {path}: {exc.strerror or exc}") from None
    try:
        raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if path.suffix == ".json" else "TOML"
        raise UserError(f"--grid {path}: not valid {kind}: {exc}") from None
    if not isinstance(raw, dict):
        raise UserError(f"--grid {path}: expected a table of settings")
    unknown = sorted(set(raw) - set(SWEPT) - set(EVALUATE_KEYS))
    if unknown:
        known = ", ".join((*SWEPT, *EVALUATE_KEYS))
        raise UserError(f"--grid {path}: unknown setting {', '.join(unknown)} (known: {known})")
    grid: dict[str, list[Any]] = {}
    for key, value in raw.items():
        values = value if isinstance(value, list) else [value]
        if not values:
            raise UserError(f"--grid {path}: {key} lists no value")
        grid[key] = values
    for key in ("model", "trials"):
        if key not in grid:
            raise UserError(f"--grid {path}: {key} is required")
    for key in ("trials", "batch", "build_workers", "population", "repeat"):
        for value in grid.get(key, []):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise UserError(f"--grid {path}: {key} values must be positive integers")
    for key in ("model", "policy", "baseline"):
        for value in grid.get(key, []):
            if not isinstance(value, str) or not value:
                raise UserError(f"--grid {path}: {key} values must be text")
    return grid


def expand_grid(grid: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values (defaults filled in), in a stable order."""
    keys = [*SWEPT, *EVALUATE_KEYS]
    choices = [grid.get(key, [DEFAULTS.get(key)]) for key in keys]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*choices)]


def run_one(index: int, settings: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Tune then evaluate one combination in fresh processes; the CSV row."""
    folder.mkdir(parents=True, exist_ok=True)
    row: dict[str, Any] = {"run": index, **{k: settings[k] for k in SWEPT}}
    store = folder / "tune.db"
    tune = [
        "tune", settings["model"], "--trials-per-task", str(settings["trials"]),
        "--policy", settings["policy"], "--batch", str(settings["batch"]),
        "--db", str(store), "--json",
    ]  # fmt: skip
    if settings["population"]:
        tune += ["--population", str(settings["population"])]
    if settings["build_workers"]:
        tune += ["--build-workers", str(settings["build_workers"])]
    started = time.perf_counter()
    tuned, error = run_tuneloom(tune)
    if tuned is None:
        return row | {"tuning_s": time.perf_counter() - started, "status": "failed",
                      "error": f"tune: {error}"}  # fmt: skip
    row["tuning_s"] = tuned["wall_s"]
    row["trials_measured"] = sum(t["trials"] for job in tuned["jobs"] for t in job["tasks"])
    row.update(stage_means(store))
    evaluate = ["evaluate", settings["model"], "--db", str(store), "--json"]
    evaluate += ["--repeat", str(settings["repeat"])]
    if settings["baseline"]:
        evaluate += ["--baseline", settings["baseline"]]
    evaluated, error = run_tuneloom(evaluate)
    if evaluated is None:
        return row | {"status": "failed", "error": f"evaluate: {error}"}
    baselines = evaluated.get("baselines") or {}
    row |= {
        "tvm_untuned_ms": evaluated["tvm_untuned_ms"],
        "tvm_tuned_ms": evaluated.get("tvm_tuned_ms"),
        "baseline_ms": min(baselines.values()) if baselines else None,
        "max_abs_error": evaluated["max_abs_error"],
        "status": "ok" if evaluated["outputs_match"] else "outputs differ",
    }
    return row


def stage_means(store_path: Path) -> dict[str, float | None]:
    """Mean seconds of each stage kind in a run's store."""
    from collectors.stores import open_store

    store = open_store(str(store_path), read_only=True)
    try:
        frame = store.stage_intervals()
    finally:
        store.close()
    means: dict[str, float | None] = {}
    for stage in STAGES:
        rows = frame[frame["stage"] == stage] if len(frame) else frame
        means[f"{stage}_mean_s"] = (
            float((rows["end"] - rows["start"]).mean()) if len(rows) else None
        )
    return means


def run_tuneloom(
    argv: list[str], cwd: str | Path | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """Run ``tuneloom ARGV`` in a fresh process: (its JSON document, None), or (None, the
    last line it printed to stderr). Exit 1 (e.g. outputs that differ) still has a document."""
    from tuner.models.measure import last_json_object, last_line

    done = subprocess.run(
        [sys.executable, "-m", "tuneloom", *argv], capture_output=True, text=True, cwd=cwd
    )
    document = last_json_object(done.stdout)
    if document is not None and done.returncode in (0, 1):
        return document, None
    return None, last_line(done.stderr, f"exit {done.returncode}")


def tuneloom_json(*argv: str, cwd: str | Path | None = None) -> dict[str, Any]:
    """``run_tuneloom`` for scripts: the JSON document, or exit naming why there is none."""
    document, error = run_tuneloom(list(argv), cwd=cwd)
    if document is None:
        raise SystemExit(f"tuneloom {argv[0]} failed: {error}")
    return document


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return "" if value is None else value


def _summary(row: dict[str, Any]) -> str:
    tuned = row.get("tvm_tuned_ms")
    shown = f"tuned {tuned:.3f} ms" if isinstance(tuned, float) else row.get("error", "")
    return f"run {row['run']}: {row['model']} trials={row['trials']} {row['policy']}: {shown}"

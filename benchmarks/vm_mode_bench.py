"""The Relax VM running ``main`` as bytecode vs compiled to native code, on tuned zoo models;
and the tuned kernels with their parallel loops vs without them, on one core.

For each model it runs ``tuneloom tune zoo:NAME --trials T --no-library`` (a fresh process; T
= N trials per searched task), or takes an existing MetaSchedule database (``--database
NAME=DIR``), then compiles the model with that database twice, once per exec mode (the same
kernels; only how the VM calls them differs), and the untuned model twice. With
``--serial`` it also compiles (``compiled``) the database with every ``Parallel``
instruction taken out of its traces: the same schedules, their parallel loops run as plain
loops (what the search for one core now produces; a database tuned before has them). Every
build is timed in fresh processes pinned to one core with one thread, the builds of a model
one after the other in each of ``--rounds`` rounds (median), and their outputs compared.

    python benchmarks/vm_mode_bench.py --models randwire,inception,mlp [--trials 32]
        [--database randwire=DIR] [--serial] [--rounds 7] [--core 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collectors.importers.ms_database import RECORD_FILE, WORKLOAD_FILE  # noqa: E402
from tuneloom.commands.bench import tuneloom_json  # noqa: E402

MODES = ("bytecode", "compiled")
SERIAL = "compiled_serial"


def tuned_database(name: str, trials: int, work: Path) -> tuple[str, float]:
    """Tune ``zoo:NAME`` with ``trials`` per searched task: (its database folder, wall s)."""
    from tuner.metaschedule.targets import target_config
    from tuner.models.tasks import model_tasks

    _, tasks = model_tasks(f"zoo:{name}", target_config("llvm", 1))
    budget = trials * sum(1 for t in tasks if t.searched)
    tuned = tuneloom_json(
        "tune", f"zoo:{name}", "--trials", str(budget), "--db", str(work / f"{name}.db"),
        "--no-library", "--json", cwd=ROOT,
    )  # fmt: skip
    return tuned["jobs"][0]["db_dir"], float(tuned["wall_s"])


def without_parallel_loops(database: str, folder: Path) -> Path:
    """A copy of the MetaSchedule database in ``database`` whose traces have no ``Parallel``
    instruction (the schedules' parallel loops become plain loops)."""
    folder.mkdir(parents=True)
    shutil.copy(Path(database) / WORKLOAD_FILE, folder / WORKLOAD_FILE)
    lines = []
    for line in (Path(database) / RECORD_FILE).read_text().splitlines():
        record = json.loads(line)
        instructions = record[1][0][0]
        record[1][0][0] = [i for i in instructions if i[0] != "Parallel"]
        lines.append(json.dumps(record))
    (folder / RECORD_FILE).write_text("\n".join(lines) + "\n")
    return folder


def compare_modes(
    name: str, database: str | None, work: Path, rounds: int, core: int, *, serial: bool = False
) -> dict[str, Any]:
    """Both exec modes of ``zoo:NAME`` with ``database`` (None: untuned), and with ``serial``
    the database without parallel loops, timed alternately."""
    from tuner.metaschedule.targets import target_config
    from tuner.models.compiled import compile_model, load_compiled, save_compiled
    from tuner.models.evaluate import time_saved_models_alternately
    from tuner.models.loaders import load_model, random_inputs

    target = dict(target_config("llvm", 1))
    model = load_model(f"zoo:{name}")
    variant = "tuned" if database else "untuned"
    builds = {mode: (mode, database) for mode in MODES}
    if serial and database:
        builds[SERIAL] = ("compiled", str(without_parallel_loops(database, work / f"{name}-s")))
    folders = {}
    for build, (mode, db) in builds.items():
        executable = compile_model(model, target, db, exec_mode=mode)
        folders[build] = save_compiled(
            executable, model, target, work / f"{name}-{variant}-{build}",
            database_dir=db, exec_mode=mode,
        )  # fmt: skip
    inputs = random_inputs(model, seed=0)
    outputs = [load_compiled(folder).run(inputs) for folder in folders.values()]
    difference = max(
        float(np.max(np.abs(a - b)))
        for other in outputs[1:]
        for a, b in zip(outputs[0], other, strict=True)
    )
    times = time_saved_models_alternately(
        folders, model, rounds=rounds, threads=1, cores=[core], repeat=5
    )
    row = {
        f"{variant}_bytecode_ms": times["bytecode"],
        f"{variant}_compiled_ms": times["compiled"],
        f"{variant}_bytecode_over_compiled": times["bytecode"] / times["compiled"],
        f"{variant}_max_abs_difference": difference,
    }
    if SERIAL in times:
        row["tuned_compiled_serial_ms"] = times[SERIAL]
        row["tuned_parallel_over_serial"] = times["compiled"] / times[SERIAL]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="randwire,inception,mlp")
    parser.add_argument("--trials", type=int, default=32, help="per searched task")
    parser.add_argument(
        "--database", action="append", default=[], metavar="NAME=DIR",
        help="use this MetaSchedule database for zoo:NAME instead of tuning it",
    )  # fmt: skip
    parser.add_argument(
        "--serial", action="store_true", help="also time the tuned kernels without parallel loops"
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--core", type=int, default=1, help="the core every timing runs on")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    given = dict(item.split("=", 1) for item in args.database)
    rows = []
    with tempfile.TemporaryDirectory(prefix="tuneloom-vm-mode-") as scratch:
        work = Path(scratch)
        for name in [n.strip() for n in args.models.split(",") if n.strip()]:
            row: dict[str, Any] = {"model": name}
            if name in given:
                database, row["database"] = given[name], given[name]
            else:
                database, row["tuning_s"] = tuned_database(name, args.trials, work)
            row |= compare_modes(name, None, work, args.rounds, args.core)
            row |= compare_modes(name, database, work, args.rounds, args.core, serial=args.serial)
            rows.append(row)
    result = {
        "machine": f"{platform.processor() or platform.machine()}",
        "rounds": args.rounds,
        "trials_per_task": args.trials,
        "models": rows,
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"{'model':<10} {'variant':<8} {'bytecode ms':>12} {'compiled ms':>12} {'ratio':>7}")
    for row in rows:
        for variant in ("untuned", "tuned"):
            print(
                f"{row['model']:<10} {variant:<8} {row[f'{variant}_bytecode_ms']:>12.4f} "
                f"{row[f'{variant}_compiled_ms']:>12.4f} "
                f"{row[f'{variant}_bytecode_over_compiled']:>6.3f}x"
            )
        if "tuned_compiled_serial_ms" in row:
            print(
                f"{row['model']:<10} {'serial':<8} {'':>12} "
                f"{row['tuned_compiled_serial_ms']:>12.4f} "
                f"{row['tuned_parallel_over_serial']:>6.3f}x (parallel / serial)"
            )


if __name__ == "__main__":
    main()

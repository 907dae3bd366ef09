"""`tuneloom tune`: tune models and workloads with real TVM MetaSchedule under a policy."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneloom.cli import UserError, emit_result
from tuneloom.commands.library import add_library_option, library_to_join
from tuneloom.commands.options import (
    add_budget_options,
    add_measure_options,
    add_model_options,
    add_policy_option,
    add_reuse_options,
    add_search_options,
    budget_spec_fields,
    check_positive,
    engine_settings,
    model_spec_fields,
    reuse_spec_fields,
)
from tuneloom.progress import TrialsProgress, terminal

if TYPE_CHECKING:
    from tuner.engine import JobReport

DESCRIPTION = """\
Tune models and built-in workloads with TVM MetaSchedule on this machine, several jobs at once
under a scheduling policy. Each MODEL (a zoo name such as zoo:cnn, zoo:mobilenet, zoo:resnet,
zoo:mlp, or a .keras, .tflite or .onnx file or a TensorFlow SavedModel folder) is one job
whose tasks are the model's fused operators; its last stage compiles the model with the job's
database into RUNS_DIR/<job id>/compiled/ (time it with `tuneloom evaluate`). Each --workload
flag is one job too; a flag holding several comma-joined specs is one job of several tasks
(e.g. --workload matmul:128,dense:1x512x256). --trials is each job's whole budget, spread over
its tasks by --allocator (--trials-per-task gives every task the same); the tasks of one job
search side by side, so a lone job keeps both the client and the device busy. Client work
(select, build, update) and profiling run on separate pinned cores; the device's cores also
take client work while no profile waits (--lend; --lend off: never). A candidate that would
become its task's best is timed again with no client work beside it (--retime). With --rpc,
candidates are profiled on the servers a TVM RPC tracker lists under KEY (one device resource
per server). Every stage and measured candidate is stored in the --db store; each job's
MetaSchedule database is written to RUNS_DIR/<job id>/ and, once the job finishes, joins the
schedule library (--library; see `tuneloom library`). With --warm-start LIBRARY, each task
first measures the library's schedules applied to it (as `tuneloom reuse` does) and the search
continues from them. The exit status is 1 when a job did not finish, or a model job's model
did not compile (its tuning records are kept; the output says why).
"""

WORKLOAD_HELP = (
    "a job's workloads: matmul:N | matmul:MxNxK | batch_matmul:BxMxNxK | dense:BxIxO | "
    "conv2d:NxCxHxW,KxRxS[,stride=S][,pad=P]; comma-join specs for one job of several tasks; "
    "repeat the flag for more jobs"
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "tune",
        help="Tune workloads with real TVM under a scheduling policy.",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "models", nargs="*", metavar="MODEL", help="models to tune, one job each (see above)"
    )
    parser.add_argument(
        "--workload", action="append", default=[], metavar="SPEC", help=WORKLOAD_HELP
    )
    add_model_options(parser)
    add_budget_options(parser)
    add_policy_option(parser)
    parser.add_argument(
        "--db", required=True, metavar="PATH", help="store for the run's events (SQLite file)"
    )
    parser.add_argument(
        "--runs-dir",
        metavar="DIR",
        help="where each job's MetaSchedule database goes (default: <db name>-runs beside --db)",
    )
    parser.add_argument(
        "--batch", type=int, default=16, help="candidates per tuning iteration (default 16)"
    )
    parser.add_argument(
        "--population",
        type=int,
        default=None,
        help="evolutionary search population (default: 128 per client core, at most 512, "
        "MetaSchedule's default)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--warm-start",
        metavar="LIBRARY",
        help="start every task from the schedules this library holds for it (see `tuneloom "
        "reuse`); the search continues from them",
    )
    add_reuse_options(parser)
    add_library_option(parser, joins="the finished jobs' databases")
    add_measure_options(parser)
    add_search_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from collectors.jobs import JobSpec
    from tuner.engine import Engine
    from tuner.metaschedule.workloads import parse_job_workloads

    check_positive(args, "batch", "population")
    if not args.models and not args.workload:
        raise UserError("nothing to tune: give a MODEL (e.g. zoo:cnn) or --workload SPEC")
    for text in args.workload:
        parse_job_workloads(text)  # a bad spec fails before anything starts
    common: dict[str, Any] = dict(
        batch=args.batch, population=args.population, seed=args.seed, target=args.target,
        **budget_spec_fields(args),
    )  # fmt: skip
    if args.warm_start:
        common |= reuse_spec_fields(args, args.warm_start, only=False)
    model_fields = model_spec_fields(args)
    specs = [JobSpec(model=m, **model_fields, **common) for m in args.models]
    specs += [JobSpec(workloads=(text,), **common) for text in args.workload]
    db, runs_dir = store_paths(args.db, args.runs_dir)
    settings = engine_settings(args, runs_dir, library_to_join(args))
    new_store = db != ":memory:" and not Path(db).exists()
    new_runs = not runs_dir.exists()
    engine = Engine(settings, store=db)
    try:
        for spec in specs:  # every model is imported before anything runs
            engine.submit(spec)
    except BaseException:
        _discard(engine, Path(db) if new_store else None, runs_dir, new_runs)
        raise
    with engine, TrialsProgress(engine.list, "tune", console=terminal(args.json)):
        report = engine.run()
    result = {**report.as_json(), "db": args.db, "runs_dir": str(runs_dir)}
    emit_result(args, result, _human(result))
    return 0 if all(_succeeded(job) for job in report.jobs) else 1


def _succeeded(job: JobReport) -> bool:
    """Whether a job finished and, for a model job, its model compiled."""
    return job.state == "finished" and job.compile_error is None


def store_paths(db_text: str, runs_dir: str | None) -> tuple[str, Path]:
    """The store path and the runs folder (default: ``<db stem>-runs`` beside the store)."""
    db = Path(db_text)
    if db.is_dir():
        raise UserError(f"--db {db_text} is a directory; give a store file path")
    if runs_dir:
        runs = Path(runs_dir)
    elif db_text == ":memory:":
        raise UserError("--runs-dir is needed with --db :memory:")
    else:
        runs = db.parent / f"{db.stem}-runs"
    if runs.exists() and not runs.is_dir():
        raise UserError(f"--runs-dir {runs} exists and is not a directory")
    return db_text, runs


def _discard(engine: Any, new_store: Path | None, runs_dir: Path, new_runs: bool) -> None:
    """After a submission failed (a bad model): cancel what was submitted, stop the engine,
    and leave no store or runs folder this run created (an existing store says cancelled)."""
    jobs = engine.list()
    for job in jobs:
        engine.cancel(job.id)
    engine.close()
    if new_store is not None:
        for path in (new_store, Path(f"{new_store}-wal"), Path(f"{new_store}-shm")):
            path.unlink(missing_ok=True)
    if new_runs:
        shutil.rmtree(runs_dir, ignore_errors=True)
    for job in jobs:
        shutil.rmtree(runs_dir / job.id, ignore_errors=True)


def _human(tune: dict[str, Any]) -> str:
    lines = [
        f"tuned {len(tune['jobs'])} job(s) in {tune['wall_s']:.1f} s "
        f"(policy {tune['policy']}, start-up {tune['setup_s']:.1f} s, {tune['cpus']})"
    ]
    for job in tune["jobs"]:
        state = job["state"] + (f" ({job['detail']})" if job["detail"] else "")
        lines.append(f"  {job['id']}  {job['name']}  {state}")
        for task in job["tasks"]:
            best = task["best_latency_s"]
            if best is not None:
                shown = f"best {best * 1e6:.2f} us"
            else:
                shown = f"not tuned: {task['stopped']}" if "stopped" in task else "no measurement"
            origin = job.get("reuse", {}).get("tasks", {}).get(task["name"], {})
            if origin.get("best_origin"):
                shown += f"  ({origin['best_origin']})"
            lines.append(f"    {task['name']:<44} {task['trials']:>5} trials  {shown}")
        if "reuse" in job:
            sources = ", ".join(job["reuse"]["sources"]) or "none that fit"
            lines.append(f"    started from library schedules of: {sources}")
        lines.append(f"    database: {job['db_dir']}")
        added = job.get("library")
        if added is not None:
            lines.append(
                f"    library: not added: {added['error']}" if "error" in added
                else f"    library: {added['added']} schedule(s) added"
            )  # fmt: skip
        if "compiled" in job:
            lines.append(f"    compiled model: {job['compiled']}")
        if "compile_error" in job:
            lines.append(f"    not compiled: {job['compile_error']}")
    for name, times in tune["resources"].items():
        total = times["busy_s"] + times["idle_s"]
        share = times["busy_s"] / total if total else 0.0
        lines.append(
            f"  {name:<20} busy {times['busy_s']:8.1f} s  idle {times['idle_s']:8.1f} s  "
            f"({share:.0%} busy)"
        )
    lines.append(f"  events stored in {tune['db']}")
    return "\n".join(lines)

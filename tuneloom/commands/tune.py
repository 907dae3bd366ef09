"""`tuneloom tune`: tune models and workloads with real TVM MetaSchedule under a policy."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneloom.cli import UserError, emit_result
from tuneloom.commands.library import (
    add_library_option,
    library_to_join,
    open_library,
    summary_json,
)

DESCRIPTION = """\
Tune models and built-in workloads with TVM MetaSchedule on this machine, several jobs at
once under a scheduling policy. Each MODEL (a zoo name such as zoo:cnn, zoo:mobilenet,
zoo:resnet, zoo:mlp, or a .keras, .tflite or .onnx file or a TensorFlow SavedModel folder) is
one job whose tasks are the model's fused operators; after tuning, the model is compiled with
the job's database into RUNS_DIR/<job id>/compiled/ (time it with `tuneloom evaluate`). Each
--workload flag is one job too; a flag holding several comma-joined specs is one job of
several tasks (e.g. --workload matmul:128,dense:1x512x256). --trials is the budget of each
task. Client work (select, build, update) and profiling run on separate
pinned cores. With --rpc, candidates are profiled on the servers a TVM RPC tracker lists
under KEY (one device resource per server). Every stage and measured candidate is stored in
the --db store; each job's MetaSchedule database is written to RUNS_DIR/<job id>/ and, once
the job finishes, joins the schedule library (--library; see `tuneloom library`). With
--warm-start LIBRARY, each task first measures the library's schedules applied to it (as
`tuneloom reuse` does) and the search continues from them.
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
    parser.add_argument("--trials", type=int, default=32, help="trials per task (default 32)")
    parser.add_argument(
        "--policy", default="interleaved", help="scheduling policy (default interleaved)"
    )
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
        default=512,
        help="evolutionary search population (default 512, MetaSchedule's)",
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
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def add_reuse_options(parser: argparse.ArgumentParser) -> None:
    """How library schedules are chosen (shared with `reuse`)."""
    parser.add_argument(
        "--reuse-limit",
        type=int,
        default=4,
        metavar="N",
        help="library schedules measured per task at most (default 4)",
    )
    parser.add_argument(
        "--sources",
        metavar="MODELS",
        help="comma-separated library models to draw from (default: chosen automatically by "
        "op-class and shape overlap with the model)",
    )


def add_measure_options(parser: argparse.ArgumentParser) -> None:
    """Target, device and measurement options (shared with `reuse`)."""
    parser.add_argument(
        "--rpc",
        metavar="HOST:PORT:KEY",
        help="profile on the servers registered under KEY at this TVM RPC tracker",
    )
    parser.add_argument(
        "--target",
        default="llvm",
        help='codegen target: llvm (this CPU) or a JSON object like {"kind":"llvm","mcpu":...}',
    )
    parser.add_argument(
        "--build-workers",
        type=int,
        default=None,
        help="build processes per client resource (default: one per client core)",
    )
    parser.add_argument(
        "--build-timeout", type=float, default=30.0, help="seconds per build (default 30)"
    )
    parser.add_argument(
        "--run-timeout", type=float, default=10.0, help="seconds per measurement (default 10)"
    )
    parser.add_argument("--number", type=int, default=3, help="runs per timing repeat (default 3)")
    parser.add_argument("--repeat", type=int, default=1, help="timing repeats (default 1)")
    parser.add_argument(
        "--min-repeat-ms", type=int, default=40, help="minimum ms per repeat (default 40)"
    )
    parser.add_argument(
        "--cooldown-ms", type=int, default=0, help="pause between repeats in ms (default 0)"
    )


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Options that say how to import a model (shared with `evaluate`)."""
    parser.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="NAME:DIMS",
        help="fix a model input's shape, e.g. x:1x3x32x32 (for dynamic dimensions; repeatable)",
    )
    parser.add_argument(
        "--model-batch",
        type=int,
        default=None,
        metavar="N",
        help="batch size for models whose batch dimension is dynamic (default 1)",
    )


def model_settings(args: argparse.Namespace) -> dict[str, Any]:
    """``load_model`` keyword arguments from --input-shape and --model-batch."""
    from tuner.models.inputs import parse_input_shape

    shapes = dict(parse_input_shape(text) for text in args.input_shape)
    if args.model_batch is not None and args.model_batch <= 0:
        raise UserError(f"--model-batch must be a positive integer, got {args.model_batch}")
    settings: dict[str, Any] = {}
    if shapes:
        settings["input_shapes"] = shapes
    if args.model_batch is not None:
        settings["batch_size"] = args.model_batch
    return settings


@dataclass(frozen=True)
class TuneSettings:
    """Everything ``run`` needs, validated before anything starts."""

    jobs: list[tuple[str, list[Any]]]  # (the --workload text, its parsed specs)
    rpc: Any  # RpcPool or None
    rpc_servers: int
    runs_dir: Path
    cores: tuple[int, ...]
    model_settings: dict[str, Any]  # load_model keyword arguments


def run(args: argparse.Namespace) -> int:
    checked = check_settings(args)  # everything is checked before anything starts
    reuse = reuse_settings(args, args.warm_start, only=False) if args.warm_start else None
    library = library_to_join(args)
    result = tune_jobs(args, checked, reuse=reuse, library=library)
    emit_result(args, result, _human(result))
    states = {job["state"] for job in result["jobs"]}
    return 0 if states <= {"finished"} else 1


def reuse_settings(args: argparse.Namespace, folder: str, *, only: bool) -> Any:
    """``ReuseSettings`` from --reuse-limit and --sources, for the library at ``folder``."""
    from tuner.metaschedule_reuse import ReuseSettings

    if args.reuse_limit <= 0:
        raise UserError(f"--reuse-limit must be a positive integer, got {args.reuse_limit}")
    sources = None
    if args.sources:
        sources = tuple(s.strip() for s in args.sources.split(",") if s.strip())
    library = open_library(folder, create=False)
    library.entries()  # a damaged index fails here, before any model is imported
    return ReuseSettings(library, only=only, limit=args.reuse_limit, sources=sources)


def tune_jobs(
    args: argparse.Namespace,
    checked: TuneSettings,
    *,
    reuse: Any = None,
    library: Any = None,
    db_dir_of: Any = None,
    compile_models: bool = True,
) -> dict[str, Any]:
    """Run one job per model and per --workload under the scheduler (``reuse``: every job
    starts from a schedule library), compile the finished model jobs, add the finished jobs'
    databases to ``library``: the result as a JSON-ready dict. ``db_dir_of(job_id)`` places
    a job's database (default ``RUNS_DIR/<job id>``)."""
    from collectors.sink import EventSink
    from collectors.stores import open_store
    from tuner.clock import WallClock
    from tuner.cpus import plan_cpus
    from tuner.metaschedule import (
        LOCAL_POOL,
        MetaScheduleDriver,
        SearchConfig,
        StageWorkers,
        model_tasks,
        target_config,
    )
    from tuner.metaschedule_run import EvalConfig
    from tuner.scheduler import Scheduler
    from tuner.workloads import task_names

    db_dir_of = db_dir_of or (lambda job_id: checked.runs_dir / job_id)
    local_devices = 0 if checked.rpc else 1
    cpu_plan = plan_cpus(checked.cores, devices=local_devices)
    workers = StageWorkers(
        local_devices=local_devices,
        rpc_pools={checked.rpc: checked.rpc_servers} if checked.rpc else None,
        plan=cpu_plan,
        build_timeout_s=args.build_timeout,
        run_timeout_s=args.run_timeout,
        build_workers=args.build_workers,
        evaluator=EvalConfig(
            number=args.number,
            repeat=args.repeat,
            min_repeat_ms=args.min_repeat_ms,
            cooldown_ms=args.cooldown_ms,
        ),
    )
    target = target_config(args.target, workers.device_cores)
    search = SearchConfig(population_size=args.population)
    # Every model is imported and its tasks extracted before anything starts.
    models = [
        (source, *model_tasks(source, target, **checked.model_settings)) for source in args.models
    ]
    device_pool = checked.rpc.pool if checked.rpc else LOCAL_POOL
    drivers: dict[str, MetaScheduleDriver] = {}

    store = open_store(args.db)
    progress = None
    try:
        sink = EventSink(store)

        def driver_for(specs: list[Any], name: str, model: Any = None) -> Any:
            def make(job_id: str) -> MetaScheduleDriver:
                drivers[job_id] = MetaScheduleDriver(
                    job_id,
                    specs,
                    model=model,
                    trials=args.trials,
                    workers=workers,
                    db_dir=db_dir_of(job_id),
                    sink=sink,
                    device_pool=device_pool,
                    target=target,
                    seed=args.seed,
                    batch_size=args.batch,
                    search=search,
                    reuse=reuse,
                    library=library,
                    name=name,
                )
                return drivers[job_id]

            return make

        scheduler = Scheduler(workers.resources, args.policy, clock=WallClock(), sink=sink)
        for source, model, tasks in models:
            tunable = sum(1 for task in tasks if task.untunable is None)
            scheduler.submit_job(
                driver_for(tasks, model.name, model),
                name=model.name,
                target=json.dumps(target, sort_keys=True),
                device_pool=device_pool,
                tasks=[task.name for task in tasks],
                trials_total=max(1, args.trials * tunable),
                model=str(source),
            )
        for text, specs in checked.jobs:
            scheduler.submit_job(
                driver_for(specs, text),
                name=text,
                target=json.dumps(target, sort_keys=True),
                device_pool=device_pool,
                tasks=task_names(specs),
                trials_total=args.trials * len(specs),
            )
        setup_started = time.perf_counter()
        workers.start()
        setup_s = time.perf_counter() - setup_started
        if sys.stderr.isatty():
            progress = _Progress(scheduler)
            progress.start()
        started = time.perf_counter()
        try:
            with _terminate_as_interrupt():
                scheduler.run()
        except KeyboardInterrupt:
            _cancel_all(scheduler)  # the store then says the jobs were cancelled
            raise
        wall_s = time.perf_counter() - started
        compiled = _compile_models(scheduler, drivers, target) if compile_models else {}
    finally:
        if progress is not None:
            progress.stop()
        workers.close()
        store.close()
    result = _result(args, scheduler, drivers, wall_s, setup_s, checked.runs_dir, cpu_plan)
    for job in result["jobs"]:
        job.update(compiled.get(job["id"], {}))
        driver = drivers[job["id"]]
        if driver.reuse is not None:
            job["reuse"] = _reuse_report(driver)
        if driver.library_added is not None:
            added = driver.library_added
            job["library"] = {"error": added} if isinstance(added, str) else summary_json(added)
    if library is not None:
        result["library"] = str(library.folder)
    return result


def _reuse_report(driver: Any) -> dict[str, Any]:
    """Which library models a job drew from and, per task, what came of it."""
    choice = driver.reuse_sources
    report: dict[str, Any] = {"library": str(driver.reuse.library.folder), "tasks": {}}
    if choice is not None:
        report["sources"] = [s.model for s in choice.chosen]
        report["source_scores"] = {s.model: round(s.score, 4) for s in choice.ranked}
        report["covered"] = round(choice.covered, 4)
    else:
        report["sources"] = list(driver.reuse.sources or ())
    for task in driver.reuse_tasks():
        report["tasks"][task.name] = task.as_json()
    return report


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a run like Ctrl-C: jobs marked cancelled, worker processes stopped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _compile_models(
    scheduler: Any, drivers: dict[str, Any], target: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Compile each finished model job with its database into ``<db_dir>/compiled``:
    job id -> ``{"compiled": folder, "compile_s": seconds}`` or ``{"compile_error": why}``."""
    from tuner._base import TunerError
    from tuner.models.compiled import compile_model, save_compiled

    done: dict[str, dict[str, Any]] = {}
    for info in scheduler.list():
        driver = drivers.get(info.id)
        if driver is None or driver.model is None or info.state != "finished":
            continue
        started = time.perf_counter()
        try:
            executable = compile_model(driver.model, target, driver.db_dir)
            folder = save_compiled(
                executable, driver.model, target, driver.db_dir / "compiled",
                database_dir=driver.db_dir,
            )  # fmt: skip
        except TunerError as exc:
            done[info.id] = {"compile_error": str(exc)}
            continue
        done[info.id] = {
            "compiled": str(folder),
            "compile_s": round(time.perf_counter() - started, 3),
        }
    return done


def _cancel_all(scheduler: Any) -> None:
    from tuner._base import TERMINAL_STATES, TunerError

    for info in scheduler.list():
        if info.state not in TERMINAL_STATES:
            with contextlib.suppress(TunerError):
                scheduler.cancel(info.id)


def check_settings(args: argparse.Namespace) -> TuneSettings:
    """Validate every input; raises UserError/TunerError before anything is started."""
    from tuner.cpus import available_cpus
    from tuner.metaschedule import target_config
    from tuner.policies import create_policy
    from tuner.rpc import discover, parse_rpc
    from tuner.workloads import parse_job_workloads

    for option in ("trials", "batch", "population", "number", "repeat", "build_workers"):
        value = getattr(args, option)
        if value is not None and value <= 0:
            flag = option.replace("_", "-")
            raise UserError(f"--{flag} must be a positive integer, got {value}")
    for option in ("build_timeout", "run_timeout"):
        value = getattr(args, option)
        if not value > 0:
            raise UserError(f"--{option.replace('_', '-')} must be positive, got {value}")
    for option in ("min_repeat_ms", "cooldown_ms"):
        if getattr(args, option) < 0:
            raise UserError(f"--{option.replace('_', '-')} must be >= 0")
    if not args.models and not args.workload:
        raise UserError("nothing to tune: give a MODEL (e.g. zoo:cnn) or --workload SPEC")
    settings = model_settings(args)
    jobs = [(text, parse_job_workloads(text)) for text in args.workload]
    create_policy(args.policy)
    target_config(args.target, 1)
    rpc = parse_rpc(args.rpc) if args.rpc else None
    rpc_servers = len(discover(rpc)) if rpc else 0
    db = Path(args.db)
    if db.is_dir():
        raise UserError(f"--db {args.db} is a directory; give a store file path")
    if args.runs_dir:
        runs_dir = Path(args.runs_dir)
    elif args.db == ":memory:":
        raise UserError("--runs-dir is needed with --db :memory:")
    else:
        runs_dir = db.parent / f"{db.stem}-runs"
    if runs_dir.exists() and not runs_dir.is_dir():
        raise UserError(f"--runs-dir {runs_dir} exists and is not a directory")
    return TuneSettings(jobs, rpc, rpc_servers, runs_dir, available_cpus(), settings)


def _result(
    args: argparse.Namespace,
    scheduler: Any,
    drivers: dict[str, Any],
    wall_s: float,
    setup_s: float,
    runs_dir: Path,
    plan: Any,
) -> dict[str, Any]:
    jobs = []
    for info in scheduler.list():
        driver = drivers[info.id]
        jobs.append(
            {
                "id": info.id,
                "name": info.name,
                "state": str(info.state),
                "detail": info.detail,
                **({"model": driver.model.source or driver.model.name} if driver.model else {}),
                "tasks": [
                    {
                        "name": task.name,
                        "best_latency_s": task.best_latency_s,
                        "trials": task.trials,
                        **({"weight": task.weight} if task.weight != 1.0 else {}),
                        **({"stopped": task.error} if task.error else {}),
                    }
                    for task in driver.summary()
                ],
                "db_dir": str(driver.db_dir),
            }
        )
    busy = scheduler.busy_time()
    resources = {
        name: {"busy_s": round(busy[name], 4), "idle_s": round(max(0.0, wall_s - busy[name]), 4)}
        for name in scheduler.resources
    }
    stats = scheduler.stats
    return {
        "wall_s": round(wall_s, 4),
        "setup_s": round(setup_s, 4),
        "policy": args.policy,
        "db": args.db,
        "runs_dir": str(runs_dir),
        "cpus": plan.describe(),
        "jobs": jobs,
        "resources": resources,
        "scheduler": {
            "dispatches": stats.dispatches,
            "per_dispatch_ms": round(stats.per_dispatch_s * 1e3, 4),
            "share_of_wall": stats.decision_s / wall_s if wall_s > 0 else 0.0,
        },
    }


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


class _Progress:
    """A one-line progress bar on stderr (trials measured of the total), for terminals."""

    def __init__(self, scheduler: Any, period_s: float = 0.5) -> None:
        self.scheduler = scheduler
        self.period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tuneloom-progress", daemon=True)
        self._started = time.perf_counter()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            jobs = self.scheduler.list()
            done = sum(j.trials_done for j in jobs)
            total = sum(j.trials_total for j in jobs) or 1
            running = sum(1 for j in jobs if j.state == "running")
            width = 30
            filled = int(width * min(1.0, done / total))
            bar = "#" * filled + "-" * (width - filled)
            elapsed = time.perf_counter() - self._started
            sys.stderr.write(
                f"\rtune [{bar}] {done}/{total} trials  {running} running  {elapsed:6.1f} s"
            )
            sys.stderr.flush()

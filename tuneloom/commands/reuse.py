"""`tuneloom reuse`: a model's tasks scheduled with the library's schedules, no search."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from tuneloom.cli import UserError, emit_result
from tuneloom.commands.evaluate import timing_threads
from tuneloom.commands.library import add_library_option, default_library_path
from tuneloom.commands.options import (
    add_measure_options,
    add_model_options,
    add_reuse_options,
    engine_settings,
    model_settings,
    model_spec_fields,
    reuse_spec_fields,
)

DESCRIPTION = """\
Schedule MODEL with schedules tuned for other models, without searching. For each of the
model's tasks, the library's schedules of the same op class (conv2d, depthwise, dense, ...) for
this target are ranked by shape similarity and applied to the task (trace replay, or
anchor-trace transfer where the fused operators differ); the library models they come from are
chosen automatically unless --sources names them. The schedules that apply, and the untuned
task as the fallback, are built and profiled as one job's stages under the scheduler (stored
in --store and shown on the dashboard's timeline), and committed to the MetaSchedule database
in --db, so compiling with it takes the fastest per task. The model is then compiled and timed
against the untuned model in fresh processes (--no-evaluate skips that).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "reuse",
        help="Schedule a model with the library's schedules of other models (no search).",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help="zoo name or model file (as for tune)")
    add_library_option(parser)
    parser.add_argument(
        "--db",
        required=True,
        metavar="OUT",
        help="folder for the MetaSchedule database of the chosen schedules (created)",
    )
    parser.add_argument(
        "--store",
        metavar="PATH",
        help="store for the run's events (default: OUT/events.sqlite)",
    )
    add_model_options(parser)
    add_reuse_options(parser)
    parser.add_argument(
        "--no-evaluate", action="store_true", help="do not compile and time the model"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads when timing the model (default: the cores tune profiles on)",
    )
    parser.add_argument(
        "--eval-repeat",
        type=int,
        default=10,
        metavar="N",
        help="timing repeats when timing the model (default 10)",
    )
    add_measure_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from collectors.jobs import JobSpec
    from tuner.engine import Engine
    from tuner.metaschedule.library import ScheduleLibrary

    out = Path(args.db)
    if out.exists() and not out.is_dir():
        raise UserError(f"--db {out} exists and is not a folder")
    if out.is_dir() and any(out.glob("database_*.json")):
        raise UserError(f"--db {out} already holds a MetaSchedule database; choose a new folder")
    threads = timing_threads(args.threads)
    if args.eval_repeat <= 0:
        raise UserError(f"--eval-repeat must be a positive integer, got {args.eval_repeat}")
    folder = args.library or str(default_library_path())
    reuse = reuse_spec_fields(args, folder, only=True)
    library = ScheduleLibrary(reuse["warm_start"])
    if not library.entries():
        raise UserError(f"the library {folder} holds no schedule yet; tune a model first")
    spec = JobSpec(model=args.model, target=args.target, **model_spec_fields(args), **reuse)
    settings = engine_settings(args, out, None, compile_models=False)
    store = args.store or str(out / "events.sqlite")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with Engine(settings, store=store) as engine:
        engine.submit(spec, db_dir=out)
        report = engine.run()
    (job,) = report.jobs
    assert job.reuse is not None
    result: dict[str, Any] = {
        "model": args.model,
        "library": folder,
        "db": str(out),
        "store": store,
        "state": job.state,
        "reuse_s": round(report.wall_s, 4),  # the job's stages, as `tune` reports its wall_s
        **_target_note(library, job.reuse),
        "sources": job.reuse["sources"],
        "source_scores": job.reuse.get("source_scores", {}),
        "covered": job.reuse.get("covered"),
        "tasks": job.reuse["tasks"],
    }
    if job.state == "finished" and not args.no_evaluate:
        result["evaluate"] = _evaluate(args, out, threads)
    result["total_s"] = round(time.perf_counter() - started, 3)  # import and timing included
    emit_result(args, result, _human(result))
    return 0 if job.state == "finished" else 1


def _target_note(library: Any, reuse: dict[str, Any]) -> dict[str, Any]:
    """A note when the library holds no schedule for this target at all."""
    if reuse["sources"]:
        return {}
    held = ", ".join(library.targets()) or "nothing"
    return {"note": f"no library schedule fits this model and target (the library holds: {held})"}


def _evaluate(args: argparse.Namespace, out: Path, threads: int) -> dict:
    from tuner.metaschedule.targets import target_config
    from tuner.models.evaluate import evaluate_model
    from tuner.models.loaders import load_model

    settings = model_settings(args)
    model = load_model(args.model, **settings)
    target = target_config(args.target, threads)
    started = time.perf_counter()
    evaluation = evaluate_model(
        model, target, database_dir=out, baselines=[], threads=threads,
        repeat=args.eval_repeat, load_settings=settings, keep_dir=out / "compiled",
    )  # fmt: skip
    timed = evaluation.as_json()
    untuned, reused = timed.get("tvm_untuned_ms"), timed.get("tvm_tuned_ms")
    return {
        "tvm_untuned_ms": untuned,
        "tvm_reused_ms": reused,
        "speedup": round(untuned / reused, 4) if untuned and reused else None,
        "max_abs_error": timed.get("max_abs_error"),
        "outputs_match": timed.get("outputs_match"),
        "threads": threads,
        "evaluate_s": round(time.perf_counter() - started, 3),
        "compiled": str(out / "compiled" / "tuned"),
    }


def _human(result: dict[str, Any]) -> str:
    sources = ", ".join(result["sources"]) or "none"
    lines = [
        f"reused schedules for {result['model']} from {sources} "
        f"in {result['reuse_s']:.1f} s ({result['state']})"
    ]
    if "note" in result:
        lines.append(f"  note: {result['note']}")
    for name, task in result["tasks"].items():
        best = task["best_s"]
        shown = f"{best * 1e6:10.2f} us  {task['best_origin']}" if best else "not measured"
        untuned = task.get("untuned_s")
        if best and untuned:
            shown += f"  ({untuned / best:.2f}x over untuned)"
        lines.append(f"  {name:<48} {shown}")
        if task.get("note"):
            lines.append(f"    {task['note']}")
    evaluation = result.get("evaluate")
    if evaluation:
        lines.append(
            f"  model: untuned {evaluation['tvm_untuned_ms']:.3f} ms, with reused schedules "
            f"{evaluation['tvm_reused_ms']:.3f} ms ({evaluation['speedup']:.2f}x)"
        )
    lines.append(f"  database: {result['db']}   events: {result['store']}")
    return "\n".join(lines)

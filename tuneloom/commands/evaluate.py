"""`tuneloom evaluate`: time a model with TVM (untuned and tuned) and its frameworks."""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tuneloom.cli import UserError, emit_result
from tuneloom.commands.options import add_model_options, model_settings
from tuneloom.progress import StepsProgress, terminal

DESCRIPTION = """\
Compile MODEL (a zoo name such as zoo:cnn, or a .keras, .tflite or .onnx file or a TensorFlow
SavedModel folder) with TVM, without tuning and, with --db, with the tuned schedules, and time
it beside the frameworks that can run it (TensorFlow, the TFLite interpreter, ONNX Runtime).
Every measurement runs in its own fresh process on the same random inputs and thread count
(by default the cores `tune` profiles candidates on, which the target's num-cores matches);
each latency is the median over --repeat repeats. The outputs are compared every time: the
command fails (exit 1) when TVM's output differs from a framework's beyond the tolerance.
--db is a tuneloom store (the best record per workload of every MetaSchedule database its
jobs name is used) or a MetaSchedule database folder.

--profile also runs each TVM build under a per-kernel profiler in a fresh process and prints,
for untuned and tuned, every fused kernel's task, calls per run, time per call and share of
the end-to-end latency, with the kernels' sum beside the end-to-end time and the gap between
them (the VM's own work; negative: the profiler's cost and noise). With --db STORE the profiles are
also appended to the store, to the newest job of MODEL there. For a Keras model with the
tflite baseline, --profile also times each Keras layer alone as a one-layer TFLite model and
puts those times beside the TVM kernels that did the same work (tuned, else untuned): where
TFLite keeps up with the tuned model, layer by layer.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "evaluate",
        help="Time a model: TVM untuned and tuned vs TensorFlow, TFLite, ONNX Runtime.",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help="zoo name or model file")
    parser.add_argument(
        "--db", metavar="PATH", help="tuned schedules: a tuneloom store or a MetaSchedule database"
    )
    parser.add_argument(
        "--baseline",
        metavar="NAMES",
        help="comma-separated frameworks to compare with (default: every one the model has): "
        "tensorflow, tflite, onnxruntime; 'none' for none",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for TVM and every framework (default: the cores `tune` profiles on, "
        "so the kernels run as they were tuned)",
    )
    parser.add_argument("--repeat", type=int, default=10, help="timing repeats (default 10)")
    parser.add_argument(
        "--min-repeat-ms", type=float, default=100.0, help="minimum ms per repeat (default 100)"
    )
    parser.add_argument(
        "--target",
        default="llvm",
        help="codegen target: llvm, cuda (timed on the first GPU) or a JSON object (as for tune)",
    )
    parser.add_argument("--keep", metavar="DIR", help="keep the compiled models in DIR")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-3,
        help="largest output difference allowed, relative to the largest output magnitude",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile each TVM build per kernel (with --db STORE: store the profiles too)",
    )
    add_model_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def timing_threads(requested: int | None) -> int:
    """Threads to time a model with: ``requested`` (--threads), else the cores `tune`
    profiles candidates on, so the kernels run as they were tuned."""
    from tuner.cpus import available_cpus, plan_cpus

    if requested is not None and requested <= 0:
        raise UserError(f"--threads must be a positive integer, got {requested}")
    return requested or len(plan_cpus(available_cpus(), devices=1).devices[0])


def run(args: argparse.Namespace) -> int:
    from tuner.metaschedule.targets import target_config
    from tuner.models._base import BASELINES
    from tuner.models.evaluate import evaluate_model
    from tuner.models.loaders import load_model

    if args.repeat <= 0:
        raise UserError(f"--repeat must be a positive integer, got {args.repeat}")
    threads = timing_threads(args.threads)
    if not args.tolerance > 0:
        raise UserError(f"--tolerance must be positive, got {args.tolerance}")
    baselines = _baselines(args.baseline, BASELINES)
    settings = model_settings(args)
    target = target_config(args.target, threads)
    profile_job = _profile_job(args.db, args.model) if args.profile and args.db else None
    progress = StepsProgress("evaluate", None, console=terminal(args.json))
    with tempfile.TemporaryDirectory(prefix="tuneloom-best-db-") as scratch, progress:
        if args.db:
            progress.doing(f"reading the tuned schedules of {args.db}")
        database = _database(args.db, Path(scratch)) if args.db else None
        progress.doing(f"loading {args.model}")
        model = load_model(args.model, **settings)
        progress.doing(f"compiling and timing {args.model} ({_variants(database, baselines)})")
        evaluation = evaluate_model(
            model,
            target,
            database_dir=database,
            baselines=baselines,
            threads=threads,
            repeat=args.repeat,
            min_repeat_ms=args.min_repeat_ms,
            load_settings=settings,
            keep_dir=args.keep,
            tolerance=args.tolerance,
            profile=args.profile,
            target_label=json.dumps(target, sort_keys=True),
        )
    result = evaluation.as_json()
    result["target"] = target
    if args.db:
        result["db"] = args.db
    if profile_job is not None:
        _store_profiles(args.db, profile_job, evaluation.profiles.values())
        result["profiles_stored"] = {"db": args.db, "job": profile_job}
    emit_result(args, result, _human(result) + _profile_text(result))
    return 0 if evaluation.outputs_match else 1


def _variants(database: Path | None, baselines: list[str] | None) -> str:
    """What evaluate_model times, in words: ``untuned, tuned, onnxruntime``."""
    names = ["untuned"] + (["tuned"] if database else [])
    names += ["baselines"] if baselines is None else baselines
    return ", ".join(names)


def _baselines(text: str | None, known: tuple[str, ...]) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["none"]:
        return []
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise UserError(
            f"--baseline {text!r}: unknown {', '.join(unknown) or 'list'} "
            f"(choose from {', '.join(known)}, or none)"
        )
    return names


def _database(path: str, scratch: Path) -> Path:
    """A MetaSchedule database folder for --db: the folder itself, or for a store the best
    record per workload of every database its jobs name, written into ``scratch``."""
    from collectors.exporters.best_db import databases_in_store, export_best_db
    from collectors.stores import open_store

    given = Path(path)
    if given.is_dir():
        if not (given / "database_tuning_record.json").is_file():
            raise UserError(f"--db {path}: a folder must hold a MetaSchedule database")
        return given
    if not given.is_file():
        raise UserError(f"--db {path}: no such store or database folder")
    store = open_store(path, read_only=True)
    try:
        folders = [d for d in databases_in_store(store) if d.is_dir()]
    finally:
        store.close()
    if not folders:
        raise UserError(f"--db {path}: the store names no MetaSchedule database that exists")
    export_best_db(folders, scratch / "best")
    return scratch / "best"


def _profile_job(path: str, model: str) -> str | None:
    """The newest job of ``model`` in the store at ``path`` (a database folder: None, the
    profiles are only printed); UserError when the store holds none."""
    from collectors.stores import open_store

    if Path(path).is_dir():
        return None
    if not Path(path).is_file():
        raise UserError(f"--db {path}: no such store or database folder")
    store = open_store(path, read_only=True)
    try:
        jobs = store.jobs()
    finally:
        store.close()
    mine = jobs[jobs["model"] == model].sort_values("submitted_ts") if len(jobs) else jobs
    if not len(mine):
        raise UserError(f"--profile --db {path}: the store holds no job of model {model}")
    return str(mine["job"].iloc[-1])


def _store_profiles(path: str, job: str, profiles: Iterable[Any]) -> None:
    from collectors.events import ProfileEvent
    from collectors.sink import EventSink
    from collectors.stores import open_store

    store = open_store(path)
    try:
        sink = EventSink(store)
        for profile in profiles:
            sink.emit(ProfileEvent, job=job, **profile.event_fields())
    finally:
        store.close()


def _profile_text(result: dict[str, Any]) -> str:
    """The per-kernel tables of ``result["profiles"]`` (empty without --profile)."""
    lines: list[str] = []
    for variant, profile in result.get("profiles", {}).items():
        lines += ["", f"  per-kernel profile, TVM {variant} ({profile['runs']} runs)"]
        lines.append(f"    {'kernel':<36} {'task':<32} {'calls':>5} {'ms/call':>9} {'share':>6}")
        for row in profile["kernels"]:
            lines.append(
                f"    {row['name'][:36]:<36} {(row['task'] or '-')[:32]:<32} {row['calls']:>5} "
                f"{row['ms']:9.4f} {row['share']:6.1%}"
            )
        gap = profile["gap_ms"]
        lines.append(
            f"    sum of kernels {profile['kernel_sum_ms']:.3f} ms vs end-to-end "
            f"{profile['end_to_end_ms']:.3f} ms: gap {gap:+.3f} ms "
            f"({(profile['gap_share'] or 0):+.1%}; "
            f"{'the VM between calls' if gap >= 0 else 'the profiler cost, and noise'})"
        )
    lines += _layers_text(result.get("layers"))
    if "profiles_stored" in result:
        stored = result["profiles_stored"]
        lines.append(f"  profiles stored in {stored['db']} for job {stored['job']}")
    return "\n".join(lines)


def _layers_text(layers: dict[str, Any] | None) -> list[str]:
    """TVM's kernels beside the framework's layers (``result["layers"]``), heaviest first."""
    if not layers:
        return []
    framework = layers["framework"]
    lines = [
        "",
        f"  TVM {layers['variant']} kernels beside {framework} layers ({layers['method']})",
        f"    {'layers':<30} {'TVM ms':>8} {framework + ' ms':>10} {framework + '/TVM':>12}",
    ]
    for group in layers["groups"]:
        names = ", ".join(group["layers"]) or "(no layer: " + ", ".join(group["kernels"]) + ")"
        speedup = group["speedup"]
        lines.append(
            f"    {names[:30]:<30} {group['tvm_ms']:8.4f} {group['framework_ms']:10.4f} "
            f"{(f'{speedup:.2f}x' if speedup is not None else '-'):>12}"
        )
    lines.append(
        f"    {framework} layers alone sum to {layers['layer_sum_ms']:.3f} ms; the whole model "
        f"takes {layers['whole_ms']:.3f} ms"
    )
    return lines


def _human(result: dict[str, Any]) -> str:
    lines = [f"{result['model']}  ({result['threads']} threads, median of {result['repeat']})"]
    lines.append(f"  TVM untuned   {result['tvm_untuned_ms']:10.3f} ms")
    if "tvm_tuned_ms" in result:
        lines.append(
            f"  TVM tuned     {result['tvm_tuned_ms']:10.3f} ms  "
            f"({result['speedup_over_untuned']:.2f}x over untuned)"
        )
    for name, ms in result["baselines"].items():
        lines.append(f"  {name:<13} {ms:10.3f} ms")
    verdict = "match" if result["outputs_match"] else "DIFFER"
    lines.append(
        f"  outputs {verdict}: largest difference {result['max_abs_error']:.3g} "
        f"(tolerance {result['tolerance']:.3g})"
    )
    return "\n".join(lines)

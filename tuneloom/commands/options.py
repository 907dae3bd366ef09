"""Option groups the tuning commands share, and their conversion into the engine's settings
and the fields of a ``JobSpec``."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from collectors.jobs import ALLOCATORS
from tuneloom.cli import UserError
from tuner._base import SIBLING_SCOPES
from tuner.policies import DEFAULT_POLICY
from tuner.quiet import RETIME_MODES


def add_budget_options(parser: argparse.ArgumentParser, *, what: str = "each job") -> None:
    """How much each job tunes, and how its budget is spread over its tasks."""
    parser.add_argument(
        "--trials",
        type=int,
        default=None,
        metavar="N",
        help=f"trials for {what} in all, spread over its tasks by --allocator "
        "(default: 32 per task)",
    )
    parser.add_argument(
        "--trials-per-task",
        type=int,
        default=None,
        metavar="N",
        help="trials for every task alike (with --trials: the most one task may take)",
    )
    parser.add_argument(
        "--allocator",
        choices=ALLOCATORS,
        default="gain",
        help="how a job's trials go to its tasks: gain (where the model's estimated latency "
        "falls fastest per second of tuning; tasks that stopped improving and hold little of "
        "it stop early), gradient (MetaSchedule's rule) or uniform (default gain)",
    )
    parser.add_argument(
        "--time-budget",
        type=duration,
        default=None,
        metavar="DURATION",
        help="stop starting new batches after this long (e.g. 90s, 10m, 1h30m; a model job "
        "is then compiled with what it found)",
    )
    parser.add_argument(
        "--target-latency",
        type=float,
        default=None,
        metavar="MS",
        help="model jobs: stop once the model, compiled with what the job found and timed "
        "afresh on the device, runs in this many milliseconds (checked whenever the tasks' "
        "estimate says it may)",
    )


def budget_spec_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The ``JobSpec`` budget fields from --trials, --trials-per-task, --allocator,
    --time-budget and --target-latency."""
    check_positive(args, "trials", "trials_per_task", "target_latency")
    return {
        "trials": args.trials,
        "trials_per_task": args.trials_per_task,
        "allocator": args.allocator,
        "time_budget": args.time_budget,
        "target_latency": args.target_latency,
    }


def duration(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``1h30m`` -> seconds (argparse type: a bad value is an
    error naming the option)."""
    from collectors.jobs import JobSpecError, parse_duration

    try:
        return parse_duration(text)
    except JobSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def lend_wait(text: str) -> float | None:
    """``--lend`` WAIT: a duration, ``any`` (no limit) or ``off`` (None: never lend)."""
    word = text.strip().lower()
    if word == "off":
        return None
    return math.inf if word == "any" else duration(text)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Options that say how to import a model (tune, reuse, evaluate)."""
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
    """``load_model`` keyword arguments (and ``JobSpec`` fields of the same names) from
    --input-shape and --model-batch."""
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


def model_spec_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The ``JobSpec`` fields of a model job from --input-shape and --model-batch."""
    settings = model_settings(args)
    return {
        "input_shapes": settings.get("input_shapes", {}),
        "model_batch": settings.get("batch_size"),
    }


def add_reuse_options(parser: argparse.ArgumentParser) -> None:
    """How library schedules are chosen (tune --warm-start, reuse)."""
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


def reuse_spec_fields(args: argparse.Namespace, folder: str, *, only: bool) -> dict[str, Any]:
    """The ``JobSpec`` fields of a job starting from the library at ``folder``; the library
    is checked here (a damaged index fails before any model is imported)."""
    from tuneloom.commands.library import open_library

    if args.reuse_limit <= 0:
        raise UserError(f"--reuse-limit must be a positive integer, got {args.reuse_limit}")
    sources = None
    if args.sources:
        sources = tuple(s.strip() for s in args.sources.split(",") if s.strip())
    library = open_library(folder, create=False)
    library.entries()
    return {
        "warm_start": str(library.folder),
        "reuse_only": only,
        "reuse_limit": args.reuse_limit,
        "reuse_sources": sources,
    }


def add_policy_option(parser: argparse.ArgumentParser) -> None:
    """``--policy``: the scheduling policy, ``DEFAULT_POLICY`` unless told."""
    parser.add_argument(
        "--policy", default=DEFAULT_POLICY, help=f"scheduling policy (default {DEFAULT_POLICY})"
    )


def add_measure_options(parser: argparse.ArgumentParser) -> None:
    """Target, device and measurement options (tune, reuse)."""
    parser.add_argument(
        "--rpc",
        metavar="HOST:PORT:KEY",
        help="profile on the servers registered under KEY at this TVM RPC tracker",
    )
    parser.add_argument(
        "--ray",
        metavar="auto|HOST:PORT",
        help="build on the nodes of this running Ray cluster (auto: $RAY_ADDRESS or the one "
        "`ray start --head` started here): each node CPU is a client resource client:NODE:i; "
        "select and update stay in this process",
    )
    parser.add_argument(
        "--target",
        default="llvm",
        help="codegen target: llvm (this CPU), cuda (this host's NVIDIA GPUs) or a JSON "
        'object like {"kind":"llvm","mcpu":...} or {"kind":"cuda","arch":"sm_90"}',
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
    parser.add_argument(
        "--number",
        type=int,
        default=3,
        help="runs per timing repeat, at least (default 3; more where a repeat needs them to "
        "last --min-repeat-ms, sized from one probe run)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="timing repeats (default 1)")
    parser.add_argument(
        "--min-repeat-ms", type=int, default=40, help="minimum ms per repeat (default 40)"
    )
    parser.add_argument(
        "--cooldown-ms", type=int, default=0, help="pause between repeats in ms (default 0)"
    )
    parser.add_argument(
        "--lend",
        nargs="?",
        type=lend_wait,
        const=0.0,
        default="any",
        metavar="WAIT",
        help="the device's cores take client stages (select, build, update) while they are "
        "idle and no profile is expected before such a stage would end, or at most WAIT later "
        "(a duration; 'any', the default: whenever no profile waits; 'off': never); profiles "
        "never share them",
    )
    parser.add_argument(
        "--retime",
        choices=RETIME_MODES,
        default="quiet",
        help="how a candidate that would become its task's best is timed again: quiet (the "
        "default: on this machine's cores in a profile of its own, with no client stage "
        "beside it unless waiting for that would let a later batch take the device first; "
        "on a GPU or RPC device in the same profile), inline (in the same profile, "
        "beside whatever runs), off (not at all)",
    )


def add_search_options(parser: argparse.ArgumentParser) -> None:
    """The search options that ``tune`` and ``server`` share (``engine_settings`` reads
    them)."""
    parser.add_argument(
        "--siblings",
        type=int,
        default=None,
        metavar="N",
        help="each batch of a task also measures up to N schedules that other tasks of the "
        "same op class found as their best, applied to it (the search then evolves them too; "
        "default 1; 0: none)",
    )
    parser.add_argument(
        "--siblings-from",
        choices=SIBLING_SCOPES,
        default=None,
        help="whose tasks those schedules come from: all-jobs (the default: every job running "
        "here on the same target, so that models with operators in common help each other) "
        "or job (the job's own tasks: a job's search then does not depend on what else runs)",
    )


def engine_settings(
    args: argparse.Namespace, runs_dir: Path, library: Any, **overrides: Any
) -> Any:
    """``EngineSettings`` from the measurement options (--policy where the command has it);
    every value is checked before anything starts."""
    from tuner.engine import EngineSettings
    from tuner.metaschedule.run import EvalConfig
    from tuner.metaschedule.settings import SearchConfig
    from tuner.metaschedule.targets import target_config

    check_positive(args, "number", "repeat", "build_workers")
    for option in ("build_timeout", "run_timeout"):
        if not getattr(args, option) > 0:
            flag, value = option.replace("_", "-"), getattr(args, option)
            raise UserError(f"--{flag} must be positive, got {value}")
    for option in ("min_repeat_ms", "cooldown_ms"):
        if getattr(args, option) < 0:
            raise UserError(f"--{option.replace('_', '-')} must be >= 0")
    target_config(args.target, 1)  # a bad target fails before anything starts
    if args.ray is not None:  # an unreachable cluster fails before any store is touched
        from tuner.cluster.ray_nodes import check_reachable, resolve_address

        check_reachable(resolve_address(args.ray))
    measure = EvalConfig(
        number=args.number,
        repeat=args.repeat,
        min_repeat_ms=args.min_repeat_ms,
        cooldown_ms=args.cooldown_ms,
    )
    siblings = getattr(args, "siblings", None)
    if siblings is not None and siblings < 0:
        raise UserError(f"--siblings must be 0 or more, got {siblings}")
    search = {"siblings": siblings, "siblings_from": getattr(args, "siblings_from", None)}
    search = {name: value for name, value in search.items() if value is not None}
    if search:
        overrides.setdefault("search", SearchConfig(**search))
    return EngineSettings(
        runs_dir=runs_dir,
        policy=getattr(args, "policy", DEFAULT_POLICY),
        rpc=args.rpc,
        build_workers=args.build_workers,
        build_timeout_s=args.build_timeout,
        run_timeout_s=args.run_timeout,
        measure=measure,
        library=library.folder if library is not None else None,
        lend_idle_devices=args.lend is not None,
        lend_wait_s=args.lend or 0.0,
        target=args.target,
        ray=args.ray,
        retime=args.retime,
        **overrides,
    )


def check_positive(args: argparse.Namespace, *options: str) -> None:
    """UserError naming the first of ``options`` given as zero or less."""
    for option in options:
        value = getattr(args, option)
        if value is not None and not value > 0:
            flag = option.replace("_", "-")
            kind = "integer" if isinstance(value, int) else "number"
            raise UserError(f"--{flag} must be a positive {kind}, got {value}")

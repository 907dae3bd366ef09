"""Time one model in this (fresh) process: a saved TVM model or a framework baseline.

``evaluate`` runs this module as a separate process for every measurement, so no
measurement shares a process with tuning, with another framework's threads, or with a
previous measurement's caches::

    python -m tuner.models.measure tvm DIR --inputs in.npz --outputs out.npz --threads 2 \
        [--cores 1]
    python -m tuner.models.measure baseline NAME --model SOURCE --inputs in.npz ...

It writes the model's outputs to ``--outputs`` (``.npz``, ``output_0``, ``output_1``...) and
prints one JSON object: ``median_ms`` (median over ``--repeat`` repeats of the mean time per
call), ``repeats_ms`` and ``number`` (calls per repeat, grown until a repeat takes at least
``--min-repeat-ms``). TVM models are timed with the VM's ``time_evaluator``; baselines with
the same repeat/number scheme around the framework's Python call. Both run on a thread of
their own (``tuner.threads``), so that the time repeats from process to process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tuner.threads import on_new_thread

WARMUP_CALLS = 3


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tuner.models.measure")
    sub = parser.add_subparsers(dest="what", required=True)
    tvm_parser = sub.add_parser("tvm", help="time a saved TVM model")
    tvm_parser.add_argument("folder")
    base_parser = sub.add_parser("baseline", help="time the model in its framework")
    base_parser.add_argument("name")
    base_parser.add_argument("--model", required=True, help="zoo name or model file")
    base_parser.add_argument("--settings", default="{}", help="load_model keyword arguments")
    for p in (tvm_parser, base_parser):
        p.add_argument("--inputs", required=True, help=".npz of named inputs")
        p.add_argument("--outputs", required=True, help=".npz to write the outputs to")
        p.add_argument("--threads", type=int, required=True)
        p.add_argument("--repeat", type=int, default=10)
        p.add_argument("--min-repeat-ms", type=float, default=100.0)
        p.add_argument("--cores", help="CPU ids to run on, e.g. 1 or 2,3 (default: any)")
    args = parser.parse_args(argv)
    if args.cores:  # before any runtime starts its threads, which inherit the affinity
        os.sched_setaffinity(0, [int(c) for c in args.cores.split(",")])
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    inputs = _read_inputs(args.inputs)
    timer = _time_tvm if args.what == "tvm" else _time_baseline
    try:
        outputs, timing = on_new_thread(lambda: timer(args, inputs))
    except Exception as exc:  # reported to the parent as one line
        print(child_failure(exc))
        return 1
    np.savez(args.outputs, **{f"output_{i}": out for i, out in enumerate(outputs)})
    print(json.dumps(timing))
    return 0


def time_calls(call: Callable[[], Any], *, repeat: int, min_repeat_ms: float) -> dict[str, Any]:
    """Median per-call milliseconds of ``call`` over ``repeat`` repeats of ``number`` calls,
    ``number`` doubled until one repeat lasts ``min_repeat_ms`` (after a few warm-up calls)."""
    for _ in range(WARMUP_CALLS):
        call()
    number = 1
    while True:
        started = time.perf_counter()
        for _ in range(number):
            call()
        elapsed_ms = (time.perf_counter() - started) * 1e3
        if elapsed_ms >= min_repeat_ms or number >= 1 << 20:
            break
        number *= 2
    repeats = [elapsed_ms / number]
    for _ in range(repeat - 1):
        started = time.perf_counter()
        for _ in range(number):
            call()
        repeats.append((time.perf_counter() - started) * 1e3 / number)
    return {"median_ms": statistics.median(repeats), "repeats_ms": repeats, "number": number}


def _time_tvm(args: argparse.Namespace, inputs: dict[str, np.ndarray]) -> tuple[list, dict]:
    from tuner.models.compiled import load_compiled

    model = load_compiled(args.folder)
    arguments = model.arguments(inputs)
    outputs = model.run(inputs)
    evaluator = model.vm.time_evaluator(
        "main",
        model.device,
        number=1,
        repeat=args.repeat,
        min_repeat_ms=int(args.min_repeat_ms),
    )
    evaluator(*arguments)  # warm-up, and it settles ``number`` for the repeats below
    result = evaluator(*arguments)
    repeats = [float(r) * 1e3 for r in result.results]
    return outputs, {"median_ms": statistics.median(repeats), "repeats_ms": repeats}


def _time_baseline(args: argparse.Namespace, inputs: dict[str, np.ndarray]) -> tuple[list, dict]:
    from tuner.models.baselines import configure_tensorflow_threads, open_baseline
    from tuner.models.loaders import load_model

    if args.name == "tensorflow":
        configure_tensorflow_threads(args.threads)
    settings = json.loads(args.settings)
    model = load_model(args.model, **settings)
    run = open_baseline(model, args.name, threads=args.threads)
    outputs = [np.asarray(out) for out in run(inputs)]
    timing = time_calls(lambda: run(inputs), repeat=args.repeat, min_repeat_ms=args.min_repeat_ms)
    return outputs, timing


def child_failure(exc: BaseException) -> str:
    """The JSON line a measuring child prints when it fails: the error's type and last line."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return json.dumps({"error": f"{type(exc).__name__}: {lines[-1] if lines else ''}"})


def run_child(
    model: str,
    what: str,
    argv: Sequence[str],
    *,
    expect: str,
    timeout_s: float,
    threads: int | None = None,
) -> dict[str, Any]:
    """Run a measuring child process (``python -m tuner.models...``) with this checkout first
    on its path and TensorFlow quiet; the JSON object it printed last. ModelError naming
    ``what`` when it runs over ``timeout_s``, fails, or reports no ``expect`` key."""
    from tuner.models._base import ModelError

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if threads is not None:
        env["TVM_NUM_THREADS"] = str(threads)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, env=env, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        raise ModelError(model, f"{what} took over {timeout_s:.0f} s") from None
    report = last_json_object(done.stdout)
    if done.returncode != 0 or report is None or expect not in report:
        why = (report or {}).get("error") or last_line(done.stderr, "no output")
        raise ModelError(model, f"{what} failed: {why}")
    return report


def last_json_object(text: str) -> dict[str, Any] | None:
    """The last line of ``text`` that is a JSON object (what a child process printed as its
    result, after any other output), or None."""
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def last_line(text: str, default: str) -> str:
    """The last non-blank line of ``text`` (e.g. a child's error message), else ``default``."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else default


def _read_inputs(path: str) -> dict[str, np.ndarray]:
    with np.load(Path(path), allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


if __name__ == "__main__":
    sys.exit(main())

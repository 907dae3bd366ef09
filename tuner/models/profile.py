"""Per-kernel profile of a compiled model: each fused kernel's time per call and calls per run,
beside the end-to-end latency, measured in a fresh process on a thread of its own
(``tuner.threads``).

TVM 0.27's Relax VM has no ``profile()``; its instrument hook (``vm.set_instrument``) is
called before and after every packed call the VM makes: fused kernels (PrimFuncs) and VM
builtins (``vm.builtin.alloc_tensor``...). The time between the two calls (the device
synchronised at both) is the call's time. The end-to-end latency is timed without the hook, on a
second VM of the model as it runs (``main`` compiled to native code on a CPU, so the hook
runs a bytecode build of the same kernels: ``compiled.load_compiled(hookable=True)``), with
the VM's ``time_evaluator`` (as ``tuner.models.measure`` does), in rounds alternating with
the hooked runs so both see the same machine load; the gap between it and the kernels' sum
is the VM's own work between calls (argument passing, allocations) and, where the sum
exceeds it, the hook's own cost or noise.

``profile_saved_model`` runs this module as a child process, pinned to given cores (a
device's) with a given thread count::

    python -m tuner.models.profile DIR --inputs in.npz --threads 1 [--cores 1] [--runs 20]

The child prints one JSON object: ``end_to_end_ms`` (median over rounds), ``runs`` (model
runs under the hook, after one warm-up run) and ``kernels`` (``[name, calls, seconds]``
over the runs, in first-call order; seconds = calls x the median per-call time).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tuner.models._base import LoadedModel
from tuner.models.measure import child_failure, run_child
from tuner.threads import on_new_thread

NO_TASK = ""  # what ``ProfileEvent.tasks`` holds for a kernel no task covers
PROFILE_TIMEOUT_S = 600.0
DEFAULT_RUNS = 20  # model runs under the hook, at least
MIN_PROFILE_MS = 200.0  # ... and more runs until they last this long (up to MAX_RUNS)
MAX_RUNS = 1000


@dataclass(frozen=True, slots=True)
class KernelTime:
    """One kernel (or VM builtin): its calls per model run and mean seconds per call."""

    name: str
    task: str
    calls: int
    secs: float

    @property
    def total_secs(self) -> float:
        """Seconds per model run spent in this kernel."""
        return self.secs * self.calls


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """A model's per-kernel profile (``kernels`` in first-call order) and its end-to-end
    latency timed without the profiler."""

    model: str
    variant: str
    end_to_end_secs: float
    kernels: tuple[KernelTime, ...]
    threads: int
    runs: int
    target: str | None = None

    @property
    def kernel_sum_secs(self) -> float:
        """Seconds per run inside the profiled calls (kernels and builtins)."""
        return math.fsum(k.total_secs for k in self.kernels)

    @property
    def gap_secs(self) -> float:
        """End-to-end minus the kernels' sum: the VM's own work (negative: the hook's cost)."""
        return self.end_to_end_secs - self.kernel_sum_secs

    def rows(self) -> list[dict[str, Any]]:
        """One row per kernel, heaviest first: ``name``, ``task``, ``calls``, ``ms`` (per
        call), ``total_ms`` (per run) and ``share`` (of end-to-end)."""
        end = self.end_to_end_secs or math.inf
        ordered = sorted(self.kernels, key=lambda k: -k.total_secs)
        return [
            {
                "name": k.name,
                "task": k.task,
                "calls": k.calls,
                "ms": k.secs * 1e3,
                "total_ms": k.total_secs * 1e3,
                "share": k.total_secs / end,
            }
            for k in ordered
        ]

    def as_json(self) -> dict[str, Any]:
        """The profile as the CLI prints it."""
        return {
            "variant": self.variant,
            "end_to_end_ms": self.end_to_end_secs * 1e3,
            "kernel_sum_ms": self.kernel_sum_secs * 1e3,
            "gap_ms": self.gap_secs * 1e3,
            "gap_share": self.gap_secs / self.end_to_end_secs if self.end_to_end_secs else None,
            "threads": self.threads,
            "runs": self.runs,
            "kernels": self.rows(),
        }

    def event_fields(self) -> dict[str, Any]:
        """Keyword arguments for ``sink.emit(ProfileEvent, job=..., **fields)``."""
        return {
            "model": self.model,
            "variant": self.variant,
            "end_to_end_secs": self.end_to_end_secs,
            "kernels": tuple(k.name for k in self.kernels),
            "tasks": tuple(k.task for k in self.kernels),
            "calls": tuple(k.calls for k in self.kernels),
            "kernel_secs": tuple(k.secs for k in self.kernels),
            "target": self.target,
            "threads": self.threads,
            "detail": f"runs={self.runs}",
        }


def profile_from_report(
    report: Mapping[str, Any],
    *,
    model: str,
    variant: str,
    kernel_tasks: Mapping[str, str],
    threads: int,
    target: str | None = None,
) -> ModelProfile:
    """A ``ModelProfile`` from the child's JSON report; kernels that ``kernel_tasks`` does
    not name (VM builtins, kernels no task covers) get ``NO_TASK``. A kernel called in some
    runs only (none is, for a static model) counts its calls rounded per run."""
    runs = int(report["runs"])
    kernels = []
    for name, calls, secs in report["kernels"]:
        per_call = float(secs) / int(calls) if calls else 0.0
        kernels.append(
            KernelTime(str(name), kernel_tasks.get(name, NO_TASK), round(calls / runs), per_call)
        )
    return ModelProfile(
        model=model,
        variant=variant,
        end_to_end_secs=float(report["end_to_end_ms"]) / 1e3,
        kernels=tuple(kernels),
        threads=threads,
        runs=runs,
        target=target,
    )


def profile_saved_model(
    folder: str | Path,
    model: LoadedModel,
    *,
    variant: str,
    kernel_tasks: Mapping[str, str],
    threads: int,
    cores: Sequence[int] | None = None,
    runs: int = DEFAULT_RUNS,
    repeat: int = 5,
    seed: int = 0,
    target: str | None = None,
) -> ModelProfile:
    """Profile a saved compiled model (``compiled.save_compiled``) in a fresh process, on
    ``model``'s random inputs from ``seed``, pinned to ``cores`` when given."""
    from tuner.models.loaders import random_inputs

    with tempfile.TemporaryDirectory(prefix="tuneloom-profile-") as scratch:
        inputs = Path(scratch) / "inputs.npz"
        np.savez(inputs, **random_inputs(model, seed=seed))
        argv = [
            sys.executable, "-m", "tuner.models.profile", str(folder), "--inputs", str(inputs),
            "--threads", str(threads), "--runs", str(runs), "--repeat", str(repeat),
        ]  # fmt: skip
        if cores:
            argv += ["--cores", ",".join(map(str, cores))]
        report = _run_child(model.name, argv, threads)
    return profile_from_report(
        report,
        model=model.name,
        variant=variant,
        kernel_tasks=kernel_tasks,
        threads=threads,
        target=target,
    )


def _run_child(model: str, argv: list[str], threads: int) -> dict[str, Any]:
    return run_child(
        model, "profiling", argv, expect="kernels", timeout_s=PROFILE_TIMEOUT_S, threads=threads
    )


# ---------------------------------------------------------------- the child process
def measure_kernels(
    vm: Any, device: Any, arguments: Sequence[Any], *, runs: int
) -> dict[str, list[float]]:
    """Run ``main`` ``runs`` times under the instrument hook: ``{name: [calls, seconds]}``
    summed over the runs, in first-call order. The hook stays set on ``vm``."""
    totals: dict[str, list[float]] = {}
    started: list[float] = []

    # A CPU runs each call to its end before returning; other devices are synchronised, the
    # clock read first thing after the call so the hook's own work stays out of the time.
    sync = device.sync if device.dlpack_device_type() != cpu_device_type() else None

    def instrument(func: Any, name: str, before_run: bool, ret_value: Any, *args: Any) -> None:
        if sync is not None:
            sync()
        now = time.perf_counter()
        if before_run:
            started.append(now)
            return
        entry = totals.setdefault(str(name), [0, 0.0])
        entry[0] += 1
        entry[1] += now - started.pop()

    vm.set_instrument(instrument)
    for _ in range(runs):
        vm["main"](*arguments)
    return totals


def cpu_device_type() -> Any:
    """The DLPack device type of TVM's CPU device."""
    import tvm

    return tvm.cpu().dlpack_device_type()


def interleaved_profile(
    timed: Any,
    hooked: Any,
    device: Any,
    arguments: Sequence[Any],
    *,
    rounds: int,
    runs: int,
    min_ms: float,
) -> dict[str, Any]:
    """End-to-end and per-kernel times side by side: ``rounds`` rounds, each timing ``timed``
    (a VM without the hook) with ``time_evaluator`` and then running ``hooked`` (the same
    model, hook set) ``runs`` times (grown once so a round's runs last ``min_ms / rounds``),
    so both see the same machine load. End-to-end is the median over rounds; a kernel's time
    per call the median over rounds of its mean in the round."""
    evaluator = timed.time_evaluator("main", device, number=1, repeat=1, min_repeat_ms=20)
    evaluator(*arguments)  # warm-up
    measure_kernels(hooked, device, arguments, runs=1)  # warm-up: first-call costs stay out
    end_to_end: list[float] = []
    per_round: list[dict[str, list[float]]] = []
    for _ in range(rounds):
        end_to_end.append(float(evaluator(*arguments).mean) * 1e3)
        if not per_round:  # size the rounds from the model's latency
            wanted = math.ceil(min_ms / rounds / max(end_to_end[0], 1e-3))
            runs = min(max(runs, wanted), MAX_RUNS // rounds)
        per_round.append(measure_kernels(hooked, device, arguments, runs=runs))
    kernels = []
    for name in per_round[0]:
        rates = [r[name][1] / r[name][0] for r in per_round if name in r and r[name][0]]
        calls = sum(r.get(name, [0, 0.0])[0] for r in per_round)
        kernels.append([name, calls, statistics.median(rates) * calls if rates else 0.0])
    return {
        "end_to_end_ms": statistics.median(end_to_end),
        "end_to_end_repeats_ms": end_to_end,
        "runs": runs * rounds,
        "kernels": kernels,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tuner.models.profile")
    parser.add_argument("folder", help="a saved compiled model")
    parser.add_argument("--inputs", required=True, help=".npz of named inputs")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="hooked runs, at least")
    parser.add_argument("--min-ms", type=float, default=MIN_PROFILE_MS)
    parser.add_argument("--repeat", type=int, default=5, help="rounds (see interleaved_profile)")
    parser.add_argument("--cores", help="CPU ids to run on, e.g. 1 or 2,3 (default: any)")
    args = parser.parse_args(argv)
    if args.cores:  # before the runtime starts its threads, which inherit the affinity
        os.sched_setaffinity(0, [int(c) for c in args.cores.split(",")])
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    try:
        report = on_new_thread(lambda: _profile(args))
    except Exception as exc:  # reported to the parent as one line
        print(child_failure(exc))
        return 1
    print(json.dumps(report))
    return 0


def _profile(args: argparse.Namespace) -> dict[str, Any]:
    from tuner.models.compiled import load_compiled

    timed = load_compiled(args.folder)
    # A second VM, of the bytecode build where ``timed`` runs compiled: the hook sees every
    # call the interpreter makes and never touches ``timed``.
    hooked = load_compiled(args.folder, hookable=True)
    with np.load(Path(args.inputs), allow_pickle=False) as data:
        inputs = {name: data[name] for name in data.files}
    arguments = timed.arguments(inputs)
    return interleaved_profile(
        timed.vm, hooked.vm, timed.device, arguments,
        rounds=max(1, args.repeat), runs=max(1, args.runs // max(1, args.repeat)),
        min_ms=args.min_ms,
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())

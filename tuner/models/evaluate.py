"""Evaluate a model: TVM untuned, TVM tuned (with a database) and framework baselines, each
timed in its own fresh process on the same inputs and thread count, outputs compared.

``evaluate_model`` compiles in this process (never the tuning process), saves each compiled
model, then runs ``python -m tuner.models.measure`` once per measurement. Correctness is
checked every time: every TVM output must match every baseline's (and the tuned one the
untuned one) within ``tolerance`` of the reference's largest magnitude. With ``profile`` each
TVM variant is also profiled per kernel in a fresh process (``tuner.models.profile``).
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tuner.models._base import LoadedModel, ModelError
from tuner.models.layer_times import METHOD, LayerGroup, LayerTimes, compare_layers
from tuner.models.measure import run_child
from tuner.models.profile import ModelProfile

DEFAULT_TOLERANCE = 1e-3
MEASURE_TIMEOUT_S = 600.0


@dataclass
class Evaluation:
    """What ``evaluate_model`` found; ``as_json`` gives the CLI's document."""

    model: str
    threads: int
    repeat: int
    tvm_untuned_ms: float
    tvm_tuned_ms: float | None = None
    baselines: dict[str, float] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)  # largest |difference| per pair
    tolerance: float = DEFAULT_TOLERANCE
    scale: float = 1.0
    saved: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, ModelProfile] = field(default_factory=dict)  # per TVM variant
    layer_times: LayerTimes | None = None  # the framework's time per layer (with profile)
    layer_groups: list[LayerGroup] = field(default_factory=list)  # ... beside TVM's kernels
    layer_variant: str | None = None  # the TVM variant the groups compare with

    @property
    def max_abs_error(self) -> float:
        return max(self.errors.values(), default=0.0)

    @property
    def outputs_match(self) -> bool:
        return self.max_abs_error <= self.tolerance * self.scale

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "model": self.model,
            "tvm_untuned_ms": self.tvm_untuned_ms,
            "baselines": dict(self.baselines),
            "max_abs_error": self.max_abs_error,
            "errors": dict(self.errors),
            "outputs_match": self.outputs_match,
            "tolerance": self.tolerance * self.scale,
            "threads": self.threads,
            "repeat": self.repeat,
        }
        if self.tvm_tuned_ms is not None:
            document["tvm_tuned_ms"] = self.tvm_tuned_ms
            document["speedup_over_untuned"] = self.tvm_untuned_ms / self.tvm_tuned_ms
            if self.baselines:
                fastest = min(self.baselines.values())
                document["speedup_over_fastest_baseline"] = fastest / self.tvm_tuned_ms
        if self.saved:
            document["saved"] = dict(self.saved)
        if self.profiles:
            document["profiles"] = {v: p.as_json() for v, p in self.profiles.items()}
        if self.layer_times is not None:
            document["layers"] = {
                "framework": self.layer_times.framework,
                "method": METHOD,
                "variant": self.layer_variant,
                "whole_ms": self.layer_times.whole_ms,
                "layer_sum_ms": self.layer_times.layer_sum_ms,
                "groups": [g.as_json() for g in self.layer_groups],
            }
        return document


def evaluate_model(
    model: LoadedModel,
    target: Mapping[str, Any],
    *,
    database_dir: str | Path | None = None,
    baselines: Sequence[str] | None = None,
    threads: int,
    repeat: int = 10,
    min_repeat_ms: float = 100.0,
    load_settings: Mapping[str, Any] | None = None,
    keep_dir: str | Path | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
    profile: bool = False,
    target_label: str | None = None,
) -> Evaluation:
    """Time and compare ``model`` (see the module docstring).

    ``baselines`` defaults to every baseline the model can have; naming one it cannot have
    raises ModelError. A baseline process needs ``model.source`` (re-loaded there with
    ``load_settings``, the same keyword arguments this process loaded it with).
    ``keep_dir`` keeps the compiled models (``untuned/``, ``tuned/``) there. ``profile``
    also profiles each TVM variant per kernel (``Evaluation.profiles``; ``target_label``
    is recorded in them).
    """
    from tuner.models.compiled import compile_and_save
    from tuner.models.kernels import model_kernel_tasks
    from tuner.models.layer_times import framework_layer_times
    from tuner.models.loaders import random_inputs
    from tuner.models.profile import profile_saved_model

    chosen = list(model.baselines if baselines is None else baselines)
    for name in chosen:
        if name not in model.baselines:
            can = ", ".join(model.baselines) or "none"
            raise ModelError(model.name, f"no {name} baseline for this model (it has: {can})")
    if chosen and model.source is None:
        raise ModelError(model.name, "baselines need a model file or zoo name to load from")
    with tempfile.TemporaryDirectory(prefix="tuneloom-evaluate-") as scratch:
        work = Path(keep_dir) if keep_dir else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        inputs_path = Path(scratch) / "inputs.npz"
        np.savez(inputs_path, **random_inputs(model, seed=seed))
        common = _Runner(inputs_path, Path(scratch), threads, repeat, min_repeat_ms)
        variants = {"untuned": None} | ({"tuned": database_dir} if database_dir else {})
        outputs: dict[str, list[np.ndarray]] = {}
        timings: dict[str, float] = {}
        saved: dict[str, str] = {}
        profiles: dict[str, ModelProfile] = {}
        kernel_tasks = model_kernel_tasks(model, target) if profile else {}
        for variant, database in variants.items():
            folder = compile_and_save(
                model, target, work / variant, database_dir=database, hookable=profile
            )
            saved[variant] = str(folder)
            timings[variant], outputs[f"tvm_{variant}"] = common.measure(
                model.name, f"TVM {variant}", ["tvm", str(folder)]
            )
            if profile:
                profiles[variant] = profile_saved_model(
                    folder, model, variant=variant, kernel_tasks=kernel_tasks,
                    threads=threads, seed=seed, target=target_label,
                )  # fmt: skip
        for name in chosen:
            settings = json.dumps(dict(load_settings or {}))
            timings[name], outputs[name] = common.measure(
                model.name,
                f"the {name} baseline",
                ["baseline", name, "--model", str(model.source), "--settings", settings],
            )
    errors, scale = compare_outputs(outputs)
    layer_times, groups, compared = None, [], None
    if profiles and "tflite" in chosen and "keras_model" in model.artifacts:
        compared = "tuned" if "tuned" in profiles else "untuned"
        layer_times = framework_layer_times(model, threads=threads, settings=load_settings)
        groups = kernel_layer_groups(model, target, profiles[compared], layer_times)
    return Evaluation(
        model=model.name,
        threads=threads,
        repeat=repeat,
        tvm_untuned_ms=timings["untuned"],
        tvm_tuned_ms=timings.get("tuned"),
        baselines={name: timings[name] for name in chosen},
        errors=errors,
        tolerance=tolerance,
        scale=scale,
        saved=saved if keep_dir else {},
        profiles=profiles,
        layer_times=layer_times,
        layer_groups=groups,
        layer_variant=compared,
    )


def kernel_layer_groups(
    model: LoadedModel, target: Mapping[str, Any], profile: ModelProfile, times: LayerTimes
) -> list[LayerGroup]:
    """``compare_layers`` of a TVM profile (kernels only, VM builtins left out) and a
    framework's per-layer times, kernels joined to layers through the model's graph."""
    from tuner.models.graph import model_graph

    kernel_layers: dict[str, set[str]] = {}
    for node in model_graph(model, target).nodes:
        kernel_layers.setdefault(node.kernel, set()).update(node.layers)
    kernel_ms = {
        k.name: k.total_secs * 1e3 for k in profile.kernels if not k.name.startswith("vm.")
    }
    layer_ms: dict[str, float] = {}
    for name, _, ms in times.layers:
        layer_ms[name] = layer_ms.get(name, 0.0) + ms
    return compare_layers(kernel_ms, kernel_layers, layer_ms)


def time_saved_model(
    folder: str | Path,
    model: LoadedModel,
    *,
    threads: int,
    cores: Sequence[int] | None = None,
    repeat: int = 5,
    min_repeat_ms: float = 40.0,
    seed: int = 0,
) -> float:
    """Median milliseconds per run of a saved compiled model, timed in a fresh process (pinned
    to ``cores`` when given, e.g. a device's, so that nothing else shares them)."""
    from tuner.models.loaders import random_inputs

    with tempfile.TemporaryDirectory(prefix="tuneloom-time-") as scratch:
        inputs_path = Path(scratch) / "inputs.npz"
        np.savez(inputs_path, **random_inputs(model, seed=seed))
        runner = _Runner(inputs_path, Path(scratch), threads, repeat, min_repeat_ms, cores)
        ms, _ = runner.measure(model.name, "the compiled model", ["tvm", str(folder)])
    return ms


def time_saved_models_alternately(
    folders: Mapping[str, str | Path],
    model: LoadedModel,
    *,
    rounds: int,
    threads: int,
    cores: Sequence[int] | None = None,
    repeat: int = 5,
) -> dict[str, float]:
    """Median milliseconds of each saved compiled model of ``model`` (by name), each timed
    ``rounds`` times as ``time_saved_model`` does, one after another in every round, so
    that all of them see the same machine."""
    times: dict[str, list[float]] = {name: [] for name in folders}
    for _ in range(rounds):
        for name, folder in folders.items():
            times[name].append(
                time_saved_model(folder, model, threads=threads, cores=cores, repeat=repeat)
            )
    return {name: float(np.median(values)) for name, values in times.items()}


def compare_outputs(outputs: Mapping[str, list[np.ndarray]]) -> tuple[dict[str, float], float]:
    """Largest absolute difference of each TVM variant against every other result, and the
    largest output magnitude (the scale the tolerance is relative to).

    Raises ModelError when two results do not even have the same outputs and shapes.
    """
    errors: dict[str, float] = {}
    names = list(outputs)
    tvm_names = [n for n in names if n.startswith("tvm_")]
    scale = max(
        (float(np.max(np.abs(a))) for arrays in outputs.values() for a in arrays if a.size),
        default=1.0,
    )
    for i, first in enumerate(names):
        if first not in tvm_names:
            continue
        for second in names[i + 1 :] + [n for n in names[:i] if n not in tvm_names]:
            a, b = outputs[first], outputs[second]
            if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b, strict=False)):
                raise ModelError(
                    "outputs", f"{first} gives shapes {[x.shape for x in a]} but {second} "
                    f"gives {[y.shape for y in b]}",
                )  # fmt: skip
            diff = max(
                (float(np.max(np.abs(x.astype(np.float64) - y))) for x, y in zip(a, b, strict=True)
                 if x.size),
                default=0.0,
            )  # fmt: skip
            errors[f"{first} vs {second}"] = diff
    return errors, max(1.0, scale)


@dataclass(frozen=True)
class _Runner:
    inputs: Path
    scratch: Path
    threads: int
    repeat: int
    min_repeat_ms: float
    cores: Sequence[int] | None = None

    def measure(self, model: str, what: str, command: list[str]) -> tuple[float, list[np.ndarray]]:
        out = self.scratch / f"out-{len(list(self.scratch.glob('out-*')))}.npz"
        argv = [
            sys.executable, "-m", "tuner.models.measure", *command,
            "--inputs", str(self.inputs), "--outputs", str(out),
            "--threads", str(self.threads), "--repeat", str(self.repeat),
            "--min-repeat-ms", str(self.min_repeat_ms),
        ]  # fmt: skip
        if self.cores:
            argv += ["--cores", ",".join(map(str, self.cores))]
        report = run_child(
            model, f"timing {what}", argv, expect="median_ms", timeout_s=MEASURE_TIMEOUT_S,
            threads=self.threads,
        )  # fmt: skip
        with np.load(out, allow_pickle=False) as data:
            arrays = [data[f"output_{i}"] for i in range(len(data.files))]
        return float(report["median_ms"]), arrays

"""Per-layer framework times beside the tuned model's kernels: where a framework keeps up.

TFLite's Python interpreter has no per-operator profiler, so each layer of a Keras model is
timed alone: built as a one-layer model at the shapes it sees in the whole model, converted to
TFLite (float32, as the whole model is) and run by the TFLite interpreter (XNNPACK) with the
same threads, in a fresh process pinned like every other measurement. Layers that differ only
in their name and weights are timed once. The layers' sum is reported beside the whole model's
time: the difference is the work between operators and the caches a layer alone keeps warm.

``compare_layers`` joins those times with a per-kernel TVM profile through the layers each
fused kernel came from (``ModelGraph`` nodes): kernels and layers that share a layer form one
group (a fused kernel may hold several layers, a layer may be split over kernels), so every
row compares the same work::

    python -m tuner.models.layer_times --model zoo:cnn --threads 1 [--cores 1]

prints one JSON object: ``whole_ms``, ``layers`` (``[name, kind, ms]`` in the model's order).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tuner.models._base import LoadedModel, ModelError
from tuner.models.measure import child_failure, run_child, time_calls

LAYER_TIMES_TIMEOUT_S = 900.0
METHOD = (
    "each Keras layer timed alone as a one-layer TFLite model (XNNPACK) at the shapes it "
    "sees in the model, same threads, fresh process"
)


@dataclass(frozen=True, slots=True)
class LayerTimes:
    """A framework's time per layer (ms per run, each layer alone) and for the whole model."""

    framework: str
    whole_ms: float
    layers: tuple[tuple[str, str, float], ...]  # (name, kind, ms)

    @property
    def layer_sum_ms(self) -> float:
        return sum(ms for _, _, ms in self.layers)


@dataclass(frozen=True, slots=True)
class LayerGroup:
    """TVM kernels and framework layers that did the same work, and their times per run."""

    kernels: tuple[str, ...]
    layers: tuple[str, ...]
    tvm_ms: float
    framework_ms: float

    @property
    def speedup(self) -> float | None:
        """Framework time over TVM's (above 1: TVM is faster), None without a TVM kernel."""
        return self.framework_ms / self.tvm_ms if self.tvm_ms > 0 else None

    def as_json(self) -> dict[str, Any]:
        return {
            "kernels": list(self.kernels),
            "layers": list(self.layers),
            "tvm_ms": self.tvm_ms,
            "framework_ms": self.framework_ms,
            "speedup": self.speedup,
        }


def compare_layers(
    kernel_ms: Mapping[str, float],
    kernel_layers: Mapping[str, Iterable[str]],
    layer_ms: Mapping[str, float],
) -> list[LayerGroup]:
    """Group kernels and layers joined by ``kernel_layers`` (a kernel's source layers) and
    sum each side's time per run; heaviest group (by the larger side) first.

    ``kernel_ms``: TVM's milliseconds per run of each kernel (VM builtins left out by the
    caller); ``layer_ms``: the framework's per layer. A kernel without a known layer and a
    layer without a kernel (a reshape TVM runs as a view) are groups of their own.
    """
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(x: tuple[str, str]) -> tuple[str, str]:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for kernel in kernel_ms:
        find(("k", kernel))
        for layer in kernel_layers.get(kernel, ()):
            if layer in layer_ms:
                parent[find(("l", layer))] = find(("k", kernel))
    for layer in layer_ms:
        find(("l", layer))
    members: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for node in list(parent):
        members.setdefault(find(node), []).append(node)
    groups = []
    for nodes in members.values():
        kernels = tuple(sorted(name for kind, name in nodes if kind == "k"))
        layers = tuple(name for name in layer_ms if ("l", name) in nodes)
        groups.append(
            LayerGroup(
                kernels=kernels,
                layers=layers,
                tvm_ms=sum(kernel_ms[k] for k in kernels),
                framework_ms=sum(layer_ms[name] for name in layers),
            )
        )
    groups.sort(key=lambda g: (-max(g.tvm_ms, g.framework_ms), g.kernels, g.layers))
    return groups


def framework_layer_times(
    model: LoadedModel,
    *,
    threads: int,
    settings: Mapping[str, Any] | None = None,
    cores: Sequence[int] | None = None,
    repeat: int = 10,
    min_repeat_ms: float = 50.0,
) -> LayerTimes:
    """TFLite's time per Keras layer of ``model`` (see the module docstring), measured in a
    fresh process. ModelError for a model without Keras layers or a failed measurement."""
    if "keras_model" not in model.artifacts or model.source is None:
        raise ModelError(model.name, "per-layer framework times need a Keras model")
    argv = [
        sys.executable, "-m", "tuner.models.layer_times", "--model", str(model.source),
        "--settings", json.dumps(dict(settings or {})), "--threads", str(threads),
        "--repeat", str(repeat), "--min-repeat-ms", str(min_repeat_ms),
    ]  # fmt: skip
    if cores:
        argv += ["--cores", ",".join(map(str, cores))]
    report = run_child(
        model.name, "timing TFLite per layer", argv, expect="layers",
        timeout_s=LAYER_TIMES_TIMEOUT_S,
    )  # fmt: skip
    layers = tuple((str(n), str(k), float(ms)) for n, k, ms in report["layers"])
    return LayerTimes("tflite", float(report["whole_ms"]), layers)


# ---------------------------------------------------------------- the child process
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tuner.models.layer_times")
    parser.add_argument("--model", required=True, help="zoo name or .keras file")
    parser.add_argument("--settings", default="{}", help="load_model keyword arguments")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--min-repeat-ms", type=float, default=50.0)
    parser.add_argument("--cores", help="CPU ids to run on (default: any)")
    args = parser.parse_args(argv)
    if args.cores:
        os.sched_setaffinity(0, [int(c) for c in args.cores.split(",")])
    try:
        report = _time_layers(args)
    except Exception as exc:  # reported to the parent as one line
        print(child_failure(exc))
        return 1
    print(json.dumps(report))
    return 0


def _time_layers(args: argparse.Namespace) -> dict[str, Any]:
    from tuner.models.frameworks import import_tensorflow
    from tuner.models.loaders import load_model

    tf = import_tensorflow()
    model = load_model(args.model, **json.loads(args.settings))
    keras_model = model.artifacts.get("keras_model")
    if keras_model is None:
        raise ModelError(model.name, "not a Keras model")
    batch = model.inputs[0].shape[0] if model.inputs and model.inputs[0].shape else 1

    def timed(fn: Any, shapes: list[tuple[int, ...]]) -> float:
        specs = [tf.TensorSpec(s, tf.float32) for s in shapes]
        concrete = tf.function(fn).get_concrete_function(*specs)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            interp = tf.lite.Interpreter(
                model_content=converter.convert(), num_threads=args.threads
            )
        interp.allocate_tensors()
        rng = np.random.default_rng(0)
        for detail, shape in zip(interp.get_input_details(), shapes, strict=True):
            interp.set_tensor(detail["index"], rng.random(shape, dtype="float32"))
        timing = time_calls(interp.invoke, repeat=args.repeat, min_repeat_ms=args.min_repeat_ms)
        return float(timing["median_ms"])

    whole = [tuple(batch if d is None else int(d) for d in t.shape) for t in keras_model.inputs]
    whole_ms = timed(lambda *xs: keras_model(list(xs) if len(xs) > 1 else xs[0]), whole)
    seen: dict[str, float] = {}
    layers = []
    for layer in keras_model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        inputs = layer.input if isinstance(layer.input, list) else [layer.input]
        shapes = [tuple(batch if d is None else int(d) for d in t.shape) for t in inputs]
        config = {k: v for k, v in layer.get_config().items() if k != "name"}
        key = json.dumps([type(layer).__name__, config, shapes], sort_keys=True, default=str)
        if key not in seen:
            seen[key] = timed(lambda *xs, f=layer: f(list(xs) if len(xs) > 1 else xs[0]), shapes)
        layers.append([layer.name, type(layer).__name__, seen[key]])
    return {"whole_ms": whole_ms, "layers": layers}


if __name__ == "__main__":
    sys.exit(main())

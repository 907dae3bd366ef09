"""Framework baselines: run a loaded model with TensorFlow, TFLite or ONNX Runtime.

``open_baseline(model, name, threads=N)`` returns ``run(feeds) -> list[np.ndarray]``. Feeds are
keyed by ``model.inputs`` names; outputs come in the order ``tuner.models.loaders`` documents,
which is the order of the Relax ``main`` result (a single tensor or the fields of its tuple):
ONNX graph outputs in order; for Keras/SavedModel models the flattened outputs
(``tf.nest.flatten``), which is also the TFLite output order.

Thread settings: TFLite and ONNX Runtime take ``threads`` per session. TensorFlow's thread
pools are process-wide and fixed once TensorFlow runs anything, so a process that wants a
TensorFlow baseline calls ``configure_tensorflow_threads(threads)`` first (before loading the
model); ``open_baseline`` refuses to run TensorFlow at a different thread count.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tuner._base import TunerError, one_line
from tuner.models._base import BASELINES, LoadedModel, ModelError
from tuner.models.frameworks import import_tensorflow

Baseline = Callable[[Mapping[str, np.ndarray]], list[np.ndarray]]
# TensorFlow inter-op threads: one, so ``threads`` bounds the cores a baseline uses.
TF_INTER_OP_THREADS = 1


def tensorflow_threads() -> tuple[int, int]:
    """TensorFlow's (intra-op, inter-op) thread settings; 0 means TensorFlow's default."""
    tf = import_tensorflow()
    return (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )


def configure_tensorflow_threads(threads: int) -> None:
    """Run TensorFlow ops on ``threads`` intra-op threads (one inter-op thread).

    Call before TensorFlow runs anything in this process. Calling again with the same count
    is fine; a different count once TensorFlow has started raises ``TunerError``.
    """
    _check_threads("tensorflow", threads)
    tf = import_tensorflow()
    wanted = (threads, TF_INTER_OP_THREADS)
    if tensorflow_threads() == wanted:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(TF_INTER_OP_THREADS)
    except RuntimeError:
        intra, _ = tensorflow_threads()
        raise TunerError(
            f"TensorFlow already started with {intra or 'its default number of'} intra-op "
            f"threads; call configure_tensorflow_threads({threads}) before TensorFlow runs "
            "anything (in a fresh process)"
        ) from None


def open_baseline(model: LoadedModel, name: str, *, threads: int) -> Baseline:
    """A function running ``model`` with the framework baseline ``name`` on ``threads`` threads.

    ``ModelError`` when ``name`` is unknown, the model cannot have that baseline (e.g.
    ``tensorflow`` for an ONNX file) or the baseline's package is missing.
    """
    if name not in BASELINES:
        raise ModelError(
            model.name, f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}"
        )
    if name not in model.baselines:
        have = ", ".join(model.baselines) or "none"
        raise ModelError(
            model.name,
            f"no {name} baseline for {model.framework} models (available: {have})",
        )
    _check_threads(model.name, threads)
    opener = {"tensorflow": _open_tensorflow, "tflite": _open_tflite, "onnxruntime": _open_ort}
    return opener[name](model, threads)


def _check_threads(label: str, threads: int) -> None:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ModelError(label, f"threads must be a positive integer, got {threads!r}")


def _ordered_feeds(model: LoadedModel, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    missing = [s.name for s in model.inputs if s.name not in feeds]
    if missing:
        raise ModelError(model.name, f"no value fed for input(s) {', '.join(missing)}")
    arrays = []
    for spec in model.inputs:
        arr = np.asarray(feeds[spec.name], dtype=spec.dtype)
        if arr.shape != spec.shape:
            raise ModelError(
                model.name, f"input {spec.name!r} has shape {arr.shape}, expected {spec.shape}"
            )
        arrays.append(arr)
    return arrays


# ---------------------------------------------------------------- TensorFlow
def _open_tensorflow(model: LoadedModel, threads: int) -> Baseline:
    tf = import_tensorflow()
    configure_tensorflow_threads(threads)  # raises if TensorFlow already runs differently
    specs = [tf.TensorSpec(s.shape, s.dtype, name=s.name) for s in model.inputs]
    if "keras_model" in model.artifacts:
        keras_model = model.artifacts["keras_model"]

        def call(*xs: Any) -> list[Any]:
            return tf.nest.flatten(keras_model(xs[0] if len(xs) == 1 else list(xs), training=False))

    elif "saved_model" in model.artifacts:
        signature = model.artifacts["saved_model"].signatures[model.artifacts["signature"]]
        names = list(signature.structured_input_signature[1])

        def call(*xs: Any) -> list[Any]:
            return tf.nest.flatten(signature(**dict(zip(names, xs, strict=True))))

    else:
        raise ModelError(
            model.name, "no Keras model or SavedModel kept for the tensorflow baseline"
        )
    concrete = tf.function(call).get_concrete_function(*specs)

    def run(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        arrays = _ordered_feeds(model, feeds)
        return [out.numpy() for out in concrete(*[tf.constant(a) for a in arrays])]

    return run


# ---------------------------------------------------------------- TFLite
def _open_tflite(model: LoadedModel, threads: int) -> Baseline:
    tf = import_tensorflow()
    data = model.artifacts.get("tflite_bytes")
    if data is None:
        raise ModelError(model.name, "no TFLite flatbuffer kept for the tflite baseline")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            interp = tf.lite.Interpreter(model_content=data, num_threads=threads)
        details = interp.get_input_details()
        if len(details) != len(model.inputs):
            raise ValueError(f"{len(details)} TFLite inputs for {len(model.inputs)} model inputs")
        by_name = {d["name"]: d for d in details}
        if sorted(by_name) == sorted(s.name for s in model.inputs):
            details = [by_name[s.name] for s in model.inputs]
        for spec, detail in zip(model.inputs, details, strict=True):
            if tuple(int(d) for d in detail["shape"]) != spec.shape:
                interp.resize_tensor_input(detail["index"], list(spec.shape), strict=False)
        interp.allocate_tensors()
    except Exception as exc:  # ValueError/RuntimeError from the interpreter
        raise ModelError(model.name, f"TFLite interpreter failed: {one_line(exc)}") from None
    in_index = [d["index"] for d in details]
    out_index = [d["index"] for d in interp.get_output_details()]

    def run(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        for index, arr in zip(in_index, _ordered_feeds(model, feeds), strict=True):
            interp.set_tensor(index, arr)
        interp.invoke()
        return [interp.get_tensor(i).copy() for i in out_index]

    return run


# ---------------------------------------------------------------- ONNX Runtime
def _open_ort(model: LoadedModel, threads: int) -> Baseline:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelError(
            model.name,
            "the onnxruntime baseline needs the onnxruntime package (pip install onnxruntime)",
        ) from None
    data = model.artifacts.get("onnx_bytes")
    if data is None:
        raise ModelError(model.name, "no ONNX model kept for the onnxruntime baseline")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's Fail/InvalidGraph errors
        raise ModelError(
            model.name, f"ONNX Runtime cannot load the model: {one_line(exc)}"
        ) from None
    names = [s.name for s in model.inputs]

    def run(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        arrays = _ordered_feeds(model, feeds)
        return list(session.run(None, dict(zip(names, arrays, strict=True))))

    return run
